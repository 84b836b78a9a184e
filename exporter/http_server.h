// HttpServer: the CivetWeb server and its endpoints: the telemetry path (text format
// 0.0.4, gzip when asked, GET and HEAD), `/` (status page), `/-/healthy`, `/-/ready`,
// `/-/reload` (POST/PUT), 404 for anything else; it never serves files. It also owns
// HTTPS (TlsOptions, through CivetWeb and the OpenSSL shim in exporter/tls_shim/) and basic
// authentication of every path (bcrypt, exporter-toolkit semantics). Handlers run on
// CivetWeb worker threads and only call the functions in HttpHandlers, which must be
// thread-safe; the server itself holds no process state. Start/destroy from the main thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pidfd_exporter {

enum class TlsVersion { kTls12, kTls13 };

// exporter-toolkit's client_auth_type values that verify what they accept; the ones that
// take unverified client certificates are refused by the web config loader.
enum class ClientAuthType { kNoClientCert, kVerifyClientCertIfGiven, kRequireAndVerifyClientCert };

// exporter-toolkit tls_server_config, validated (web_config.h). Paths are absolute or
// relative to the working directory; the server reads them once, at Start().
struct TlsOptions {
  std::string cert_file;       // PEM: the server certificate, then any intermediates
  std::string key_file;        // PEM private key of that certificate
  std::string client_ca_file;  // PEM CAs that client certificates must chain to ("" = none)
  ClientAuthType client_auth_type = ClientAuthType::kNoClientCert;
  TlsVersion min_version = TlsVersion::kTls12;
  TlsVersion max_version = TlsVersion::kTls13;
};

struct HttpServerOptions {
  // Prometheus style; ":P" means every IPv4 address (CivetWeb is built without IPv6).
  std::vector<std::string> listen_addresses{":9721"};
  std::string telemetry_path = "/metrics";
  // One thread per connection in CivetWeb: enough workers and a request timeout so that
  // slow clients holding connections never block a scrape for long.
  int worker_threads = 8;
  int request_timeout_ms = 10000;
  // user → bcrypt hash (exporter-toolkit basic_auth_users); empty = no authentication.
  std::map<std::string, std::string> basic_auth_users;
  // Set: every listen address serves HTTPS only (exporter-toolkit semantics).
  std::optional<TlsOptions> tls;
  // exporter-toolkit http_server_config.headers: added to every response, replacing a
  // built-in header of the same name (X-Content-Type-Options, Content-Security-Policy).
  std::vector<std::pair<std::string, std::string>> response_headers;
};

struct HttpHandlers {
  // Body of the telemetry path in text format 0.0.4.
  std::function<std::string()> render_metrics;
  // HTML of the status page `/`.
  std::function<std::string()> render_status_page;
  // Whether `/-/ready` answers 200 (after the first scan) or 503.
  std::function<bool()> ready;
  // Runs a config reload through the event loop and waits for it: "" on success, else the
  // errors (one per line). Unset: /-/reload answers 404.
  std::function<std::string()> reload;
};

class HttpServer {
 public:
  // Binds every address or fails as a whole: nullptr and *error naming the address
  // ("listen tcp 127.0.0.1:9721: address already in use") or, with TLS, the file that
  // could not be loaded ("tls: cert_file /etc/x.pem: ...").
  static std::unique_ptr<HttpServer> Start(const HttpServerOptions& options, HttpHandlers handlers,
                                           std::string* error);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound addresses as "ip:port" with the real port (a ":0" request gets an ephemeral one).
  std::vector<std::string> ListeningAddresses() const;

 private:
  HttpServer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Translates Prometheus listen-address syntax to CivetWeb's: ":9721" → "0.0.0.0:9721".
// nullopt-equivalent: returns "" for an address CivetWeb cannot bind (e.g. "[::1]:9721").
std::string ToCivetwebListenAddress(const std::string& address);

}  // namespace pidfd_exporter
