// HttpServer: the exporter's HTTP front end and its endpoints: the telemetry path (text
// format 0.0.4, gzip when asked, GET and HEAD), `/` (status page), `/-/healthy`,
// `/-/ready`, `/-/reload` (POST/PUT), 404 for anything else; it never serves files. It owns
// the gate (http_gate.h: public sockets, HTTPS with certificate rotation, request heads
// under a deadline, connection limits) and the CivetWeb server behind it on a private
// loopback port, which parses the complete requests the gate hands it and runs basic
// authentication of every path (bcrypt, exporter-toolkit semantics) and the routes.
// Handlers run on CivetWeb worker threads and only call the functions in HttpHandlers,
// which must be thread-safe; the server itself holds no process state. Start/destroy from
// the main thread.
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
// relative to the working directory; the server reads them at Start() and again whenever
// they change (tls_context.h).
struct TlsOptions {
  std::string cert_file;       // PEM: the server certificate, then any intermediates
  std::string key_file;        // PEM private key of that certificate
  std::string client_ca_file;  // PEM CAs that client certificates must chain to ("" = none)
  ClientAuthType client_auth_type = ClientAuthType::kNoClientCert;
  TlsVersion min_version = TlsVersion::kTls12;
  TlsVersion max_version = TlsVersion::kTls13;
};

struct HttpServerOptions {
  // Prometheus style; ":P" means every IPv4 address, "[::1]:P" an IPv6 one.
  std::vector<std::string> listen_addresses{":9721"};
  std::string telemetry_path = "/metrics";
  // CivetWeb worker threads: they only ever see complete requests from the gate.
  int worker_threads = 8;
  // From a complete request head to the last byte of the answer (a slow reader's limit).
  int request_timeout_ms = 10000;
  // From accept to a complete request head, TLS handshake included (--web.request-head-timeout).
  int request_head_timeout_ms = 3000;
  // Client connections open at once (--web.max-connections); at the limit the oldest one
  // without a complete request head is closed to make room.
  int max_connections = 1024;
  // Scrapes of the telemetry path served at once; more answer 503 (--web.max-requests,
  // node_exporter's flag); 0 = no limit.
  int max_requests = 40;
  // Append the HTTP front end's own series (pidfd_exporter_http_*, pidfd_exporter_tls_*)
  // to the telemetry path's body.
  bool http_metrics = true;
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

}  // namespace pidfd_exporter
