// HttpGate: see http_gate.h. One level-triggered epoll loop; every socket is non-blocking.
// A connection moves through phases: (TLS handshake) → head → (queued) → relay → closing.
// Connections never destroy themselves while the loop may still hold an event for them:
// Close() moves them to a graveyard that is emptied after each batch of events.
#include "http_gate.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>

#include "log.h"
#include "scrape_worker.h"
#include "tls_context.h"

namespace pidfd_exporter {

void GatePorts::Add(uint16_t port) {
  std::lock_guard<std::mutex> lock(mutex_);
  ports_.insert(port);
}
void GatePorts::Remove(uint16_t port) {
  std::lock_guard<std::mutex> lock(mutex_);
  ports_.erase(port);
}
bool GatePorts::Contains(uint16_t port) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ports_.count(port) > 0;
}

bool SplitListenAddress(const std::string& address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *port = address.substr(colon + 1);
  if (port->empty() || port->size() > 5 || port->find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(*port) > 65535) {
    return false;
  }
  std::string name = address.substr(0, colon);
  if (!name.empty() && name.front() == '[') {
    if (name.size() < 3 || name.back() != ']') return false;
    name = name.substr(1, name.size() - 2);
    if (name.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) return false;
  } else if (name.find_first_of("[]:, \t") != std::string::npos) {
    return false;
  }
  *host = name;
  return true;
}

namespace {

std::string LowerCase(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string FormatAddress(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(v6.sin6_port));
  }
  const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
  inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
  return std::string(text) + ":" + std::to_string(ntohs(v4.sin_port));
}

// One address to bind: IPv4 preferred when a name resolves to both ("localhost").
bool Resolve(const std::string& host, const std::string& port, sockaddr_storage* address, socklen_t* length) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* results = nullptr;
  // An empty host (":9721") is every IPv4 address, as before the gate existed.
  if (getaddrinfo(host.empty() ? "0.0.0.0" : host.c_str(), port.c_str(), &hints, &results) != 0) return false;
  const addrinfo* chosen = nullptr;
  for (const addrinfo* entry = results; entry != nullptr; entry = entry->ai_next) {
    if (entry->ai_family == AF_INET) {
      chosen = entry;
      break;
    }
    if (entry->ai_family == AF_INET6 && chosen == nullptr) chosen = entry;
  }
  if (chosen != nullptr) {
    std::memcpy(address, chosen->ai_addr, chosen->ai_addrlen);
    *length = chosen->ai_addrlen;
  }
  freeaddrinfo(results);
  return chosen != nullptr;
}

bool BindOne(const std::string& listen_address, ListeningSocket* socket_out, std::string* error) {
  std::string host;
  std::string port;
  if (!SplitListenAddress(listen_address, &host, &port)) {
    *error =
        "listen tcp " + listen_address + ": unsupported address (expected host:port, [ipv6]:port or :port)";
    return false;
  }
  sockaddr_storage address{};
  socklen_t length = 0;
  if (!Resolve(host, port, &address, &length)) {
    *error = "listen tcp " + listen_address + ": invalid or unresolvable address";
    return false;
  }
  UniqueFd fd(::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const int on = 1;
  if (fd.valid()) {
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    // "[::]:P" beside ":P" must not collide on the IPv4 part.
    if (address.ss_family == AF_INET6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  }
  if (!fd.valid() || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::listen(fd.get(), 4096) != 0) {
    *error = "listen tcp " + listen_address + ": " + LowerCase(std::strerror(errno));
    return false;
  }
  socklen_t bound_length = sizeof address;
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &bound_length);
  socket_out->address = FormatAddress(address);
  socket_out->fd = std::move(fd);
  return true;
}

}  // namespace

bool BindListeners(const std::vector<std::string>& addresses, std::vector<ListeningSocket>* sockets,
                   std::string* error) {
  sockets->clear();
  for (const std::string& address : addresses) {
    ListeningSocket bound;
    if (!BindOne(address, &bound, error)) {
      sockets->clear();
      return false;
    }
    sockets->push_back(std::move(bound));
  }
  return true;
}

