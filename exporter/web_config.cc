#include "web_config.h"

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "unique_fd.h"
#include "yaml_document.h"

namespace pidfd_exporter {
namespace {

// A web config is a few hundred bytes; a mistaken path (a log, a device) must not be
// slurped into memory.
constexpr size_t kMaxWebConfigBytes = 1024 * 1024;

constexpr char kTopLevelKeys[] = "tls_server_config, http_server_config, basic_auth_users";
constexpr char kTlsKeys[] =
    "cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version, "
    "prefer_server_cipher_suites";
constexpr char kHttpKeys[] = "headers, http2";

// The headers exporter-toolkit lets a config set, with the values it allows (empty: any).
// Kept identical so that a web config file means the same to every Prometheus exporter.
const std::map<std::string, std::vector<std::string>>& ConfigurableHeaders() {
  static const auto* headers = new std::map<std::string, std::vector<std::string>>{
      {"Content-Security-Policy", {}},
      {"Strict-Transport-Security", {}},
      {"X-Content-Type-Options", {"nosniff"}},
      {"X-Frame-Options", {"deny", "sameorigin"}},
      {"X-XSS-Protection", {}},
  };
  return *headers;
}

std::optional<TlsVersion> ParseTlsVersion(const std::string& text) {
  if (text == "TLS12") return TlsVersion::kTls12;
  if (text == "TLS13") return TlsVersion::kTls13;
  return std::nullopt;
}

// Walks the YAML tree once and reports every problem it finds, so that an operator fixes a
// file in one round (same approach and wording as config.cc).
class WebConfigParser : private YamlErrorCollector {
 public:
  explicit WebConfigParser(std::string file_name) : YamlErrorCollector(std::move(file_name)) {}

  WebConfigResult Parse(std::string_view text) {
    WebConfig config;
    config.source = file_;
    const std::string owned_text(text);
    YAML::Node root;
    YamlLoadError load_error;
    if (!LoadSingleYamlDocument(owned_text, &root, &load_error)) {
      Error(load_error.mark, load_error.message);
      return Finish(std::move(config));
    }
    // An empty file is valid in exporter-toolkit: plain HTTP without authentication.
    if (!root.IsNull()) {
      try {
        ParseRoot(root, config);
      } catch (const YAML::Exception& exception) {
        // Only reachable through yaml-cpp surprises; the walk checks types before converting.
        Error(exception.mark, exception.msg);
      }
    }
    return Finish(std::move(config));
  }

 private:
  WebConfigResult Finish(WebConfig config) {
    WebConfigResult result;
    result.errors = TakeSortedErrors();
    if (result.errors.empty()) result.config = std::move(config);
    return result;
  }

  std::string Position(const YAML::Mark& mark) const {
    return file_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }

  // A known exporter-toolkit setting this exporter cannot honour: an error, because
  // silently ignoring e.g. cipher_suites would leave a server less strict than configured.
  void Unsupported(const YAML::Node& key, const std::string& path, std::string_view why) {
    Error(key.Mark(),
          path + ": " + Quote(key.Scalar()) + " is not supported by pidfd_exporter: " + std::string(why));
  }

  // exporter-toolkit resolves relative paths against the config file's directory.
  std::string ResolvePath(const std::string& path) const {
    if (path.empty() || path[0] == '/') return path;
    const std::filesystem::path directory = std::filesystem::path(file_).parent_path();
    return directory.empty() ? path : (directory / path).string();
  }

