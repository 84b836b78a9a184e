// Tests of HttpServer over real HTTP on loopback: a raw-socket client sends exact requests
// and the tests compare exact status codes, headers and bodies.
#include "http_server.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "http_gate.h"

namespace pidfd_exporter {
namespace {

using Clock = std::chrono::steady_clock;

// Closes the socket it owns.
class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(Socket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Socket& operator=(Socket&&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Blocking connect to 127.0.0.1:port (loopback connects complete at once or fail).
Socket ConnectLoopback(int port) {
  Socket socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(socket.fd(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return Socket();
  return socket;
}

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string error;  // non-empty when no complete response arrived

  std::string Header(const std::string& name) const {
    const auto found = headers.find(name);
    return found == headers.end() ? "" : found->second;
  }
};

// Sends `request` verbatim and reads until the server closes the connection (the server
// does not keep connections alive), polling with a deadline rather than sleeping.
HttpResponse Exchange(int port, const std::string& request,
                      std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
  HttpResponse response;
  Socket socket = ConnectLoopback(port);
  if (socket.fd() < 0) {
    response.error = "connect failed";
    return response;
  }
  if (::send(socket.fd(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    response.error = "send failed";
    return response;
  }
  const auto deadline = Clock::now() + timeout;
  std::string raw;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      response.error = "timed out";
      return response;
    }
    pollfd poll_fd{socket.fd(), POLLIN, 0};
    if (::poll(&poll_fd, 1, static_cast<int>(left)) <= 0) continue;
    char buffer[65536];
    const ssize_t received = ::recv(socket.fd(), buffer, sizeof(buffer), 0);
    if (received < 0) {
      response.error = "recv failed";
      return response;
    }
    if (received == 0) break;
    raw.append(buffer, static_cast<size_t>(received));
  }
  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos || raw.rfind("HTTP/1.1 ", 0) != 0) {
    response.error = "malformed response: " + raw;
    return response;
  }
  response.status = std::stoi(raw.substr(9, 3));
  size_t line_start = raw.find("\r\n") + 2;
  while (line_start < header_end) {
    const size_t line_end = raw.find("\r\n", line_start);
    const std::string line = raw.substr(line_start, line_end - line_start);
    const size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    response.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    line_start = line_end + 2;
  }
  response.body = raw.substr(header_end + 4);
  return response;
}

HttpResponse Request(int port, const std::string& method, const std::string& path,
                     const std::string& extra_headers = "") {
  return Exchange(port, method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers +
                            "Content-Length: 0\r\nConnection: close\r\n\r\n");
}

int PortOf(const std::string& address) {
  return std::stoi(address.substr(address.rfind(':') + 1));
}

std::string Gunzip(const std::string& compressed) {
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 16) != Z_OK) return "inflateInit2 failed";
  std::string output;
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  int result = Z_OK;
  while (result == Z_OK) {
    char buffer[16384];
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof(buffer);
    result = inflate(&stream, Z_NO_FLUSH);
    output.append(buffer, sizeof(buffer) - stream.avail_out);
  }
  inflateEnd(&stream);
  return result == Z_STREAM_END ? output : "inflate failed";
}

std::string Base64(const std::string& text) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string encoded;
  for (size_t i = 0; i < text.size(); i += 3) {
    uint32_t bits = static_cast<uint8_t>(text[i]) << 16;
    if (i + 1 < text.size()) bits |= static_cast<uint8_t>(text[i + 1]) << 8;
    if (i + 2 < text.size()) bits |= static_cast<uint8_t>(text[i + 2]);
    encoded += kAlphabet[(bits >> 18) & 63];
    encoded += kAlphabet[(bits >> 12) & 63];
    encoded += i + 1 < text.size() ? kAlphabet[(bits >> 6) & 63] : '=';
    encoded += i + 2 < text.size() ? kAlphabet[bits & 63] : '=';
  }
  return encoded;
}

std::string BasicAuthorization(const std::string& user, const std::string& password) {
  return "Authorization: Basic " + Base64(user + ":" + password) + "\r\n";
}

std::string BcryptHash(const std::string& password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", 5, nullptr, 0, setting, sizeof(setting)) == nullptr) return "";
  auto data = std::make_unique<crypt_data>();
  const char* hashed = crypt_r(password.c_str(), setting, data.get());
  return hashed != nullptr ? hashed : "";
}

// A metrics body large enough that gzip visibly shrinks it.
std::string MetricsBody() {
  std::string body = "# HELP pidfd_zombies Exited, not yet reaped.\n# TYPE pidfd_zombies gauge\n";
  for (int i = 0; i < 200; ++i) body += "pidfd_zombies{set=\"set" + std::to_string(i) + "\"} 0\n";
  return body;
}

constexpr char kStatusHtml[] = "<!DOCTYPE html><title>pidfd_exporter</title>";

TEST(SplitListenAddressTest, SplitsPrometheusSyntax) {
  std::string host;
  std::string port;
  ASSERT_TRUE(SplitListenAddress(":9721", &host, &port));
  EXPECT_EQ(host, "");
  EXPECT_EQ(port, "9721");
  ASSERT_TRUE(SplitListenAddress("127.0.0.1:9721", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  ASSERT_TRUE(SplitListenAddress("localhost:0", &host, &port));
  EXPECT_EQ(host, "localhost");
  ASSERT_TRUE(SplitListenAddress("[::1]:9721", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, "9721");
}

TEST(SplitListenAddressTest, RejectsMalformedAddresses) {
  std::string host;
  std::string port;
  for (const char* address : {"9721", "127.0.0.1:", "127.0.0.1:443s", "127.0.0.1:80r", "127.0.0.1:70000",
                              "a:1,b:2", "::1:9721", "[::1:9721", "[a b]:1", "[]:1"}) {
    EXPECT_FALSE(SplitListenAddress(address, &host, &port)) << address;
  }
}

// One server for most tests: CivetWeb takes up to ~2 s to shut down.
class HttpServerTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    HttpServerOptions options;
    options.listen_addresses = {"127.0.0.1:0"};
    options.worker_threads = 8;
    // Long enough that a scrape served while idle connections are open proves they hold
    // no worker, rather than that they timed out first.
    options.request_head_timeout_ms = 30000;
    options.http_metrics = false;  // bodies compare exactly with MetricsBody()
    HttpHandlers handlers;
    handlers.render_metrics = [] { return MetricsBody(); };
    handlers.render_status_page = [] { return std::string(kStatusHtml); };
    handlers.ready = [] { return ready_.load(); };
    handlers.reload = [] {
      std::lock_guard<std::mutex> lock(reload_mutex_);
      ++reload_calls_;
      return reload_result_;
    };
    std::string error;
    server_ = HttpServer::Start(options, std::move(handlers), &error).release();
    ASSERT_NE(server_, nullptr) << error;
    ASSERT_EQ(server_->ListeningAddresses().size(), 1u);
    port_ = PortOf(server_->ListeningAddresses()[0]);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    ready_ = true;
    std::lock_guard<std::mutex> lock(reload_mutex_);
    reload_result_.clear();
    reload_calls_ = 0;
  }

  static HttpServer* server_;
  static int port_;
  static std::atomic<bool> ready_;
  static std::mutex reload_mutex_;
  static std::string reload_result_;
  static int reload_calls_;
};

HttpServer* HttpServerTest::server_ = nullptr;
int HttpServerTest::port_ = 0;
std::atomic<bool> HttpServerTest::ready_{true};
std::mutex HttpServerTest::reload_mutex_;
std::string HttpServerTest::reload_result_;
int HttpServerTest::reload_calls_ = 0;

TEST_F(HttpServerTest, ListeningAddressReportsTheEphemeralPort) {
  const std::string address = server_->ListeningAddresses()[0];
  EXPECT_EQ(address.rfind("127.0.0.1:", 0), 0u) << address;
  EXPECT_GT(port_, 0);
}

TEST_F(HttpServerTest, MetricsServesTextFormatVersion004) {
  const HttpResponse response = Request(port_, "GET", "/metrics");
  ASSERT_EQ(response.error, "");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.Header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(response.Header("content-length"), std::to_string(MetricsBody().size()));
  EXPECT_EQ(response.Header("content-encoding"), "");
  EXPECT_EQ(response.Header("x-content-type-options"), "nosniff");
  EXPECT_EQ(response.body, MetricsBody());
}

TEST_F(HttpServerTest, MetricsHeadSendsHeadersWithoutBody) {
  const HttpResponse response = Request(port_, "HEAD", "/metrics");
  ASSERT_EQ(response.error, "");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.Header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(response.Header("content-length"), std::to_string(MetricsBody().size()));
  EXPECT_EQ(response.body, "");
}

TEST_F(HttpServerTest, MetricsGzipWhenAskedInflatesToTheSameBody) {
  const HttpResponse response = Request(port_, "GET", "/metrics", "Accept-Encoding: deflate, gzip\r\n");
  ASSERT_EQ(response.error, "");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.Header("content-encoding"), "gzip");
  EXPECT_EQ(response.Header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(response.Header("content-length"), std::to_string(response.body.size()));
  EXPECT_LT(response.body.size(), MetricsBody().size());
  EXPECT_EQ(Gunzip(response.body), MetricsBody());
}

TEST_F(HttpServerTest, MetricsHeadWithGzipReportsTheCompressedLength) {
  const HttpResponse get = Request(port_, "GET", "/metrics", "Accept-Encoding: gzip\r\n");
  const HttpResponse head = Request(port_, "HEAD", "/metrics", "Accept-Encoding: gzip\r\n");
  ASSERT_EQ(head.error, "");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("content-encoding"), "gzip");
  EXPECT_EQ(head.Header("content-length"), get.Header("content-length"));
  EXPECT_EQ(head.body, "");
}

TEST_F(HttpServerTest, MetricsGzipRefusedWithQualityZeroSendsPlainText) {
  const HttpResponse response = Request(port_, "GET", "/metrics", "Accept-Encoding: gzip;q=0, identity\r\n");
  ASSERT_EQ(response.error, "");
  EXPECT_EQ(response.Header("content-encoding"), "");
  EXPECT_EQ(response.body, MetricsBody());
}

TEST_F(HttpServerTest, OnlyTheExactTelemetryPathServesMetrics) {
  for (const char* path : {"/metrics2", "/metrics/x", "/metricsx", "/nope", "/-/", "/-/healthyx"}) {
    const HttpResponse response = Request(port_, "GET", path);
    ASSERT_EQ(response.error, "") << path;
    EXPECT_EQ(response.status, 404) << path;
    EXPECT_EQ(response.Header("content-type"), "text/plain; charset=utf-8") << path;
    EXPECT_EQ(response.body, "404 page not found\n") << path;
  }
}

TEST_F(HttpServerTest, QueryStringDoesNotChangeTheRoute) {
  const HttpResponse response = Request(port_, "GET", "/metrics?foo=bar");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, MetricsBody());
}