namespace {

using Clock = std::chrono::steady_clock;

struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

enum class Io { kProgress, kWantRead, kWantWrite, kEof, kError };
struct IoResult {
  Io status;
  size_t bytes = 0;
};

enum class Phase { kHandshake, kHead, kQueued, kRelay, kClosing };

// Whether a connection waits in a listener's queue. accept4() takes a descriptor before it
// looks at the queue, so when the process has none left an empty queue fails with EMFILE too,
// not EAGAIN: every batch of accepts would end that way.
bool ConnectionPending(int listener_fd) {
  pollfd listener{listener_fd, POLLIN, 0};
  return ::poll(&listener, 1, 0) == 1 && (listener.revents & POLLIN) != 0;
}

struct Connection;
// What an epoll event points at.
struct Target {
  enum class Kind { kWake, kListener, kClient, kBackend, kScrapeDone } kind;
  Connection* connection = nullptr;
  size_t listener = 0;
};

struct Connection {
  uint64_t serial = 0;
  UniqueFd client;
  std::unique_ptr<SSL, SslFree> ssl;
  Phase phase = Phase::kHead;
  bool closed = false;
  std::string head;
  // Relay: the connection to CivetWeb, the head bytes written to it, the answer so far.
  UniqueFd backend;
  uint16_t backend_port = 0;
  bool backend_connected = false;
  bool backend_done = false;
  size_t head_sent = 0;
  std::string answer;
  size_t answer_sent = 0;
  bool client_write_blocked = false;
  // What the last client read or write waits for: TLS may need to write while reading
  // (handshake) or read while writing.
  uint32_t wants = EPOLLIN;
  std::list<std::unique_ptr<Connection>>::iterator self;
  Clock::time_point deadline;
  std::list<Connection*>* order = nullptr;  // the phase list this connection is in
  std::list<Connection*>::iterator order_position;
  uint32_t client_events = 0;
  uint32_t backend_events = 0;
  Target client_target{Target::Kind::kClient, this};
  Target backend_target{Target::Kind::kBackend, this};
  size_t pending() const { return answer.size() - answer_sent; }
};

// A whole answer written by the gate itself.
std::string CannedAnswer(int status, const char* reason, const std::string& body, const std::string& extra) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nX-Content-Type-Options: nosniff\r\n" + extra + "Connection: close\r\n\r\n" + body;
}

// Whether the head asks for `path` by GET or HEAD (a query string allowed): a scrape.
bool IsScrapeOf(const std::string& head, const std::string& path) {
  const size_t method_end = head.find(' ');
  if (method_end == std::string::npos) return false;
  const std::string_view method(head.data(), method_end);
  if (method != "GET" && method != "HEAD") return false;
  const size_t target_end = head.find_first_of(" \r\n", method_end + 1);
  if (target_end == std::string::npos) return false;
  std::string_view target(head.data() + method_end + 1, target_end - method_end - 1);
  target = target.substr(0, target.find('?'));
  return target == path;
}

// Where the request head ends (just past its blank line), or npos. Bare LF line ends count,
// as in CivetWeb.
size_t HeadEnd(const std::string& head) {
  const size_t crlf = head.find("\r\n\r\n");
  const size_t lf = head.find("\n\n");
  if (crlf == std::string::npos && lf == std::string::npos) return std::string::npos;
  if (lf == std::string::npos || (crlf != std::string::npos && crlf + 4 <= lf + 2)) return crlf + 4;
  return lf + 2;
}

}  // namespace

struct HttpGate::Impl {
  HttpGateOptions options;
  std::vector<ListeningSocket> listeners;
  std::vector<Target> listener_targets;
  std::unique_ptr<TlsContext> tls;
  std::shared_ptr<GatePorts> ports;
  HttpGateCounters counters;
  UniqueFd epoll;
  UniqueFd wake;
  Target wake_target{Target::Kind::kWake};
  // Answers scrapes without the relay (options.direct_path); null without a direct path.
  std::unique_ptr<ScrapeWorker> scrape_worker;
  Target scrape_target{Target::Kind::kScrapeDone};
  std::atomic<bool> stopping{false};
  std::thread thread;

  uint64_t next_serial = 0;
  std::list<std::unique_ptr<Connection>> connections;  // owns them
  std::vector<std::unique_ptr<Connection>> graveyard;
  std::list<Connection*> waiting_for_head;  // accept order: the first is the oldest
  std::list<Connection*> queued;
  std::list<Connection*> relaying;
  std::set<std::pair<Clock::time_point, uint64_t>> deadlines;
  std::unordered_map<uint64_t, Connection*> by_serial;
  int backends_open = 0;
  size_t buffered_bytes = 0;
  // Descriptors held in reserve (copies of /dev/null): when the process is out of them
  // (watched processes hold one pidfd each), a request still needs three at once: the
  // client's, ours to CivetWeb and CivetWeb's end. Released just before they are needed,
  // taken back as soon as the gate closes its own.
  std::vector<UniqueFd> spare_descriptors;
  bool refill_spares = false;
  bool listeners_paused = false;
  Clock::time_point listeners_resume;
  Clock::time_point next_tls_check;

