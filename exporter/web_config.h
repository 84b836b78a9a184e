// WebConfig: the exporter-toolkit web config file (--web.config.file) → a validated
// WebConfig value: TLS server settings, basic-auth users and extra response headers. Owns
// that schema and every error as `file:line:col: message`; it checks that the files it
// names can be read, but leaves parsing the certificates to HttpServer::Start. Settings the
// exporter cannot honour are errors, never silently dropped. Pure apart from reading
// files; any thread may call it; it never throws.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.h"
#include "http_server.h"

namespace pidfd_exporter {

struct WebConfig {
  std::string source;  // the file name
  // Set when tls_server_config names a certificate (or client authentication): HTTPS only.
  std::optional<TlsOptions> tls;
  std::map<std::string, std::string> basic_auth_users;  // user → bcrypt hash
  std::vector<std::pair<std::string, std::string>> response_headers;
  // Accepted settings that change nothing here ("http2: true"), as "file:line:col: ..."
  // for the caller to log.
  std::vector<std::string> warnings;
};

struct WebConfigResult {
  std::optional<WebConfig> config;  // set exactly when errors is empty
  std::vector<ConfigError> errors;
};

// Parses YAML text. Relative paths in tls_server_config are relative to the directory of
// `file_name`, as in exporter-toolkit; those files must exist and be readable.
WebConfigResult ParseWebConfig(std::string_view text, const std::string& file_name);
// Reads and parses a file; a missing or unreadable file is one error naming it and errno.
WebConfigResult LoadWebConfig(const std::string& path);

// Whether `hash` is a bcrypt hash libxcrypt can check: "$2a$", "$2b$" or "$2y$", a
// two-digit cost from 04 to 31, "$", then 53 characters of bcrypt's base64.
bool IsBcryptHash(std::string_view hash);

}  // namespace pidfd_exporter