TEST_F(HttpServerTest, PostToMetricsIsMethodNotAllowed) {
  const HttpResponse response = Request(port_, "POST", "/metrics");
  ASSERT_EQ(response.error, "");
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(response.Header("allow"), "GET, HEAD");
}

TEST_F(HttpServerTest, RootServesStatusPageAsHtml) {
  const HttpResponse response = Request(port_, "GET", "/");
  ASSERT_EQ(response.error, "");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(response.Header("x-content-type-options"), "nosniff");
  EXPECT_NE(response.Header("content-security-policy"), "");
  EXPECT_EQ(response.body, kStatusHtml);
}

TEST_F(HttpServerTest, HealthyAnswers200) {
  const HttpResponse response = Request(port_, "GET", "/-/healthy");
  ASSERT_EQ(response.error, "");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.Header("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(response.body, "Healthy\n");

  const HttpResponse head = Request(port_, "HEAD", "/-/healthy");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("content-length"), "8");
  EXPECT_EQ(head.body, "");
}

TEST_F(HttpServerTest, ReadyAnswers503UntilTheHandlerSaysReady) {
  ready_ = false;
  const HttpResponse not_ready = Request(port_, "GET", "/-/ready");
  ASSERT_EQ(not_ready.error, "");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(not_ready.body, "Not ready\n");

  ready_ = true;
  const HttpResponse ready = Request(port_, "GET", "/-/ready");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.Header("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(ready.body, "Ready\n");
}

TEST_F(HttpServerTest, ReloadPostAndPutSucceedWhenTheHandlerAccepts) {
  const HttpResponse post = Request(port_, "POST", "/-/reload");
  ASSERT_EQ(post.error, "");
  EXPECT_EQ(post.status, 200);
  const HttpResponse put = Request(port_, "PUT", "/-/reload");
  EXPECT_EQ(put.status, 200);
  std::lock_guard<std::mutex> lock(reload_mutex_);
  EXPECT_EQ(reload_calls_, 2);
}

TEST_F(HttpServerTest, ReloadRefusedAnswers500WithTheErrors) {
  {
    std::lock_guard<std::mutex> lock(reload_mutex_);
    reload_result_ = "config.yml:3:5: unknown key \"bogus\"";
  }
  const HttpResponse response = Request(port_, "POST", "/-/reload");
  ASSERT_EQ(response.error, "");
  EXPECT_EQ(response.status, 500);
  EXPECT_EQ(response.Header("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(response.body, "failed to reload config: config.yml:3:5: unknown key \"bogus\"\n");
}

TEST_F(HttpServerTest, ReloadByGetIsMethodNotAllowedAndDoesNotReload) {
  const HttpResponse response = Request(port_, "GET", "/-/reload");
  ASSERT_EQ(response.error, "");
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(response.Header("allow"), "POST, PUT");
  std::lock_guard<std::mutex> lock(reload_mutex_);
  EXPECT_EQ(reload_calls_, 0);
}

TEST_F(HttpServerTest, PathTraversalIsNormalisedNotServedFromDisk) {
  const HttpResponse response = Request(port_, "GET", "/../../etc/passwd");
  ASSERT_EQ(response.error, "");
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.body, "404 page not found\n");
}

TEST_F(HttpServerTest, DotSegmentsAreResolvedBeforeRouting) {
  const HttpResponse response = Request(port_, "GET", "/-/../metrics");
  ASSERT_EQ(response.error, "");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, MetricsBody());
}