  void Run();
  void HandleEvent(const Target& target, uint32_t events);
  void Accept(size_t listener_index);
  void PauseListeners(bool pause);
  bool EvictOldestWithoutHead();
  void StartHandshake(Connection& connection);
  void ContinueHandshake(Connection& connection);
  void ReadHead(Connection& connection);
  void HeadComplete(Connection& connection);
  bool SubmitScrape(Connection& connection);
  void ScrapeAnswered();
  void StartBackend(Connection& connection);
  void BackendWritable(Connection& connection);
  void BackendReadable(Connection& connection);
  void BackendFinished(Connection& connection, bool failed);
  void WriteToClient(Connection& connection);
  void Answer(Connection& connection, std::string answer);
  void StartClosing(Connection& connection);
  void Drain(Connection& connection);
  void Close(Connection& connection);
  void Drop(Connection& connection, DropReason reason);
  void ExpireDeadlines(Clock::time_point now);
  void EnforceResponseBudget(const Connection& growing);
  void SetDeadline(Connection& connection, Clock::time_point deadline);
  void MoveTo(Connection& connection, std::list<Connection*>* order);
  void UpdateInterest(Connection& connection);
  void UpdateBackendInterest(Connection& connection);
  IoResult ClientRead(Connection& connection, char* buffer, size_t size);
  IoResult ClientWrite(Connection& connection, const char* data, size_t size);
  IoResult TlsResult(Connection& connection, int result, size_t bytes);
  int TimeoutMs(Clock::time_point now) const;
  bool ReleaseSpares(size_t count);
  void RefillSpares();
};

constexpr size_t kSpareDescriptors = 6;  // two requests' worth

bool HttpGate::Impl::ReleaseSpares(size_t count) {
  if (spare_descriptors.size() < count) return false;
  spare_descriptors.resize(spare_descriptors.size() - count);  // closes them
  refill_spares = true;
  return true;
}

void HttpGate::Impl::RefillSpares() {
  refill_spares = false;
  while (spare_descriptors.size() < kSpareDescriptors) {
    UniqueFd spare(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!spare.valid()) {
      refill_spares = true;  // try again after the next close
      return;
    }
    spare_descriptors.push_back(std::move(spare));
  }
}

// --- client I/O: plain or TLS behind one interface -------------------------------------

IoResult HttpGate::Impl::TlsResult(Connection& connection, int result, size_t bytes) {
  if (result == 1) return {Io::kProgress, bytes};
  switch (SSL_get_error(connection.ssl.get(), result)) {
    case SSL_ERROR_WANT_READ:
      connection.wants = EPOLLIN;
      return {Io::kWantRead};
    case SSL_ERROR_WANT_WRITE:
      connection.wants = EPOLLOUT;
      return {Io::kWantWrite};
    case SSL_ERROR_ZERO_RETURN:
      return {Io::kEof};
    default:
      ERR_clear_error();  // the queue is per thread: never let one client's errors leak
      return {Io::kError};
  }
}

IoResult HttpGate::Impl::ClientRead(Connection& connection, char* buffer, size_t size) {
  if (connection.ssl) {
    size_t read = 0;
    const int result = SSL_read_ex(connection.ssl.get(), buffer, size, &read);  // before `read` is used
    return TlsResult(connection, result, read);
  }
  const ssize_t read = ::recv(connection.client.get(), buffer, size, 0);
  if (read > 0) return {Io::kProgress, static_cast<size_t>(read)};
  if (read == 0) return {Io::kEof};
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    connection.wants = EPOLLIN;
    return {Io::kWantRead};
  }
  return {Io::kError};
}

IoResult HttpGate::Impl::ClientWrite(Connection& connection, const char* data, size_t size) {
  if (connection.ssl) {
    size_t written = 0;
    const int result = SSL_write_ex(connection.ssl.get(), data, size, &written);  // before `written` is used
    return TlsResult(connection, result, written);
  }
  const ssize_t written = ::send(connection.client.get(), data, size, MSG_NOSIGNAL);
  if (written >= 0) return {Io::kProgress, static_cast<size_t>(written)};
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    connection.wants = EPOLLOUT;
    return {Io::kWantWrite};
  }
  return {Io::kError};
}

// --- bookkeeping ------------------------------------------------------------------------

void HttpGate::Impl::SetDeadline(Connection& connection, Clock::time_point deadline) {
  deadlines.erase({connection.deadline, connection.serial});
  connection.deadline = deadline;
  deadlines.insert({deadline, connection.serial});
}

void HttpGate::Impl::MoveTo(Connection& connection, std::list<Connection*>* order) {
  if (connection.order != nullptr) connection.order->erase(connection.order_position);
  connection.order = order;
  if (order != nullptr) connection.order_position = order->insert(order->end(), &connection);
}

void HttpGate::Impl::UpdateInterest(Connection& connection) {
  if (connection.closed || !connection.client.valid()) return;
  uint32_t events = 0;
  switch (connection.phase) {
    case Phase::kHandshake:
    case Phase::kHead:
      events = connection.wants;
      break;
    case Phase::kQueued:
      events = 0;  // EPOLLHUP/EPOLLERR still arrive: a client that leaves is closed
      break;
    case Phase::kRelay:
      if (connection.client_write_blocked) events = connection.wants;
      break;
    case Phase::kClosing:
      events = EPOLLIN;
      break;
  }
  if (events == connection.client_events) return;
  epoll_event event{};
  event.events = events;
  event.data.ptr = &connection.client_target;
  epoll_ctl(epoll.get(), EPOLL_CTL_MOD, connection.client.get(), &event);
  connection.client_events = events;
}

