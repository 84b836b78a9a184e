// HttpServer: one CivetWeb server whose begin_request callback answers every request itself,
// routing by the exact, normalised path. CivetWeb's own handlers match by prefix and only
// know some methods, so routing here is what keeps "/metrics2" and "/metrics/x" at 404,
// any other method at 405, and authentication on every path.
//
// TLS: CivetWeb creates the SSL_CTX and hands it to the init_ssl callback, which loads the
// certificate, key, client CAs and versions itself with OpenSSL (CivetWeb's own options
// want certificate and key in one file and know no TLS 1.3 minimum). CivetWeb 1.15 reaches
// OpenSSL through dlopen("libssl.so"), which only works with the exporter's shim
// (exporter/tls_shim/); Start() makes sure the shim is loaded and refuses TLS rather than
// crash when it is not. The callback also undoes option bits CivetWeb sets with OpenSSL 1.1
// values that mean something else in OpenSSL 3 (RepairCivetwebOptions).
#include "http_server.h"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <civetweb.h>
#include <crypt.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "log.h"

namespace pidfd_exporter {
namespace {

constexpr char kTextPlain[] = "text/plain; charset=utf-8";
constexpr char kTextHtml[] = "text/html; charset=utf-8";
constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kRealmHeader[] = "Basic realm=\"pidfd_exporter\"";
// Unknown users are checked against a bcrypt setting of this cost when no configured hash
// says otherwise (10 is htpasswd's and the exporter-toolkit docs' usual cost).
constexpr unsigned long kDefaultBcryptCost = 10;
// Successful logins are remembered; the bound only matters against someone who already
// knows a password and varies the bytes bcrypt ignores (after the 72nd).
constexpr size_t kMaxCachedLogins = 1024;

// CivetWeb reports why mg_start failed only through log_message, on the thread that
// constructs the server. Start() points this at its buffer for the duration of the call.
thread_local std::string* startup_log = nullptr;

int OnCivetwebLogMessage(const mg_connection* /*connection*/, const char* message) {
  if (startup_log != nullptr) {
    if (!startup_log->empty()) startup_log->append("; ");
    startup_log->append(message);
  } else {
    // Runtime messages are about single connections (timeouts, malformed requests):
    // useful when debugging, noise otherwise.
    LogDebug("civetweb", {{"message", message}});
  }
  return 1;  // handled: CivetWeb must not write its own error log
}

std::string ToLower(std::string_view text) {
  std::string lowered(text);
  for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lowered;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Accept-Encoding lists codings with optional q-values; "gzip;q=0" explicitly refuses gzip.
bool AcceptsGzip(const char* accept_encoding) {
  if (accept_encoding == nullptr) return false;
  std::string_view rest(accept_encoding);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view element = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t semicolon = element.find(';');
    const std::string coding = ToLower(Trim(element.substr(0, semicolon)));
    if (coding != "gzip" && coding != "x-gzip" && coding != "*") continue;
    if (semicolon == std::string_view::npos) return true;
    const std::string parameters = ToLower(Trim(element.substr(semicolon + 1)));
    if (parameters.rfind("q=", 0) != 0) return true;
    const std::string_view quality = Trim(std::string_view(parameters).substr(2));
    // q=0, q=0.0, q=0.000 refuse; anything else accepts.
    if (quality.find_first_not_of("0.") != std::string_view::npos) return true;
  }
  return false;
}

// gzip (not raw deflate) in one pass; "" when zlib fails, and the caller sends plain text.
std::string Gzip(const std::string& input) {
  if (input.size() > UINT_MAX / 2) return {};
  z_stream stream{};
  if (deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string output(deflateBound(&stream, input.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  stream.avail_in = static_cast<uInt>(input.size());
  stream.next_out = reinterpret_cast<Bytef*>(output.data());
  stream.avail_out = static_cast<uInt>(output.size());
  const int result = deflate(&stream, Z_FINISH);
  output.resize(stream.total_out);
  deflateEnd(&stream);
  return result == Z_STREAM_END ? output : std::string();
}

// RFC 4648 base64 with padding; false on anything else.
bool DecodeBase64(std::string_view text, std::string* decoded) {
  auto value_of = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (text.size() % 4 != 0) return false;
  decoded->clear();
  for (size_t i = 0; i < text.size(); i += 4) {
    int values[4];
    int padding = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = text[i + j];
      if (c == '=' && i + 4 == text.size() && j >= 2) {
        values[j] = 0;
        ++padding;
        continue;
      }
      if (padding > 0) return false;  // data after '='
      values[j] = value_of(c);
      if (values[j] < 0) return false;
    }
    const unsigned bits = (static_cast<unsigned>(values[0]) << 18) |
                          (static_cast<unsigned>(values[1]) << 12) | (static_cast<unsigned>(values[2]) << 6) |
                          static_cast<unsigned>(values[3]);
    decoded->push_back(static_cast<char>((bits >> 16) & 0xff));
    if (padding < 2) decoded->push_back(static_cast<char>((bits >> 8) & 0xff));
    if (padding < 1) decoded->push_back(static_cast<char>(bits & 0xff));
  }
  return true;
}

bool ConstantTimeEquals(const char* left, const std::string& right) {
  if (std::strlen(left) != right.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < right.size(); ++i) {
    difference |= static_cast<unsigned char>(left[i] ^ right[i]);
  }
  return difference == 0;
}

// crypt_r output for `password` under `setting`, or "" when libxcrypt refuses (it answers
// with a "*0"/"*1" failure token rather than nullptr on most errors).
std::string Crypt(const std::string& password, const char* setting) {
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: not on a worker's stack
  const char* hashed = crypt_r(password.c_str(), setting, data.get());
  if (hashed == nullptr || hashed[0] == '*') return {};
  return hashed;
}

bool VerifyBcrypt(const std::string& password, const std::string& hash) {
  if (hash.rfind("$2", 0) != 0) return false;
  const std::string hashed = Crypt(password, hash.c_str());
  return !hashed.empty() && ConstantTimeEquals(hashed.c_str(), hash);
}

// Checks Basic credentials against bcrypt hashes. bcrypt costs ~50 ms on purpose, which a
// scrape every few seconds must not pay each time: a successful (user, password) is
// remembered as a salted SHA-256-crypt digest of the password (never the password itself;
// the salt is random per process), which costs ~0.3 ms to recompute per request.
class BasicAuthenticator {
 public:
  explicit BasicAuthenticator(std::map<std::string, std::string> users) : users_(std::move(users)) {
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    // nullptr random bytes: libxcrypt takes them from the OS.
    if (crypt_gensalt_rn("$5$", 1000, nullptr, 0, setting, sizeof(setting)) != nullptr && setting[0] == '$') {
      cache_setting_ = setting;
    }
    // The unknown-user check costs what a known user's costs, so that timing does not tell
    // which users exist. A bcrypt setting (no hash part) does the full work and never matches.
    unsigned long cost = kDefaultBcryptCost;
    if (!users_.empty()) {
      const std::string& hash = users_.begin()->second;  // "$2b$10$…": the cost is digits 4-5
      if (hash.size() > 7 && hash.rfind("$2", 0) == 0 && hash[6] == '$') {
        cost = std::strtoul(hash.substr(4, 2).c_str(), nullptr, 10);
      }
    }
    if (crypt_gensalt_rn("$2b$", cost, nullptr, 0, setting, sizeof(setting)) != nullptr &&
        setting[0] == '$') {
      dummy_setting_ = setting;
    } else {
      dummy_setting_ = "$2b$10$abcdefghijklmnopqrstuu";
    }
  }

  bool enabled() const { return !users_.empty(); }

  bool Authorize(const char* authorization_header) {
    std::string user;
    std::string password;
    if (!ParseBasic(authorization_header, &user, &password)) return false;
    const auto found = users_.find(user);
    const std::string digest =
        cache_setting_.empty() ? std::string() : Crypt(password, cache_setting_.c_str());
    if (found != users_.end() && !digest.empty()) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (cache_.count({user, digest}) > 0) return true;
    }
    bool valid;
    {
      // One bcrypt at a time: a flood of bad passwords then costs one core, not all workers'.
      std::lock_guard<std::mutex> lock(bcrypt_mutex_);
      valid = VerifyBcrypt(password, found != users_.end() ? found->second : dummy_setting_);
    }
    valid = valid && found != users_.end();
    if (valid && !digest.empty()) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (cache_.size() >= kMaxCachedLogins) cache_.clear();
      cache_.insert({user, digest});
    }
    return valid;
  }

 private:
  static bool ParseBasic(const char* header, std::string* user, std::string* password) {
    if (header == nullptr) return false;
    std::string_view value = Trim(header);
    if (value.size() < 6 || ToLower(value.substr(0, 6)) != "basic ") return false;
    std::string decoded;
    if (!DecodeBase64(Trim(value.substr(6)), &decoded)) return false;
    // crypt_r reads C strings: a NUL would silently cut the password short.
    if (decoded.find('\0') != std::string::npos) return false;
    const size_t colon = decoded.find(':');
    if (colon == std::string::npos) return false;
    *user = decoded.substr(0, colon);
    *password = decoded.substr(colon + 1);
    return true;
  }

  const std::map<std::string, std::string> users_;
  std::string cache_setting_;  // "" disables the cache: every request pays bcrypt
  std::string dummy_setting_;
  std::mutex cache_mutex_;
  std::set<std::pair<std::string, std::string>> cache_;
  std::mutex bcrypt_mutex_;
};

struct Response {
  int status = 200;
  const char* content_type = kTextPlain;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

bool SameHeaderName(const std::string& left, const std::string& right) {
  return ToLower(left) == ToLower(right);
}

void Send(mg_connection* connection, const Response& response, bool head_only) {
  mg_response_header_start(connection, response.status);
  mg_response_header_add(connection, "Content-Type", response.content_type, -1);
  const std::string length = std::to_string(response.body.size());
  mg_response_header_add(connection, "Content-Length", length.c_str(), -1);
  const bool has_content_type_options =
      std::any_of(response.headers.begin(), response.headers.end(),
                  [](const auto& header) { return SameHeaderName(header.first, "X-Content-Type-Options"); });
  if (!has_content_type_options) mg_response_header_add(connection, "X-Content-Type-Options", "nosniff", -1);
  for (const auto& [name, value] : response.headers) {
    mg_response_header_add(connection, name.c_str(), value.c_str(), -1);
  }
  mg_response_header_send(connection);
  if (!head_only && !response.body.empty()) mg_write(connection, response.body.data(), response.body.size());
}

Response Text(int status, std::string body) {
  Response response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

Response MethodNotAllowed(const char* allow) {
  Response response = Text(405, std::string("Only ") +
                                    (std::strcmp(allow, "POST, PUT") == 0 ? "POST or PUT" : "GET or HEAD") +
                                    " requests allowed\n");
  response.headers.emplace_back("Allow", allow);
  return response;
}

constexpr char kStatusPageFallback[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pidfd_exporter</title></head>"
    "<body><h1>pidfd_exporter</h1></body></html>\n";

// Routes every request. Runs on CivetWeb worker threads, several at once; it only reads
// its members after construction, and the handlers are thread-safe by contract.
class Router {
 public:
  Router(std::string telemetry_path, HttpHandlers handlers, std::map<std::string, std::string> users,
         std::vector<std::pair<std::string, std::string>> response_headers)
      : telemetry_path_(std::move(telemetry_path)),
        handlers_(std::move(handlers)),
        authenticator_(std::move(users)),
        response_headers_(std::move(response_headers)) {}

  // CivetWeb's begin_request callback: it sees every request, whatever its method and path,
  // before CivetWeb's own prefix-matched handlers and file serving, which therefore never run.
  static int OnBeginRequest(mg_connection* connection) {
    const mg_request_info* request = mg_get_request_info(connection);
    const auto* server = static_cast<const CivetServer*>(request->user_data);
    auto* router = static_cast<Router*>(const_cast<void*>(server->getUserContext()));
    return router->Handle(connection, request);
  }

 private:
  int Handle(mg_connection* connection, const mg_request_info* request) {
    const std::string method = request->request_method != nullptr ? request->request_method : "";
    const bool head = method == "HEAD";
    Response response;
    try {
      response = Route(connection, request, method);
    } catch (const std::exception& error) {
      // A handler threw: answer rather than let the exception unwind into CivetWeb's C code.
      LogError("HTTP handler failed",
               {{"path", request->local_uri != nullptr ? request->local_uri : ""}, {"err", error.what()}});
      response = Text(500, "500 internal server error\n");
    } catch (...) {
      response = Text(500, "500 internal server error\n");
    }
    try {
      // Configured headers go on every answer, 401 and 404 included, as in exporter-toolkit.
      for (const auto& configured : response_headers_) {
        std::erase_if(response.headers, [&configured](const auto& header) {
          return SameHeaderName(header.first, configured.first);
        });
        response.headers.push_back(configured);
      }
      Send(connection, response, head);
    } catch (...) {
      // Only allocation can fail here; the connection is closed either way.
    }
    return response.status;  // "handled", and the status for CivetWeb's access log
  }

  Response Route(mg_connection* connection, const mg_request_info* request, const std::string& method) {
    if (authenticator_.enabled() && !authenticator_.Authorize(mg_get_header(connection, "Authorization"))) {
      Response response = Text(401, "Unauthorized\n");
      response.headers.emplace_back("WWW-Authenticate", kRealmHeader);
      return response;
    }
    // local_uri is decoded and normalised by CivetWeb ("/a/../metrics" is "/metrics").
    const std::string path = request->local_uri != nullptr ? request->local_uri : "";
    const bool get_or_head = method == "GET" || method == "HEAD";
    if (path == telemetry_path_) {
      if (!get_or_head) return MethodNotAllowed("GET, HEAD");
      return Metrics(mg_get_header(connection, "Accept-Encoding"));
    }
    if (path == "/") {
      if (!get_or_head) return MethodNotAllowed("GET, HEAD");
      Response response;
      response.content_type = kTextHtml;
      response.body = handlers_.render_status_page ? handlers_.render_status_page() : kStatusPageFallback;
      // The page needs no script and no external resource; forbid both.
      response.headers.emplace_back("Content-Security-Policy",
                                    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
      return response;
    }
    if (path == "/-/healthy") {
      if (!get_or_head) return MethodNotAllowed("GET, HEAD");
      return Text(200, "Healthy\n");
    }
    if (path == "/-/ready") {
      if (!get_or_head) return MethodNotAllowed("GET, HEAD");
      const bool ready = handlers_.ready ? handlers_.ready() : true;
      return ready ? Text(200, "Ready\n") : Text(503, "Not ready\n");
    }
    if (path == "/-/reload" && handlers_.reload) {
      if (method != "POST" && method != "PUT") return MethodNotAllowed("POST, PUT");
      const std::string errors = handlers_.reload();
      if (errors.empty()) return Text(200, "");
      std::string body = "failed to reload config: " + errors;
      if (body.back() != '\n') body += '\n';
      return Text(500, std::move(body));
    }
    return Text(404, "404 page not found\n");
  }

  Response Metrics(const char* accept_encoding) {
    Response response;
    response.content_type = kMetricsContentType;
    response.body = handlers_.render_metrics ? handlers_.render_metrics() : std::string();
    // Caches between Prometheus and us must not hand gzip to a client that did not ask.
    response.headers.emplace_back("Vary", "Accept-Encoding");
    if (AcceptsGzip(accept_encoding)) {
      std::string compressed = Gzip(response.body);
      if (!compressed.empty()) {
        response.body.swap(compressed);
        response.headers.emplace_back("Content-Encoding", "gzip");
      }
    }
    return response;
  }

  const std::string telemetry_path_;
  const HttpHandlers handlers_;
  BasicAuthenticator authenticator_;
  const std::vector<std::pair<std::string, std::string>> response_headers_;
};

// --- TLS -------------------------------------------------------------------------------

// OpenSSL's queued errors as one line ("...: no such file; ..."), emptying the queue.
std::string OpenSslErrors() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

// CivetWeb dlopen()s these names and looks functions up by OpenSSL 1.1 names; glibc hands
// it an already-loaded object whose SONAME matches. The shims are dependencies of the
// binary, but a linker defaulting to --as-needed may have dropped them, so this loads them
// here too (found through the binary's RUNPATH, as dlopen() from the executable searches
// it) and keeps them loaded for good: a dlclose() would let CivetWeb's own dlopen() find
// the system's libssl.so instead. Then it checks what CivetWeb will get. Without
// SSL_get_peer_certificate the first handshake would jump to address 0, so TLS is refused
// up front. "" when CivetWeb will find what it needs.
std::string LoadOpenSslForCivetweb() {
  for (const auto& [library, function] :
       {std::pair{"libcrypto.so", "ERR_get_error"}, std::pair{"libssl.so", "SSL_get_peer_certificate"}}) {
    void* handle = dlopen(library, RTLD_LAZY);  // never closed, on purpose
    if (handle == nullptr) {
      return std::string("tls: CivetWeb cannot load ") + library + " (" + dlerror() +
             "); install pidfd_exporter's TLS shim libraries where its RUNPATH points";
    }
    if (dlsym(handle, function) == nullptr) {
      return std::string("tls: ") + library + " has no " + function +
             " (OpenSSL 3 without pidfd_exporter's TLS shim): CivetWeb would crash on the first "
             "handshake; install the shim libraries where the binary's RUNPATH points";
    }
  }
  return "";
}

int ToOpenSslVersion(TlsVersion version) {
  return version == TlsVersion::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

// CivetWeb 1.15 was built against OpenSSL 1.1 option values (its own copies, since it
// loads OpenSSL at run time) and sets SSL_OP_ALL as 0x80000BFF and SSL_OP_NO_SSLv2 as
// 0x01000000. OpenSSL 3 numbers its options differently; there those bits mean, among
// others, NO_EXTENDED_MASTER_SECRET, ALLOW_CLIENT_RENEGOTIATION, ENABLE_KTLS,
// IGNORE_UNEXPECTED_EOF and DISABLE_TLSEXT_CA_NAMES. The last one makes the TLS 1.3
// CertificateRequest carry an empty CA list, which Go clients (Prometheus) reject with
// "tls: unexpected message". Undo those bits, then set what CivetWeb meant.
void RepairCivetwebOptions(SSL_CTX* context) {
  constexpr uint64_t kCivetwebOpenSsl11Options = 0x80000BFFull | 0x01000000ull;
  SSL_CTX_clear_options(context, kCivetwebOpenSsl11Options);
  SSL_CTX_set_options(context, SSL_OP_ALL | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                   SSL_OP_CIPHER_SERVER_PREFERENCE |
                                   SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
}

// Sets CivetWeb's SSL_CTX up from `options`; "" on success, else the reason naming the file.
std::string ConfigureSslContext(SSL_CTX* context, const TlsOptions& options) {
  ERR_clear_error();
  RepairCivetwebOptions(context);
  // The chain variant also sends the intermediates that follow the leaf in cert_file.
  if (SSL_CTX_use_certificate_chain_file(context, options.cert_file.c_str()) != 1) {
    return "tls: cert_file " + options.cert_file + ": " + OpenSslErrors();
  }
  if (SSL_CTX_use_PrivateKey_file(context, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return "tls: key_file " + options.key_file + " does not match cert_file " + options.cert_file;
    }
    return "tls: key_file " + options.key_file + ": " + OpenSslErrors();
  }
  if (SSL_CTX_check_private_key(context) != 1) {
    return "tls: key_file " + options.key_file + " does not match cert_file " + options.cert_file + ": " +
           OpenSslErrors();
  }
  if (SSL_CTX_set_min_proto_version(context, ToOpenSslVersion(options.min_version)) != 1 ||
      SSL_CTX_set_max_proto_version(context, ToOpenSslVersion(options.max_version)) != 1) {
    return "tls: cannot set the TLS versions: " + OpenSslErrors();
  }
  // Resumed sessions skip certificate verification; OpenSSL refuses to resume with client
  // verification unless the context names itself, and CivetWeb only does that when it
  // loads the certificate itself.
  static constexpr unsigned char kSessionContext[] = "pidfd_exporter";
  SSL_CTX_set_session_id_context(context, kSessionContext, sizeof kSessionContext - 1);
  if (options.client_auth_type != ClientAuthType::kNoClientCert) {
    if (SSL_CTX_load_verify_locations(context, options.client_ca_file.c_str(), nullptr) != 1) {
      return "tls: client_ca_file " + options.client_ca_file + ": " + OpenSslErrors();
    }
    // The CA names go into the CertificateRequest so that clients pick the right certificate.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca_file.c_str());
    if (names == nullptr) {
      return "tls: client_ca_file " + options.client_ca_file + ": no certificate found: " + OpenSslErrors();
    }
    SSL_CTX_set_client_CA_list(context, names);  // takes ownership
    int mode = SSL_VERIFY_PEER;
    if (options.client_auth_type == ClientAuthType::kRequireAndVerifyClientCert) {
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(context, mode, nullptr);
  } else {
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr);
  }
  return "";
}

// CivetWeb's init_ssl callback runs inside mg_start on the thread that constructs the
// server; Start() points these at its options and error text for the duration.
thread_local const TlsOptions* startup_tls = nullptr;
thread_local std::string* startup_tls_error = nullptr;

int OnCivetwebInitSsl(void* ssl_context, void* /*user_data*/) {
  if (startup_tls == nullptr) return -1;  // TLS is only ever started by Start()
  try {
    const std::string error = ConfigureSslContext(static_cast<SSL_CTX*>(ssl_context), *startup_tls);
    if (!error.empty()) {
      if (startup_tls_error != nullptr) *startup_tls_error = error;
      return -1;
    }
  } catch (...) {
    return -1;  // allocation failure; never unwind into CivetWeb
  }
  return 1;  // set up completely: CivetWeb must not load certificates of its own
}

bool IsValidPort(std::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  if (port.find_first_not_of("0123456789") != std::string_view::npos) return false;
  return std::stoi(std::string(port)) <= 65535;
}

// Turns CivetWeb's startup log into "listen tcp ADDRESS: reason" for the address that
// failed; "" when the messages have a shape this does not know.
//   "cannot bind to 127.0.0.1:9721: 98 (Address already in use)"
//   "host:1: invalid port spec (entry 2). Expecting list of: [IP_ADDRESS:]PORT[s|r]"
std::string DescribeStartupFailure(const std::string& messages,
                                   const std::vector<std::string>& listen_addresses,
                                   const std::vector<std::string>& civetweb_addresses) {
  constexpr std::string_view kBindPrefix = "cannot bind to ";
  const size_t bind = messages.find(kBindPrefix);
  if (bind != std::string::npos) {
    const size_t address_start = bind + kBindPrefix.size();
    const size_t address_end = messages.find(": ", address_start);
    const size_t open = messages.find('(', address_end);
    const size_t close = messages.find(')', open);
    if (address_end == std::string::npos || open == std::string::npos || close == std::string::npos)
      return "";
    const std::string address = messages.substr(address_start, address_end - address_start);
    for (size_t i = 0; i < civetweb_addresses.size(); ++i) {
      if (civetweb_addresses[i] == address) {
        return "listen tcp " + listen_addresses[i] + ": " +
               ToLower(messages.substr(open + 1, close - open - 1));
      }
    }
    return "";
  }
  constexpr std::string_view kEntryPrefix = "invalid port spec (entry ";
  const size_t entry = messages.find(kEntryPrefix);
  if (entry != std::string::npos) {
    const size_t index = std::strtoul(messages.c_str() + entry + kEntryPrefix.size(), nullptr, 10);
    if (index >= 1 && index <= listen_addresses.size()) {
      return "listen tcp " + listen_addresses[index - 1] + ": invalid or unresolvable address";
    }
  }
  return "";
}

std::string Join(const std::vector<std::string>& parts, const char* separator) {
  std::string joined;
  for (const std::string& part : parts) {
    if (!joined.empty()) joined += separator;
    joined += part;
  }
  return joined;
}

}  // namespace

std::string ToCivetwebListenAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return "";
  const std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  // A port with CivetWeb's "s"/"r" suffix would silently turn on TLS or redirects.
  if (!IsValidPort(port)) return "";
  if (host.empty()) return "0.0.0.0:" + port;
  // Brackets are IPv6, which Debian's CivetWeb lacks; ',' and spaces would inject more
  // listening ports into CivetWeb's comma-separated option.
  if (host.find_first_of("[]:, \t") != std::string::npos) return "";
  return host + ":" + port;
}

struct HttpServer::Impl {
  std::unique_ptr<Router> router;
  std::unique_ptr<CivetServer> server;  // declared after the router: destroyed before it
  std::vector<std::string> listening_addresses;
};

HttpServer::HttpServer() : impl_(std::make_unique<Impl>()) {}

namespace {

// Connects to `address` ("ip:port"; 0.0.0.0 is reached through loopback) and closes at once.
void Knock(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return;
  std::string host = address.substr(0, colon);
  if (host == "0.0.0.0") host = "127.0.0.1";
  sockaddr_in target{};
  target.sin_family = AF_INET;
  target.sin_port = htons(static_cast<uint16_t>(std::atoi(address.c_str() + colon + 1)));
  if (inet_pton(AF_INET, host.c_str(), &target.sin_addr) != 1) return;
  const int socket_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (socket_fd < 0) return;
  (void)connect(socket_fd, reinterpret_cast<const sockaddr*>(&target), sizeof target);
  close(socket_fd);
}

}  // namespace

HttpServer::~HttpServer() {
  if (!impl_ || !impl_->server) return;
  // CivetWeb's master thread notices the stop request only when its poll() on the
  // listening sockets returns, which takes up to its internal timeout (~1 s here). A
  // connection attempt wakes it at once, so SIGTERM ends the exporter promptly.
  std::atomic<bool> closed{false};
  std::thread waker([this, &closed] {
    while (!closed.load()) {
      for (const auto& address : impl_->listening_addresses) Knock(address);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  // Stops the workers (waits for requests in flight) while the router they call still exists.
  impl_->server->close();
  closed.store(true);
  waker.join();
}

std::vector<std::string> HttpServer::ListeningAddresses() const {
  return impl_->listening_addresses;
}

std::unique_ptr<HttpServer> HttpServer::Start(const HttpServerOptions& options, HttpHandlers handlers,
                                              std::string* error) {
  std::string ignored;
  if (error == nullptr) error = &ignored;
  error->clear();
  try {
    if (options.listen_addresses.empty()) {
      *error = "no listen address";
      return nullptr;
    }
    if (options.telemetry_path.empty() || options.telemetry_path[0] != '/' || options.telemetry_path == "/" ||
        options.telemetry_path.rfind("/-/", 0) == 0) {
      *error = "invalid telemetry path \"" + options.telemetry_path +
               "\": must start with / and not be / or under /-/";
      return nullptr;
    }
    if (options.worker_threads < 1 || options.request_timeout_ms < 1) {
      *error = "worker threads and request timeout must be positive";
      return nullptr;
    }
    std::vector<std::string> civetweb_addresses;
    for (const std::string& address : options.listen_addresses) {
      const std::string translated = ToCivetwebListenAddress(address);
      if (translated.empty()) {
        *error = "listen tcp " + address +
                 ": unsupported address (expected host:port or :port; this build has no IPv6)";
        return nullptr;
      }
      civetweb_addresses.push_back(translated);
    }

    if (options.tls) {
      *error = LoadOpenSslForCivetweb();
      if (!error->empty()) return nullptr;
    }
    // CivetWeb's "s" suffix makes a port HTTPS-only.
    std::vector<std::string> civetweb_ports = civetweb_addresses;
    if (options.tls) {
      for (std::string& port : civetweb_ports) port += 's';
    }

    std::unique_ptr<HttpServer> server(new HttpServer());
    server->impl_->router = std::make_unique<Router>(options.telemetry_path, std::move(handlers),
                                                     options.basic_auth_users, options.response_headers);
    const std::vector<std::string> civetweb_options = {
        "listening_ports", Join(civetweb_ports, ","), "num_threads", std::to_string(options.worker_threads),
        "request_timeout_ms", std::to_string(options.request_timeout_ms),
        // No keep-alive: CivetWeb gives each open connection a worker thread of its own, so
        // a kept-alive idle connection would hold one of the few workers. Prometheus scrapes
        // every 15 s or more, far beyond any useful keep-alive timeout, so reuse would save
        // nothing but a loopback/LAN TCP handshake.
        "enable_keep_alive", "no",
        // document_root stays unset: no file serving, no directory listing, no PUT/DELETE of files.
    };
    CivetCallbacks callbacks;  // zero-initialised by its constructor
    callbacks.log_message = OnCivetwebLogMessage;
    callbacks.begin_request = Router::OnBeginRequest;
    if (options.tls) callbacks.init_ssl = OnCivetwebInitSsl;
    std::string startup_messages;
    std::string tls_error;
    startup_log = &startup_messages;
    startup_tls = options.tls ? &*options.tls : nullptr;
    startup_tls_error = &tls_error;
    try {
      server->impl_->server =
          std::make_unique<CivetServer>(civetweb_options, &callbacks, server->impl_->router.get());
    } catch (const CivetException&) {
      // Handled below: the reason is in startup_messages.
    }
    startup_log = nullptr;
    startup_tls = nullptr;
    startup_tls_error = nullptr;
    if (!server->impl_->server || server->impl_->server->getContext() == nullptr) {
      if (!tls_error.empty()) {
        *error = std::move(tls_error);
        return nullptr;
      }
      *error = DescribeStartupFailure(startup_messages, options.listen_addresses, civetweb_ports);
      if (!error->empty()) return nullptr;
      *error = "listen tcp " + Join(options.listen_addresses, ", ") + ": " +
               (startup_messages.empty() ? "CivetWeb failed to start" : startup_messages);
      return nullptr;
    }
    std::vector<mg_server_port> ports(civetweb_addresses.size() + 1);
    const int count = mg_get_server_ports(server->impl_->server->getContext(), static_cast<int>(ports.size()),
                                          ports.data());
    // CivetWeb lists the ports in the order of listening_ports.
    for (int i = 0; i < count && i < static_cast<int>(civetweb_addresses.size()); ++i) {
      const std::string& translated = civetweb_addresses[i];
      server->impl_->listening_addresses.push_back(translated.substr(0, translated.rfind(':') + 1) +
                                                   std::to_string(ports[i].port));
    }
    return server;
  } catch (const std::exception& failure) {
    startup_log = nullptr;
    startup_tls = nullptr;
    startup_tls_error = nullptr;
    *error = std::string("starting HTTP server: ") + failure.what();
    return nullptr;
  }
}

}  // namespace pidfd_exporter