TEST_F(HttpServerTest, UnusualMethodsAreMethodNotAllowedNotHandledByCivetweb) {
  for (const char* method : {"DELETE", "OPTIONS", "PATCH", "PROPFIND", "MKCOL"}) {
    const HttpResponse response = Request(port_, method, "/metrics");
    ASSERT_EQ(response.error, "") << method;
    EXPECT_EQ(response.status, 405) << method;
    EXPECT_EQ(response.Header("allow"), "GET, HEAD") << method;
    EXPECT_EQ(response.Header("x-content-type-options"), "nosniff") << method;
  }
  EXPECT_EQ(Request(port_, "DELETE", "/-/reload").status, 405);
  EXPECT_EQ(Request(port_, "PROPFIND", "/nope").status, 404);
}

TEST_F(HttpServerTest, IdleConnectionsDoNotBlockAScrape) {
  // 64 clients (eight times the workers) connect and send nothing, 64 more send half a
  // request line; the head timeout is 30 s. A scrape must be served at once: no idle
  // connection holds a CivetWeb worker.
  std::vector<Socket> idle;
  for (int i = 0; i < 128; ++i) {
    idle.push_back(ConnectLoopback(port_));
    ASSERT_GE(idle.back().fd(), 0);
    if (i % 2 == 1) {
      ASSERT_EQ(::send(idle.back().fd(), "GET /metr", 9, MSG_NOSIGNAL), 9);
    }
  }
  const auto start = Clock::now();
  const HttpResponse response = Exchange(
      port_, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", std::chrono::seconds(8));
  const auto elapsed = Clock::now() - start;
  ASSERT_EQ(response.error, "");
  EXPECT_EQ(response.status, 200);
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST(HttpServerStartTest, PortInUseFailsNamingTheAddress) {
  Socket occupant(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(occupant.fd(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(occupant.fd(), 1), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::getsockname(occupant.fd(), reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));

  HttpServerOptions options;
  options.listen_addresses = {"127.0.0.1:0", taken};
  std::string error;
  EXPECT_EQ(HttpServer::Start(options, HttpHandlers{}, &error), nullptr);
  EXPECT_EQ(error, "listen tcp " + taken + ": address already in use");
}

TEST(HttpServerStartTest, Ipv6LoopbackIsServed) {
  HttpServerOptions options;
  options.listen_addresses = {"[::1]:0"};
  HttpHandlers handlers;
  handlers.render_metrics = [] { return std::string("up 1\n"); };
  std::string error;
  std::unique_ptr<HttpServer> server = HttpServer::Start(options, std::move(handlers), &error);
  ASSERT_NE(server, nullptr) << error;
  const std::string address = server->ListeningAddresses()[0];
  ASSERT_EQ(address.rfind("[::1]:", 0), 0u) << address;
  Socket client(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 target{};
  target.sin6_family = AF_INET6;
  target.sin6_addr = in6addr_loopback;
  target.sin6_port = htons(static_cast<uint16_t>(PortOf(address)));
  ASSERT_EQ(::connect(client.fd(), reinterpret_cast<sockaddr*>(&target), sizeof target), 0);
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(client.fd(), request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string answer;
  char buffer[4096];
  for (ssize_t got; (got = ::recv(client.fd(), buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, got);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  EXPECT_NE(answer.find("\r\n\r\nup 1\n"), std::string::npos) << answer;
}

TEST(HttpServerStartTest, Ipv6AddressWithoutBracketsFailsNamingTheAddress) {
  HttpServerOptions options;
  options.listen_addresses = {"::1:0"};
  std::string error;
  EXPECT_EQ(HttpServer::Start(options, HttpHandlers{}, &error), nullptr);
  EXPECT_NE(error.find("::1:0"), std::string::npos) << error;
}

TEST(HttpServerStartTest, UnresolvableHostFailsNamingTheAddress) {
  HttpServerOptions options;
  options.listen_addresses = {"127.0.0.1:0", "nosuchhost.invalid:0"};
  std::string error;
  EXPECT_EQ(HttpServer::Start(options, HttpHandlers{}, &error), nullptr);
  EXPECT_EQ(error, "listen tcp nosuchhost.invalid:0: invalid or unresolvable address");
}

TEST(HttpServerStartTest, TelemetryPathMustBeAnAbsolutePathOfItsOwn) {
  for (const char* path : {"", "metrics", "/", "/-/healthy"}) {
    HttpServerOptions options;
    options.listen_addresses = {"127.0.0.1:0"};
    options.telemetry_path = path;
    std::string error;
    EXPECT_EQ(HttpServer::Start(options, HttpHandlers{}, &error), nullptr) << path;
    EXPECT_NE(error.find("telemetry path"), std::string::npos) << error;
  }
}

TEST(HttpServerStartTest, TwoListenAddressesBothAnswer) {
  HttpServerOptions options;
  options.listen_addresses = {"127.0.0.1:0", ":0"};
  options.http_metrics = false;
  HttpHandlers handlers;
  handlers.render_metrics = [] { return std::string("up 1\n"); };
  std::string error;
  std::unique_ptr<HttpServer> server = HttpServer::Start(options, std::move(handlers), &error);
  ASSERT_NE(server, nullptr) << error;
  const std::vector<std::string> addresses = server->ListeningAddresses();
  ASSERT_EQ(addresses.size(), 2u);
  EXPECT_EQ(addresses[0].rfind("127.0.0.1:", 0), 0u) << addresses[0];
  EXPECT_EQ(addresses[1].rfind("0.0.0.0:", 0), 0u) << addresses[1];
  EXPECT_NE(PortOf(addresses[0]), PortOf(addresses[1]));
  for (const std::string& address : addresses) {
    const HttpResponse response = Request(PortOf(address), "GET", "/metrics");
    ASSERT_EQ(response.error, "") << address;
    EXPECT_EQ(response.status, 200) << address;
    EXPECT_EQ(response.body, "up 1\n") << address;
  }
  // Without a reload handler the endpoint does not exist.
  EXPECT_EQ(Request(PortOf(addresses[0]), "POST", "/-/reload").status, 404);
  EXPECT_EQ(Request(PortOf(addresses[0]), "GET", "/-/reload").status, 404);
}

TEST(HttpServerStartTest, ThrowingHandlerAnswers500AndServerKeepsServing) {
  HttpServerOptions options;
  options.listen_addresses = {"127.0.0.1:0"};
  HttpHandlers handlers;
  handlers.render_metrics = []() -> std::string { throw std::runtime_error("collector broke"); };
  std::string error;
  std::unique_ptr<HttpServer> server = HttpServer::Start(options, std::move(handlers), &error);
  ASSERT_NE(server, nullptr) << error;
  const int port = PortOf(server->ListeningAddresses()[0]);
  EXPECT_EQ(Request(port, "GET", "/metrics").status, 500);
  EXPECT_EQ(Request(port, "GET", "/-/healthy").status, 200);
}

// Basic auth on a server of its own, with a cheap bcrypt cost (5) to keep the test fast.
class HttpServerAuthTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    HttpServerOptions options;
    options.listen_addresses = {"127.0.0.1:0"};
    options.basic_auth_users = {{"alice", BcryptHash("correct horse")}};
    options.http_metrics = false;
    HttpHandlers handlers;
    handlers.render_metrics = [] { return std::string("up 1\n"); };
    std::string error;
    server_ = HttpServer::Start(options, std::move(handlers), &error).release();
    ASSERT_NE(server_, nullptr) << error;
    port_ = PortOf(server_->ListeningAddresses()[0]);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  static void ExpectUnauthorized(const HttpResponse& response) {
    ASSERT_EQ(response.error, "");
    EXPECT_EQ(response.status, 401);
    EXPECT_EQ(response.Header("www-authenticate"), "Basic realm=\"pidfd_exporter\"");
    EXPECT_EQ(response.body.find("up 1"), std::string::npos);
  }

  static HttpServer* server_;
  static int port_;
};

HttpServer* HttpServerAuthTest::server_ = nullptr;
int HttpServerAuthTest::port_ = 0;

TEST_F(HttpServerAuthTest, NoCredentialsAnswers401) {
  ExpectUnauthorized(Request(port_, "GET", "/metrics"));
}

TEST_F(HttpServerAuthTest, WrongPasswordAnswers401) {
  ExpectUnauthorized(Request(port_, "GET", "/metrics", BasicAuthorization("alice", "wrong")));
}

TEST_F(HttpServerAuthTest, UnknownUserAnswers401) {
  ExpectUnauthorized(Request(port_, "GET", "/metrics", BasicAuthorization("mallory", "correct horse")));
}

TEST_F(HttpServerAuthTest, MalformedCredentialsAnswer401) {
  ExpectUnauthorized(Request(port_, "GET", "/metrics", "Authorization: Basic !!!\r\n"));
  ExpectUnauthorized(Request(port_, "GET", "/metrics", "Authorization: Bearer abc\r\n"));
  ExpectUnauthorized(Request(port_, "GET", "/metrics", "Authorization: Basic " + Base64("alice") + "\r\n"));
}

TEST_F(HttpServerAuthTest, PasswordWithTrailingNulIsRejected) {
  ExpectUnauthorized(
      Request(port_, "GET", "/metrics", BasicAuthorization("alice", std::string("correct horse\0x", 15))));
}

TEST_F(HttpServerAuthTest, RightCredentialsServeMetricsAgainFromCache) {
  for (int attempt = 0; attempt < 2; ++attempt) {  // the second answer comes from the cache
    const HttpResponse response =
        Request(port_, "GET", "/metrics", BasicAuthorization("alice", "correct horse"));
    ASSERT_EQ(response.error, "");
    EXPECT_EQ(response.status, 200) << "attempt " << attempt;
    EXPECT_EQ(response.body, "up 1\n");
  }
  // A cached success must not let a different password in.
  ExpectUnauthorized(Request(port_, "GET", "/metrics", BasicAuthorization("alice", "correct horsE")));
}

TEST_F(HttpServerAuthTest, EveryPathRequiresCredentials) {
  for (const char* path : {"/", "/-/healthy", "/-/ready", "/nope"}) {
    ExpectUnauthorized(Request(port_, "GET", path));
  }
  EXPECT_EQ(Request(port_, "GET", "/-/healthy", BasicAuthorization("alice", "correct horse")).status, 200);
}

// True when the server closes `socket` (EOF or reset) within `timeout`.
bool ClosedByServerWithin(const Socket& socket, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd poll_fd{socket.fd(), POLLIN, 0};
    if (::poll(&poll_fd, 1, 100) <= 0) continue;
    char buffer[4096];
    const ssize_t received = ::recv(socket.fd(), buffer, sizeof buffer, 0);
    if (received <= 0) return true;
  }
  return false;
}

std::unique_ptr<HttpServer> StartSmallServer(HttpServerOptions options, HttpHandlers handlers) {
  options.listen_addresses = {"127.0.0.1:0"};
  if (!handlers.render_metrics) handlers.render_metrics = [] { return std::string("up 1\n"); };
  std::string error;
  std::unique_ptr<HttpServer> server = HttpServer::Start(options, std::move(handlers), &error);
  EXPECT_NE(server, nullptr) << error;
  return server;
}

// A scrape of the exact telemetry path is answered on the gate's scrape thread, without the
// relay through CivetWeb; the same scrape with a dot segment ("/./metrics", which CivetWeb
// normalises) takes the relay. Both answers carry the same status and headers (a Date too),
// and only the direct ones are counted.
TEST(HttpServerScrapeThreadTest, DirectScrapesAnswerAsCivetwebDoesAndAreCounted) {
  std::unique_ptr<HttpServer> server = StartSmallServer(HttpServerOptions{}, HttpHandlers{});
  ASSERT_NE(server, nullptr);
  const int port = PortOf(server->ListeningAddresses()[0]);
  const std::string counter = "\npidfd_exporter_http_scrapes_served_directly_total ";
  const HttpResponse direct = Request(port, "GET", "/metrics", "Accept-Encoding: gzip\r\n");
  const HttpResponse relayed = Request(port, "GET", "/./metrics", "Accept-Encoding: gzip\r\n");
  const HttpResponse direct_again = Request(port, "GET", "/metrics?x=1");
  const HttpResponse relayed_again = Request(port, "GET", "/./metrics");
  for (const HttpResponse* response : {&direct, &relayed, &direct_again, &relayed_again}) {
    ASSERT_EQ(response->error, "");
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->Header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(response->Header("x-content-type-options"), "nosniff");
    EXPECT_EQ(response->Header("vary"), "Accept-Encoding");
    EXPECT_EQ(response->Header("connection"), "close");
    EXPECT_EQ(response->Header("content-length"), std::to_string(response->body.size()));
    EXPECT_NE(response->Header("date"), "");
  }
  for (const HttpResponse* gzipped : {&direct, &relayed}) {
    EXPECT_EQ(gzipped->Header("content-encoding"), "gzip");
    EXPECT_EQ(Gunzip(gzipped->body).rfind("up 1\n", 0), 0u);
  }
  EXPECT_EQ(direct.headers.size(), relayed.headers.size());
  // Rendered before its own answer is counted: the first direct scrape shows 0.
  EXPECT_NE(Gunzip(relayed.body).find(counter + "1\n"), std::string::npos) << Gunzip(relayed.body);
  EXPECT_NE(direct_again.body.find(counter + "1\n"), std::string::npos) << direct_again.body;
  EXPECT_NE(relayed_again.body.find(counter + "2\n"), std::string::npos) << relayed_again.body;
}

// HEAD and other methods of the telemetry path: HEAD on the scrape thread, POST relayed and
// refused by the router as before.
TEST(HttpServerScrapeThreadTest, HeadHasNoBodyAndOtherMethodsAreRefused) {
  std::unique_ptr<HttpServer> server = StartSmallServer(HttpServerOptions{}, HttpHandlers{});
  ASSERT_NE(server, nullptr);
  const int port = PortOf(server->ListeningAddresses()[0]);
  const HttpResponse head = Request(port, "HEAD", "/metrics");
  ASSERT_EQ(head.error, "");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_NE(head.Header("content-length"), "0");
  const HttpResponse post = Request(port, "POST", "/metrics");
  ASSERT_EQ(post.error, "");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.Header("allow"), "GET, HEAD");
}

TEST(HttpServerLimitsTest, MaxRequestsAnswers503PastTheLimitAndCountsIt) {
  // Two scrapes block inside the handler; the third is past --web.max-requests=2.
  std::mutex mutex;
  std::condition_variable released;
  bool release = false;
  std::atomic<int> inside{0};
  HttpServerOptions options;
  options.worker_threads = 4;
  options.max_requests = 2;
  HttpHandlers handlers;
  handlers.render_metrics = [&] {
    ++inside;
    std::unique_lock<std::mutex> lock(mutex);
    released.wait_for(lock, std::chrono::seconds(20), [&] { return release; });
    return std::string("up 1\n");
  };
  std::unique_ptr<HttpServer> server = StartSmallServer(options, std::move(handlers));
  ASSERT_NE(server, nullptr);
  const int port = PortOf(server->ListeningAddresses()[0]);
  HttpResponse first;
  HttpResponse second;
  std::thread first_thread([&] { first = Request(port, "GET", "/metrics"); });
  std::thread second_thread([&] { second = Request(port, "GET", "/metrics"); });
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (inside.load() < 2 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(inside.load(), 2);
  const HttpResponse third = Request(port, "GET", "/metrics");
  EXPECT_EQ(third.status, 503);
  EXPECT_EQ(third.body, "too many concurrent scrapes (--web.max-requests=2)\n");
  EXPECT_EQ(Request(port, "GET", "/-/healthy").status, 200);  // only scrapes are limited
  {
    std::lock_guard<std::mutex> lock(mutex);
    release = true;
  }
  released.notify_all();
  first_thread.join();
  second_thread.join();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(second.status, 200);
  const HttpResponse after = Request(port, "GET", "/metrics");
  EXPECT_NE(after.body.find("\npidfd_exporter_http_scrapes_rejected_total 1\n"), std::string::npos)
      << after.body;
}

TEST(HttpServerLimitsTest, HeadTimeoutClosesSilentAndTricklingConnections) {
  HttpServerOptions options;
  options.request_head_timeout_ms = 300;
  std::unique_ptr<HttpServer> server = StartSmallServer(options, HttpHandlers{});
  ASSERT_NE(server, nullptr);
  const int port = PortOf(server->ListeningAddresses()[0]);
  Socket silent = ConnectLoopback(port);
  Socket trickling = ConnectLoopback(port);
  ASSERT_EQ(::send(trickling.fd(), "GET /metrics HTTP/1.1\r\n", 23, MSG_NOSIGNAL), 23);
  EXPECT_TRUE(ClosedByServerWithin(silent, std::chrono::seconds(10)));
  EXPECT_TRUE(ClosedByServerWithin(trickling, std::chrono::seconds(10)));
  const HttpResponse response = Request(port, "GET", "/metrics");
  EXPECT_EQ(response.status, 200);
  EXPECT_NE(
      response.body.find("\npidfd_exporter_http_connections_dropped_total{reason=\"head_timeout\"} 2\n"),
      std::string::npos)
      << response.body;
}

TEST(HttpServerLimitsTest, PastMaxConnectionsTheOldestWithoutAHeadMakesRoom) {
  HttpServerOptions options;
  options.max_connections = 4;
  options.request_head_timeout_ms = 30000;
  std::unique_ptr<HttpServer> server = StartSmallServer(options, HttpHandlers{});
  ASSERT_NE(server, nullptr);
  const int port = PortOf(server->ListeningAddresses()[0]);
  std::vector<Socket> idle;
  for (int i = 0; i < 8; ++i) idle.push_back(ConnectLoopback(port));  // twice the limit
  const HttpResponse response = Request(port, "GET", "/metrics");
  EXPECT_EQ(response.status, 200);
  // The four oldest made room for the four newest, the newest idle made room for the scrape.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(ClosedByServerWithin(idle[i], std::chrono::seconds(10))) << i;
  for (int i = 5; i < 8; ++i)
    EXPECT_FALSE(ClosedByServerWithin(idle[i], std::chrono::milliseconds(200))) << i;
  EXPECT_NE(response.body.find("over_max_connections\"} 5\n"), std::string::npos) << response.body;
}

TEST(HttpServerLimitsTest, OversizedHeadAnswers431) {
  std::unique_ptr<HttpServer> server = StartSmallServer(HttpServerOptions{}, HttpHandlers{});
  ASSERT_NE(server, nullptr);
  const int port = PortOf(server->ListeningAddresses()[0]);
  const HttpResponse response =
      Exchange(port, "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(20000, 'x') + "\r\n\r\n");
  EXPECT_EQ(response.status, 431);
  // Just under the limit is served.
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(16000, 'x') + "\r\n\r\n").status,
            200);
}

}  // namespace
}  // namespace pidfd_exporter