void HttpGate::Impl::UpdateBackendInterest(Connection& connection) {
  if (!connection.backend.valid()) return;
  uint32_t events = 0;
  if (!connection.backend_connected || connection.head_sent < connection.head.size()) {
    events = EPOLLOUT;
  } else if (!connection.backend_done) {
    events = EPOLLIN;
  }
  if (events == connection.backend_events) return;
  epoll_event event{};
  event.events = events;
  event.data.ptr = &connection.backend_target;
  epoll_ctl(epoll.get(), EPOLL_CTL_MOD, connection.backend.get(), &event);
  connection.backend_events = events;
}

void HttpGate::Impl::Close(Connection& connection) {
  if (connection.closed) return;
  connection.closed = true;
  if (connection.backend.valid()) BackendFinished(connection, true);
  buffered_bytes -= connection.pending();
  MoveTo(connection, nullptr);
  deadlines.erase({connection.deadline, connection.serial});
  by_serial.erase(connection.serial);
  // Closing the descriptor also removes it from the epoll set.
  connection.client.Reset();
  connection.ssl.reset();
  counters.open_connections.fetch_sub(1, std::memory_order_relaxed);
  if (spare_descriptors.size() < kSpareDescriptors) RefillSpares();  // the slots just freed
  graveyard.push_back(std::move(*connection.self));
  connections.erase(connection.self);
}

