// HttpGate: the exporter's public listening sockets and every client connection until its
// request head is complete. CivetWeb gives each connection a worker thread from the first
// byte on, so a few clients that send half a request hold every worker (issue 16). The gate
// is one epoll thread that accepts, runs the TLS handshake (tls_context.h), reads the
// request head under a deadline (--web.request-head-timeout), and only then connects to
// CivetWeb's private loopback listener and hands it the complete head; it reads CivetWeb's
// answer into memory at once (freeing the worker) and sends it on to the client under a
// second deadline. Bounds: open connections (--web.max-connections; the oldest connection
// still without a complete head makes room for a new one), request head bytes, requests
// handed to CivetWeb at once, and bytes of answers waiting for slow readers.
//
// Threads: Start() and the destructor on the owning thread; the gate thread does all the
// rest. GatePorts and the counters are thread-safe.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "unique_fd.h"

namespace pidfd_exporter {

class TlsContext;

// Local ports of the gate's connections to CivetWeb. CivetWeb's listener is on loopback,
// so other local processes can reach it; the router answers only requests from these.
class GatePorts {
 public:
  void Add(uint16_t port);
  void Remove(uint16_t port);
  bool Contains(uint16_t port) const;

 private:
  mutable std::mutex mutex_;
  std::unordered_set<uint16_t> ports_;
};

struct HttpGateOptions {
  int max_connections = 1024;
  std::chrono::milliseconds head_timeout{3000};
  // From a complete head to the last byte of the answer sent.
  std::chrono::milliseconds response_timeout{10000};
  size_t max_head_bytes = 16384;  // CivetWeb's max_request_size default
  // Answers held in memory for clients that read slowly, all connections together. Past
  // it, the connection that has waited longest for its client is closed.
  size_t max_buffered_response_bytes = size_t{32} << 20;
  // Requests handed to CivetWeb at once (its workers plus its queue); more wait here.
  int max_backend_connections = 16;
  sockaddr_in backend{};  // CivetWeb's loopback listener
  // Extra header lines ("Name: value\r\n") for the answers the gate writes itself (431, 503).
  std::string extra_headers;
  // The whole answer to a complete request head, computed on the gate thread; used when the
  // process has no descriptors left for CivetWeb to accept the gate's connection.
  std::function<std::string(const std::string& head)> serve_without_backend;
  // The telemetry path. A GET or HEAD of it is answered by serve_without_backend on the
  // gate's scrape thread (ScrapeWorker) while that is free, without the relay through
  // CivetWeb; a scrape that comes while another is being answered goes to CivetWeb. Empty:
  // every request goes to CivetWeb.
  std::string direct_path;
};

// Counters since start, for the exporter's self-metrics (any thread may read them).
struct HttpGateCounters {
  std::atomic<int64_t> open_connections{0};
  std::atomic<uint64_t> accepted{0};
  // Requests answered by the gate itself because the process was out of descriptors.
  std::atomic<uint64_t> served_without_backend{0};
  // Scrapes answered on the gate's scrape thread (HttpGateOptions::direct_path).
  std::atomic<uint64_t> served_directly{0};
  // Connections closed before a complete answer, by reason (kDropReasonNames).
  std::atomic<uint64_t> dropped[8]{};
};
inline constexpr const char* kDropReasonNames[8] = {
    "head_timeout",     "over_max_connections", "head_too_large", "tls_handshake",
    "response_timeout", "response_buffer_full", "queue_timeout",  "accept_failed"};
enum class DropReason {
  kHeadTimeout,
  kOverMaxConnections,
  kHeadTooLarge,
  kTlsHandshake,
  kResponseTimeout,
  kResponseBufferFull,
  kQueueTimeout,
  kAcceptFailed
};

// A bound listening socket and the address it reports ("127.0.0.1:9721", "[::1]:9721").
struct ListeningSocket {
  UniqueFd fd;
  std::string address;
};

// Splits Prometheus listen-address syntax: ":9721" → ("", "9721"), "[::1]:9721" →
// ("::1", "9721"); false for anything else (no port, a bad port, stray characters).
bool SplitListenAddress(const std::string& address, std::string* host, std::string* port);

// Binds and listens on every address, or fails as a whole with *error naming the address
// ("listen tcp 127.0.0.1:9721: address already in use").
bool BindListeners(const std::vector<std::string>& addresses, std::vector<ListeningSocket>* sockets,
                   std::string* error);

class HttpGate {
 public:
  // `tls` nullptr: plain HTTP. `ports` is shared with the router.
  static std::unique_ptr<HttpGate> Start(const HttpGateOptions& options,
                                         std::vector<ListeningSocket> listeners,
                                         std::unique_ptr<TlsContext> tls, std::shared_ptr<GatePorts> ports,
                                         std::string* error);
  // Ends the gate thread: nothing is accepted or answered afterwards, but the counters and
  // TLS state stay readable until destruction (a CivetWeb worker may still be rendering them).
  void Stop();
  ~HttpGate();
  HttpGate(const HttpGate&) = delete;
  HttpGate& operator=(const HttpGate&) = delete;

  const HttpGateCounters& counters() const;
  // TLS certificate reloads and failed reloads (0 without TLS).
  uint64_t tls_reloads() const;
  uint64_t tls_reload_failures() const;
  bool tls_last_reload_successful() const;  // true without TLS

 private:
  HttpGate();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pidfd_exporter