  // A file path that must be readable now: a typo should stop start-up with the file's
  // name, not surface as an OpenSSL error later.
  std::optional<std::string> ReadableFile(const YAML::Node& key, const YAML::Node& value,
                                          const std::string& path) {
    const std::optional<std::string> text = String(key, value, path);
    if (!text) return std::nullopt;
    const std::string resolved = ResolvePath(*text);
    UniqueFd fd(open(resolved.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) {
      Error(value.Mark(), path + ": cannot read " + Quote(resolved) + ": " + std::strerror(errno));
      return std::nullopt;
    }
    char byte;
    if (read(fd.get(), &byte, 1) < 0) {
      Error(value.Mark(), path + ": cannot read " + Quote(resolved) + ": " + std::strerror(errno));
      return std::nullopt;
    }
    return resolved;
  }

  void ParseRoot(const YAML::Node& root, WebConfig& config) {
    if (!root.IsMap()) {
      Error(root.Mark(),
            "expected a mapping with tls_server_config, http_server_config or basic_auth_users, got " +
                KindOf(root));
      return;
    }
    ForEachEntry(root, "web config", [&](const YAML::Node& key, const YAML::Node& value) {
      const std::string& name = key.Scalar();
      if (name == "tls_server_config") {
        ParseTls(key, value, config);
      } else if (name == "http_server_config") {
        ParseHttp(value, config);
      } else if (name == "basic_auth_users") {
        ParseUsers(value, config);
      } else if (name == "rate_limit") {
        Unsupported(key, "web config",
                    "CivetWeb serves each connection on its own worker thread, bounded by their number");
      } else {
        UnknownKey(key, "web config", kTopLevelKeys);
      }
    });
  }

  // What tls_server_config said, and where (so that errors name the line).
  struct TlsSection {
    TlsOptions tls;
    bool valid = true;
    bool enabled = false;  // exporter-toolkit: any certificate or client-auth setting turns TLS on
    std::optional<YAML::Node> cert_key, key_key, client_ca_key, client_auth_key, min_key, max_key;
  };

  void ParseTls(const YAML::Node& section_key, const YAML::Node& value, WebConfig& config) {
    const std::string path = "tls_server_config";
    if (!SectionIsMapping(value, path)) return;
    TlsSection section;
    ForEachEntry(value, path, [&](const YAML::Node& key, const YAML::Node& entry) {
      if (!ParseTlsEntry(key, entry, path, section)) section.valid = false;
    });
    if (!section.valid) return;
    if (!section.enabled) {
      config.warnings.push_back(Position(section_key.Mark()) + ": " + path +
                                ": no cert_file, key_file or client authentication: serving plain HTTP");
      return;
    }
    if (TlsSectionConsistent(section_key, path, section)) config.tls = std::move(section.tls);
  }

  // One key of tls_server_config; false (with an error) when it is invalid or unsupported.
  bool ParseTlsEntry(const YAML::Node& key, const YAML::Node& entry, const std::string& path,
                     TlsSection& section) {
    const std::string& name = key.Scalar();
    const std::string key_path = path + "." + name;
    if (name == "cert_file" || name == "key_file" || name == "client_ca_file")
      return ParseTlsFile(key, entry, key_path, section);
    if (name == "client_auth_type") return ParseClientAuthType(key, entry, key_path, section);
    if (name == "min_version" || name == "max_version")
      return ParseTlsVersionKey(key, entry, key_path, section);
    // Go ignores it since 1.18 and so does this server: its cipher order always wins.
    if (name == "prefer_server_cipher_suites") return Bool(key, entry, key_path).has_value();
    if (name == "cipher_suites" || name == "curve_preferences") {
      Unsupported(key, path,
                  "OpenSSL's defaults apply (TLS 1.2 with forward-secret AEAD ciphers, and TLS 1.3)");
    } else if (name == "client_allowed_sans") {
      Unsupported(key, path, "any client certificate issued by client_ca_file is accepted");
    } else if (name == "cert" || name == "key" || name == "client_ca") {
      Unsupported(key, path, "put the PEM text in a file and use " + name + "_file");
    } else {
      UnknownKey(key, path, kTlsKeys);
    }
    return false;
  }

  bool ParseTlsFile(const YAML::Node& key, const YAML::Node& entry, const std::string& key_path,
                    TlsSection& section) {
    section.enabled = true;
    const std::optional<std::string> file = ReadableFile(key, entry, key_path);
    if (!file) return false;
    const std::string& name = key.Scalar();
    if (name == "cert_file") {
      section.tls.cert_file = *file;
      section.cert_key = key;
    } else if (name == "key_file") {
      section.tls.key_file = *file;
      section.key_key = key;
    } else {
      section.tls.client_ca_file = *file;
      section.client_ca_key = key;
    }
    return true;
  }

  bool ParseClientAuthType(const YAML::Node& key, const YAML::Node& entry, const std::string& key_path,
                           TlsSection& section) {
    section.enabled = true;
    const std::optional<std::string> text = String(key, entry, key_path);
    if (!text) return false;
    if (*text == "NoClientCert") {
      section.tls.client_auth_type = ClientAuthType::kNoClientCert;
      return true;
    }
    if (*text == "VerifyClientCertIfGiven" || *text == "RequireAndVerifyClientCert") {
      section.tls.client_auth_type = *text == "VerifyClientCertIfGiven"
                                         ? ClientAuthType::kVerifyClientCertIfGiven
                                         : ClientAuthType::kRequireAndVerifyClientCert;
      section.client_auth_key = key;
      return true;
    }
    if (*text == "RequestClientCert" || *text == "RequireAnyClientCert" || *text == "RequireClientCert") {
      Error(entry.Mark(), key_path + ": " + Quote(*text) +
                              " is not supported by pidfd_exporter: it accepts client certificates without "
                              "verifying them; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) "
                              "with client_ca_file");
      return false;
    }
    Error(entry.Mark(),
          key_path + ": expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert, got " +
              Quote(*text));
    return false;
  }

  bool ParseTlsVersionKey(const YAML::Node& key, const YAML::Node& entry, const std::string& key_path,
                          TlsSection& section) {
    const std::optional<std::string> text = String(key, entry, key_path);
    if (!text) return false;
    const std::optional<TlsVersion> version = ParseTlsVersion(*text);
    if (!version) {
      const bool old = *text == "TLS10" || *text == "TLS11";
      Error(entry.Mark(),
            key_path + ": " +
                (old ? Quote(*text) + " is not supported by pidfd_exporter: OpenSSL 3 on Debian "
                                      "refuses TLS below 1.2; use TLS12 or TLS13"
                     : "expected TLS12 or TLS13, got " + Quote(*text)));
      return false;
    }
    if (key.Scalar() == "min_version") {
      section.tls.min_version = *version;
      section.min_key = key;
    } else {
      section.tls.max_version = *version;
      section.max_key = key;
    }
    return true;
  }

  // The checks across keys, each error at the key that is wrong or at the section.
  bool TlsSectionConsistent(const YAML::Node& section_key, const std::string& path,
                            const TlsSection& section) {
    bool valid = true;
    if (!section.cert_key) {
      Error(section_key.Mark(), path + ": missing cert_file");
      valid = false;
    }
    if (!section.key_key) {
      Error(section_key.Mark(), path + ": missing key_file");
      valid = false;
    }
    if (section.client_ca_key && !section.client_auth_key) {
      Error(section.client_ca_key->Mark(),
            path +
                ".client_ca_file: set without a client_auth_type that verifies client certificates; add "
                "client_auth_type: RequireAndVerifyClientCert");
      valid = false;
    }
    if (section.client_auth_key && !section.client_ca_key) {
      // Go would verify against the system's roots, which is almost never what is meant.
      Error(section.client_auth_key->Mark(),
            path + ".client_auth_type: needs client_ca_file, the CAs that issue the client certificates");
      valid = false;
    }
    if (section.tls.min_version == TlsVersion::kTls13 && section.tls.max_version == TlsVersion::kTls12) {
      Error((section.max_key ? section.max_key : section.min_key)->Mark(),
            path + ".max_version: must not be below min_version");
      valid = false;
    }
    return valid;
  }

  void ParseHttp(const YAML::Node& value, WebConfig& config) {
    const std::string path = "http_server_config";
    if (!SectionIsMapping(value, path)) return;
    ForEachEntry(value, path, [&](const YAML::Node& key, const YAML::Node& entry) {
      const std::string& name = key.Scalar();
      const std::string key_path = path + "." + name;
      if (name == "http2") {
        const std::optional<bool> http2 = Bool(key, entry, key_path);
        // true is exporter-toolkit's default, so files copied from other exporters carry it;
        // refusing them would help nobody.
        if (http2 && *http2) {
          config.warnings.push_back(Position(key.Mark()) + ": " + key_path +
                                    ": ignored: CivetWeb serves HTTP/1.1 only, which Prometheus uses anyway");
        }
      } else if (name == "headers") {
        ParseHeaders(key, entry, key_path, config);
      } else {
        UnknownKey(key, path, kHttpKeys);
      }
    });
  }

  void ParseHeaders(const YAML::Node& key, const YAML::Node& value, const std::string& path,
                    WebConfig& config) {
    if (RejectNull(key, value, path)) return;
    if (!SectionIsMapping(value, path)) return;
    ForEachEntry(value, path, [&](const YAML::Node& header, const YAML::Node& entry) {
      const std::string& name = header.Scalar();
      const std::string header_path = path + "." + name;
      const auto allowed = ConfigurableHeaders().find(name);
      if (allowed == ConfigurableHeaders().end()) {
        std::string names;
        for (const auto& [known, values] : ConfigurableHeaders())
          names += (names.empty() ? "" : ", ") + known;
        Error(header.Mark(),
              path + ": HTTP header " + Quote(name) + " can not be configured (allowed: " + names + ")");
        return;
      }
      const std::optional<std::string> text = String(header, entry, header_path);
      if (!text) return;
      // CivetWeb writes the value as is: a line break would inject headers.
      if (text->find_first_of("\r\n") != std::string::npos) {
        Error(entry.Mark(), header_path + ": must be a single line");
        return;
      }
      const std::vector<std::string>& values = allowed->second;
      if (!values.empty() && std::find(values.begin(), values.end(), *text) == values.end()) {
        std::string expected;
        for (const std::string& allowed_value : values)
          expected += (expected.empty() ? "" : " or ") + Quote(allowed_value);
        Error(entry.Mark(), header_path + ": expected " + expected + ", got " + Quote(*text));
        return;
      }
      config.response_headers.emplace_back(name, *text);
    });
  }

  void ParseUsers(const YAML::Node& value, WebConfig& config) {
    const std::string path = "basic_auth_users";
    if (!SectionIsMapping(value, path)) return;
    ForEachEntry(value, path, [&](const YAML::Node& key, const YAML::Node& entry) {
      const std::string& user = key.Scalar();
      const std::string user_path = path + "." + user;
      bool valid = true;
      if (user.empty()) {
        Error(key.Mark(), path + ": a user name must not be empty");
        valid = false;
      } else if (user.find(':') != std::string::npos) {
        // Basic credentials are "user:password" split at the first colon.
        Error(key.Mark(), path + ": user name " + Quote(user) + " must not contain \":\"");
        valid = false;
      }
      const std::optional<std::string> hash = String(key, entry, user_path);
      if (!hash) return;
      if (!IsBcryptHash(*hash)) {
        Error(entry.Mark(),
              user_path +
                  ": not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost from 04 to 31, \"$\" "
                  "and 53 characters; make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')");
        return;
      }
      if (valid) config.basic_auth_users.emplace(user, *hash);
    });
  }
};

}  // namespace

bool IsBcryptHash(std::string_view hash) {
  constexpr size_t kLength = 60;  // "$2b$10$" + 22 salt + 31 hash characters
  if (hash.size() != kLength) return false;
  if (hash.substr(0, 3) != "$2a" && hash.substr(0, 3) != "$2b" && hash.substr(0, 3) != "$2y") return false;
  if (hash[3] != '$' || hash[6] != '$') return false;
  if (hash[4] < '0' || hash[4] > '9' || hash[5] < '0' || hash[5] > '9') return false;
  const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
  if (cost < 4 || cost > 31) return false;
  for (const char c : hash.substr(7)) {
    const bool base64 =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '/';
    if (!base64) return false;
  }
  return true;
}

WebConfigResult ParseWebConfig(std::string_view text, const std::string& file_name) {
  try {
    return WebConfigParser(file_name).Parse(text);
  } catch (const std::exception& exception) {
    // yaml-cpp may throw from places the parser does not guard (allocation, deep nesting).
    WebConfigResult result;
    result.errors.push_back({file_name, 0, 0, std::string("cannot parse: ") + exception.what()});
    return result;
  }
}

WebConfigResult LoadWebConfig(const std::string& path) {
  auto failure = [&path](std::string message) {
    WebConfigResult result;
    result.errors.push_back({path, 0, 0, std::move(message)});
    return result;
  };
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return failure(std::string("cannot open: ") + std::strerror(errno));
  std::string text;
  char buffer[16384];
  while (true) {
    const ssize_t count = read(fd.get(), buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return failure(std::string("cannot read: ") + std::strerror(errno));
    if (count == 0) break;
    text.append(buffer, static_cast<size_t>(count));
    if (text.size() > kMaxWebConfigBytes) {
      return failure("file is larger than " + std::to_string(kMaxWebConfigBytes) +
                     " bytes; not a web config file");
    }
  }
  return ParseWebConfig(text, path);
}

}  // namespace pidfd_exporter