void HttpGate::Impl::Drop(Connection& connection, DropReason reason) {
  counters.dropped[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  Close(connection);
}

// --- accepting --------------------------------------------------------------------------

void HttpGate::Impl::PauseListeners(bool pause) {
  if (pause == listeners_paused) return;
  listeners_paused = pause;
  for (size_t i = 0; i < listeners.size(); ++i) {
    epoll_event event{};
    event.events = pause ? 0u : static_cast<uint32_t>(EPOLLIN);
    event.data.ptr = &listener_targets[i];
    epoll_ctl(epoll.get(), EPOLL_CTL_MOD, listeners[i].fd.get(), &event);
  }
  if (pause) listeners_resume = Clock::now() + std::chrono::milliseconds(100);
}

bool HttpGate::Impl::EvictOldestWithoutHead() {
  if (waiting_for_head.empty()) return false;
  Drop(*waiting_for_head.front(), DropReason::kOverMaxConnections);
  return true;
}

void HttpGate::Impl::Accept(size_t listener_index) {
  // A bounded batch per event, so that one busy listener cannot starve the rest.
  for (int batch = 0; batch < 64; ++batch) {
    UniqueFd client(
        ::accept4(listeners[listener_index].fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client.valid() && (errno == EMFILE || errno == ENFILE)) {
      // Nothing to accept: keep the spares. Releasing one here lost it to whoever opened a
      // descriptor next (the tracker's pidfds), and once they were gone the eviction below
      // reset the connection this batch had just accepted.
      if (!ConnectionPending(listeners[listener_index].fd.get())) return;
      if (ReleaseSpares(1))
        client.Reset(
            ::accept4(listeners[listener_index].fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    }
    if (!client.valid()) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return;
      // Out of descriptors (EMFILE/ENFILE) or memory: make room or wait a little.
      counters.dropped[static_cast<size_t>(DropReason::kAcceptFailed)].fetch_add(1,
                                                                                 std::memory_order_relaxed);
      if (!EvictOldestWithoutHead()) PauseListeners(true);
      return;
    }
    if (static_cast<int>(connections.size()) >= options.max_connections && !EvictOldestWithoutHead()) {
      counters.dropped[static_cast<size_t>(DropReason::kOverMaxConnections)].fetch_add(
          1, std::memory_order_relaxed);
      continue;  // every connection is being answered: refuse this one (closed by UniqueFd)
    }
    auto owned = std::make_unique<Connection>();
    Connection& connection = *owned;
    connection.serial = ++next_serial;
    connection.client = std::move(client);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = &connection.client_target;
    if (epoll_ctl(epoll.get(), EPOLL_CTL_ADD, connection.client.get(), &event) != 0) continue;
    connection.client_events = EPOLLIN;
    connection.self = connections.insert(connections.end(), std::move(owned));
    by_serial[connection.serial] = &connection;
    counters.accepted.fetch_add(1, std::memory_order_relaxed);
    counters.open_connections.fetch_add(1, std::memory_order_relaxed);
    MoveTo(connection, &waiting_for_head);
    SetDeadline(connection, Clock::now() + options.head_timeout);
    if (tls) {
      StartHandshake(connection);
    } else {
      connection.phase = Phase::kHead;
    }
  }
}

// --- TLS handshake and request head -----------------------------------------------------

void HttpGate::Impl::StartHandshake(Connection& connection) {
  connection.phase = Phase::kHandshake;
  connection.ssl.reset(SSL_new(tls->Current()));
  if (!connection.ssl || SSL_set_fd(connection.ssl.get(), connection.client.get()) != 1) {
    ERR_clear_error();
    Drop(connection, DropReason::kTlsHandshake);
    return;
  }
  SSL_set_accept_state(connection.ssl.get());
}

void HttpGate::Impl::ContinueHandshake(Connection& connection) {
  const IoResult result = TlsResult(connection, SSL_do_handshake(connection.ssl.get()), 0);
  if (result.status == Io::kWantRead || result.status == Io::kWantWrite) {
    UpdateInterest(connection);
    return;
  }
  if (result.status != Io::kProgress) {
    Drop(connection, DropReason::kTlsHandshake);
    return;
  }
  connection.phase = Phase::kHead;
  ReadHead(connection);  // the request may already sit decrypted in OpenSSL's buffer
}

void HttpGate::Impl::ReadHead(Connection& connection) {
  char buffer[4096];
  while (!connection.closed && connection.phase == Phase::kHead) {
    const size_t room = options.max_head_bytes + 1 - std::min(connection.head.size(), options.max_head_bytes);
    const IoResult result = ClientRead(connection, buffer, std::min(sizeof buffer, room));
    if (result.status == Io::kWantRead || result.status == Io::kWantWrite) break;
    if (result.status != Io::kProgress) {
      Close(connection);  // the client left before finishing its request: nothing to answer
      return;
    }
    connection.head.append(buffer, result.bytes);
    // Empty lines before the request line are allowed (RFC 9112 §2.2).
    const size_t start = connection.head.find_first_not_of("\r\n");
    connection.head.erase(0, start == std::string::npos ? connection.head.size() : start);
    const size_t end = HeadEnd(connection.head);
    if (end != std::string::npos && end <= options.max_head_bytes) {
      connection.head.resize(end);  // a body or a pipelined request is not forwarded
      HeadComplete(connection);
      return;
    }
    if (connection.head.size() > options.max_head_bytes) {
      counters.dropped[static_cast<size_t>(DropReason::kHeadTooLarge)].fetch_add(1,
                                                                                 std::memory_order_relaxed);
      Answer(connection, CannedAnswer(431, "Request Header Fields Too Large", "request head too large\n",
                                      options.extra_headers));
      return;
    }
  }
  UpdateInterest(connection);
}

void HttpGate::Impl::HeadComplete(Connection& connection) {
  SetDeadline(connection, Clock::now() + options.response_timeout);
  if (SubmitScrape(connection)) return;
  if (backends_open < options.max_backend_connections) {
    StartBackend(connection);
    return;
  }
  connection.phase = Phase::kQueued;
  MoveTo(connection, &queued);
  UpdateInterest(connection);
}

// --- scrapes answered on the gate's own scrape thread -----------------------------------

bool HttpGate::Impl::SubmitScrape(Connection& connection) {
  if (!scrape_worker || !IsScrapeOf(connection.head, options.direct_path)) return false;
  if (!scrape_worker->Submit(connection.serial, connection.head)) return false;
  // Waiting for its answer like a relayed request for CivetWeb's, with the same deadline.
  connection.phase = Phase::kRelay;
  MoveTo(connection, &relaying);
  UpdateInterest(connection);
  return true;
}

void HttpGate::Impl::ScrapeAnswered() {
  std::optional<ScrapeWorker::Answer> answer = scrape_worker->Take();
  if (!answer) return;
  const auto found = by_serial.find(answer->serial);
  // Gone meanwhile (the client left, or the response deadline passed): nobody to answer.
  if (found == by_serial.end() || found->second->closed || found->second->phase != Phase::kRelay) return;
  counters.served_directly.fetch_add(1, std::memory_order_relaxed);
  Answer(*found->second, std::move(answer->text));
}

// --- the relay to CivetWeb --------------------------------------------------------------

void HttpGate::Impl::StartBackend(Connection& connection) {
  connection.phase = Phase::kRelay;
  MoveTo(connection, &relaying);
  // The connection to CivetWeb takes two descriptors (ours and its end). When the process
  // has fewer free (watched processes take every one, one pidfd each), CivetWeb could not
  // accept it: answer here instead. Checked, not guessed: two trial descriptors.
  {
    const UniqueFd first(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    const UniqueFd second(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if ((!first.valid() || !second.valid()) && options.serve_without_backend) {
      counters.served_without_backend.fetch_add(1, std::memory_order_relaxed);
      std::string answer = options.serve_without_backend(connection.head);
      Answer(connection, std::move(answer));
      return;
    }
  }
  UniqueFd backend(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  // Out of descriptors: one spare for this socket, one for CivetWeb's end of it.
  if (!backend.valid() && (errno == EMFILE || errno == ENFILE) && ReleaseSpares(1)) {
    backend.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  }
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof local;
  // Bound first so that the port is known (and registered) before CivetWeb sees it.
  if (!backend.valid() || ::bind(backend.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      getsockname(backend.get(), reinterpret_cast<sockaddr*>(&local), &length) != 0) {
    Answer(connection,
           CannedAnswer(503, "Service Unavailable", "out of descriptors\n", options.extra_headers));
    return;
  }
  connection.backend_port = ntohs(local.sin_port);
  ports->Add(connection.backend_port);
  if (::connect(backend.get(), reinterpret_cast<const sockaddr*>(&options.backend), sizeof options.backend) !=
          0 &&
      errno != EINPROGRESS) {
    ports->Remove(connection.backend_port);
    Answer(connection, CannedAnswer(503, "Service Unavailable", "server busy\n", options.extra_headers));
    return;
  }
  epoll_event event{};
  event.events = EPOLLOUT;
  event.data.ptr = &connection.backend_target;
  if (epoll_ctl(epoll.get(), EPOLL_CTL_ADD, backend.get(), &event) != 0) {
    ports->Remove(connection.backend_port);
    Answer(connection, CannedAnswer(503, "Service Unavailable", "server busy\n", options.extra_headers));
    return;
  }
  connection.backend = std::move(backend);
  connection.backend_events = EPOLLOUT;

  ++backends_open;
  UpdateInterest(connection);
}

void HttpGate::Impl::BackendWritable(Connection& connection) {
  if (!connection.backend_connected) {
    int error = 0;
    socklen_t length = sizeof error;
    getsockopt(connection.backend.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      BackendFinished(connection, true);
      return;
    }
    connection.backend_connected = true;
  }
  while (connection.head_sent < connection.head.size()) {
    const ssize_t written = ::send(connection.backend.get(), connection.head.data() + connection.head_sent,
                                   connection.head.size() - connection.head_sent, MSG_NOSIGNAL);
    if (written < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      BackendFinished(connection, true);
      return;
    }
    connection.head_sent += static_cast<size_t>(written);
  }
  if (connection.head_sent == connection.head.size()) {
    // No body follows: CivetWeb never waits for one (none of the routes reads a body).
    ::shutdown(connection.backend.get(), SHUT_WR);
    std::string().swap(connection.head);
    connection.head_sent = 0;
  }
  UpdateBackendInterest(connection);
}

void HttpGate::Impl::BackendReadable(Connection& connection) {
  char buffer[65536];
  for (int batch = 0; batch < 16; ++batch) {
    const ssize_t read = ::recv(connection.backend.get(), buffer, sizeof buffer, 0);
    if (read > 0) {
      connection.answer.append(buffer, static_cast<size_t>(read));
      buffered_bytes += static_cast<size_t>(read);
      continue;
    }
    if (read < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
    BackendFinished(connection, read < 0);  // EOF: CivetWeb has answered completely
    // BackendFinished has written to the client already.
    if (!connection.closed) EnforceResponseBudget(connection);
    return;
  }
  if (connection.closed) return;
  WriteToClient(connection);
  if (!connection.closed) EnforceResponseBudget(connection);
}

void HttpGate::Impl::BackendFinished(Connection& connection, bool failed) {
  ports->Remove(connection.backend_port);
  connection.backend.Reset();
  if (spare_descriptors.size() < kSpareDescriptors) RefillSpares();  // the slot just freed
  connection.backend_done = true;
  connection.backend_events = 0;
  --backends_open;
  // A freed slot goes to the request that has waited longest.
  while (!queued.empty() && backends_open < options.max_backend_connections) {
    Connection& next = *queued.front();
    StartBackend(next);
  }
  if (connection.closed) return;
  if (failed && connection.answer.empty()) {
    Answer(connection, CannedAnswer(503, "Service Unavailable", "server busy\n", options.extra_headers));
    return;
  }
  WriteToClient(connection);
}

void HttpGate::Impl::WriteToClient(Connection& connection) {
  connection.client_write_blocked = false;
  while (connection.pending() > 0) {
    const IoResult result =
        ClientWrite(connection, connection.answer.data() + connection.answer_sent, connection.pending());
    if (result.status == Io::kWantRead || result.status == Io::kWantWrite) {
      connection.client_write_blocked = true;
      break;
    }
    if (result.status != Io::kProgress) {
      Close(connection);  // the client left
      return;
    }
    connection.answer_sent += result.bytes;
    buffered_bytes -= result.bytes;
  }
  if (connection.pending() == 0) {
    connection.answer.clear();
    connection.answer_sent = 0;
    if (connection.backend_done) {
      StartClosing(connection);
      return;
    }
  } else if (connection.answer_sent > (size_t{1} << 20)) {
    connection.answer.erase(0, connection.answer_sent);  // keep memory to what is unsent
    connection.answer_sent = 0;
  }
  UpdateInterest(connection);
}

void HttpGate::Impl::Answer(Connection& connection, std::string answer) {
  connection.phase = Phase::kRelay;
  MoveTo(connection, &relaying);
  connection.backend_done = true;
  buffered_bytes += answer.size();
  connection.answer = std::move(answer);
  connection.answer_sent = 0;
  if (connection.deadline - Clock::now() > options.response_timeout) {
    SetDeadline(connection, Clock::now() + options.response_timeout);
  }
  WriteToClient(connection);
}

// Past the budget, the answer that has waited longest for its client goes first.
void HttpGate::Impl::EnforceResponseBudget(const Connection& growing) {
  for (auto it = relaying.begin();
       buffered_bytes > options.max_buffered_response_bytes && it != relaying.end();) {
    Connection& candidate = **it++;
    if (&candidate == &growing || !candidate.backend_done || candidate.pending() == 0) continue;
    Drop(candidate, DropReason::kResponseBufferFull);
  }
}

// --- closing ----------------------------------------------------------------------------

void HttpGate::Impl::StartClosing(Connection& connection) {
  if (connection.ssl) {
    SSL_shutdown(connection.ssl.get());  // close_notify, best effort
    ERR_clear_error();
  }
  // Half-close and read what the client still sends, so that unread request bytes do not
  // turn our close into a reset that could destroy the answer in flight.
  ::shutdown(connection.client.get(), SHUT_WR);
  connection.phase = Phase::kClosing;
  MoveTo(connection, nullptr);
  SetDeadline(connection, Clock::now() + std::chrono::seconds(1));
  UpdateInterest(connection);
}

void HttpGate::Impl::Drain(Connection& connection) {
  char buffer[4096];
  for (int batch = 0; batch < 16; ++batch) {
    const ssize_t read = ::recv(connection.client.get(), buffer, sizeof buffer, 0);
    if (read > 0) continue;
    if (read < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    break;
  }
  Close(connection);
}

void HttpGate::Impl::ExpireDeadlines(Clock::time_point now) {
  while (!deadlines.empty() && deadlines.begin()->first <= now) {
    const uint64_t serial = deadlines.begin()->second;
    deadlines.erase(deadlines.begin());
    const auto found = by_serial.find(serial);
    if (found == by_serial.end()) continue;
    Connection& connection = *found->second;
    connection.deadline = Clock::time_point::max();
    switch (connection.phase) {
      case Phase::kHandshake:
      case Phase::kHead:
        Drop(connection, DropReason::kHeadTimeout);
        break;
      case Phase::kQueued:
        counters.dropped[static_cast<size_t>(DropReason::kQueueTimeout)].fetch_add(1,
                                                                                   std::memory_order_relaxed);
        Answer(connection, CannedAnswer(503, "Service Unavailable", "server busy\n", options.extra_headers));
        break;
      case Phase::kRelay:
        Drop(connection, DropReason::kResponseTimeout);
        break;
      case Phase::kClosing:
        Close(connection);
        break;
    }
  }
}

// --- the loop ---------------------------------------------------------------------------

void HttpGate::Impl::HandleEvent(const Target& target, uint32_t events) {
  if (target.kind == Target::Kind::kWake) return;
  if (target.kind == Target::Kind::kScrapeDone) {
    ScrapeAnswered();
    return;
  }
  if (target.kind == Target::Kind::kListener) {
    Accept(target.listener);
    return;
  }
  Connection& connection = *target.connection;
  if (connection.closed) return;
  if (target.kind == Target::Kind::kBackend) {
    if (!connection.backend.valid()) return;
    if (!connection.backend_connected || connection.head_sent < connection.head.size()) {
      BackendWritable(connection);
    } else {
      BackendReadable(connection);
    }
    return;
  }
  switch (connection.phase) {
    case Phase::kHandshake:
      ContinueHandshake(connection);
      return;
    case Phase::kHead:
      ReadHead(connection);
      return;
    case Phase::kQueued:
      if (events & (EPOLLHUP | EPOLLERR)) Close(connection);
      return;
    case Phase::kRelay:
      if (events & (EPOLLHUP | EPOLLERR)) {
        Close(connection);
        return;
      }
      WriteToClient(connection);
      return;
    case Phase::kClosing:
      Drain(connection);
      return;
  }
}

int HttpGate::Impl::TimeoutMs(Clock::time_point now) const {
  // With nothing due the gate sleeps until a descriptor is ready (Stop writes `wake`): an idle
  // exporter without TLS should not wake every second (BENCHMARKS §11, idle CPU). With TLS the
  // certificate check still comes every second.
  std::optional<Clock::time_point> wake_at;
  const auto due = [&wake_at](Clock::time_point at) { wake_at = wake_at ? std::min(*wake_at, at) : at; };
  if (tls) due(next_tls_check);
  if (!deadlines.empty()) due(deadlines.begin()->first);
  if (listeners_paused) due(listeners_resume);
  // Descriptors other threads free (pidfds of exited processes) raise no event here.
  if (refill_spares) due(now + std::chrono::seconds(1));
  if (!wake_at) return -1;
  const auto milliseconds = std::chrono::ceil<std::chrono::milliseconds>(*wake_at - now).count();
  constexpr int64_t kLongestWaitMs = 3'600'000;  // fits an int; any deadline is nearer
  return static_cast<int>(std::clamp<int64_t>(milliseconds, 0, kLongestWaitMs));
}

void HttpGate::Impl::Run() {
  epoll_event events[256];
  next_tls_check = Clock::now() + std::chrono::seconds(1);
  while (!stopping.load()) {
    const int count = epoll_wait(epoll.get(), events, 256, TimeoutMs(Clock::now()));
    for (int i = 0; i < count; ++i) {
      HandleEvent(*static_cast<const Target*>(events[i].data.ptr), events[i].events);
    }
    const Clock::time_point now = Clock::now();
    ExpireDeadlines(now);
    if (listeners_paused && now >= listeners_resume) PauseListeners(false);
    if (tls && now >= next_tls_check) {
      tls->ReloadIfChanged();
      next_tls_check = now + std::chrono::seconds(1);
    }
    graveyard.clear();
    if (refill_spares) RefillSpares();
  }
  while (!connections.empty()) Close(*connections.front());
  graveyard.clear();
}

HttpGate::HttpGate() : impl_(std::make_unique<Impl>()) {}

HttpGate::~HttpGate() {
  Stop();
}

void HttpGate::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->stopping.store(true);
  const uint64_t one = 1;
  (void)!::write(impl_->wake.get(), &one, sizeof one);
  impl_->thread.join();
  impl_->scrape_worker.reset();  // lets a scrape being rendered finish; none starts after
  // Closing our ends now lets a CivetWeb worker still writing an answer fail at once
  // instead of waiting out its timeout while the server stops.
  while (!impl_->connections.empty()) impl_->Close(*impl_->connections.front());
  impl_->graveyard.clear();
  impl_->listeners.clear();
}

std::unique_ptr<HttpGate> HttpGate::Start(const HttpGateOptions& options,
                                          std::vector<ListeningSocket> listeners,
                                          std::unique_ptr<TlsContext> tls, std::shared_ptr<GatePorts> ports,
                                          std::string* error) {
  std::unique_ptr<HttpGate> gate(new HttpGate());
  Impl& impl = *gate->impl_;
  impl.options = options;
  impl.listeners = std::move(listeners);
  impl.tls = std::move(tls);
  impl.ports = std::move(ports);
  impl.epoll.Reset(epoll_create1(EPOLL_CLOEXEC));
  impl.wake.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl.epoll.valid() || !impl.wake.valid()) {
    *error = ErrnoText("http gate: epoll", errno);
    return nullptr;
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = &impl.wake_target;
  epoll_ctl(impl.epoll.get(), EPOLL_CTL_ADD, impl.wake.get(), &event);
  if (!impl.options.direct_path.empty() && impl.options.serve_without_backend) {
    impl.scrape_worker = ScrapeWorker::Start(impl.options.serve_without_backend, error);
    if (!impl.scrape_worker) return nullptr;
    event.data.ptr = &impl.scrape_target;
    epoll_ctl(impl.epoll.get(), EPOLL_CTL_ADD, impl.scrape_worker->ready_fd(), &event);
  }
  impl.RefillSpares();
  impl.listener_targets.resize(impl.listeners.size());
  for (size_t i = 0; i < impl.listeners.size(); ++i) {
    impl.listener_targets[i] = Target{Target::Kind::kListener, nullptr, i};
    event.data.ptr = &impl.listener_targets[i];
    if (epoll_ctl(impl.epoll.get(), EPOLL_CTL_ADD, impl.listeners[i].fd.get(), &event) != 0) {
      *error = ErrnoText("http gate: epoll_ctl", errno);
      return nullptr;
    }
  }
  impl.thread = std::thread([&impl] {
    pthread_setname_np(pthread_self(), "http-gate");  // for top -H and the tests
    impl.Run();
  });
  return gate;
}

const HttpGateCounters& HttpGate::counters() const {
  return impl_->counters;
}
uint64_t HttpGate::tls_reloads() const {
  return impl_->tls ? impl_->tls->reloads() : 0;
}
uint64_t HttpGate::tls_reload_failures() const {
  return impl_->tls ? impl_->tls->failures() : 0;
}
bool HttpGate::tls_last_reload_successful() const {
  return impl_->tls ? impl_->tls->last_reload_successful() : true;
}

}  // namespace pidfd_exporter
