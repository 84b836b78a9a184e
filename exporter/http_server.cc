// HttpServer: the gate (http_gate.cc) in front, one CivetWeb server behind it on a private
// loopback port. CivetWeb's begin_request callback answers every request itself, routing by
// the exact, normalised path. CivetWeb's own handlers match by prefix and only know some
// methods, so routing here is what keeps "/metrics2" and "/metrics/x" at 404, any other
// method at 405, and authentication on every path. TLS is the gate's (tls_context.cc):
// CivetWeb only ever speaks plain HTTP to the gate, so the OpenSSL shim in
// exporter/tls_shim/ is no longer on the serving path.
#include "http_server.h"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <civetweb.h>
#include <crypt.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
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

#include "http_gate.h"
#include "log.h"
#include "tls_context.h"

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

// Now as the Date header writes it (RFC 9110 IMF-fixdate), as CivetWeb does; English names
// whatever the locale.
std::string HttpDate() {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const time_t now = time(nullptr);
  tm utc{};
  gmtime_r(&now, &utc);
  char text[40];
  std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[utc.tm_wday % 7], utc.tm_mday,
                kMonths[utc.tm_mon % 12], utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return text;
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
         std::vector<std::pair<std::string, std::string>> response_headers, std::shared_ptr<GatePorts> ports,
         int max_requests, bool http_metrics)
      : telemetry_path_(std::move(telemetry_path)),
        handlers_(std::move(handlers)),
        authenticator_(std::move(users)),
        response_headers_(std::move(response_headers)),
        ports_(std::move(ports)),
        max_requests_(max_requests),
        http_metrics_(http_metrics) {}

  // Answers a GET or HEAD from its raw head without CivetWeb: every scrape of the exact
  // telemetry path that the gate's scrape thread is free for, and on the gate's own thread
  // any request when the process is out of descriptors and CivetWeb could not accept the
  // connection to it (every watched process holds a pidfd). Only the path before '?' is
  // routed (no percent-decoding or dot segments there); other methods get 503. The answer is
  // CivetWeb's: the request's HTTP version, a Date header.
  std::string ServeWithoutCivetweb(const std::string& head) {
    const size_t line_end = head.find_first_of("\r\n");
    const std::string line = head.substr(0, line_end);
    const size_t first_space = line.find(' ');
    const size_t second_space = line.find(' ', first_space + 1);
    const std::string method = line.substr(0, first_space);
    std::string path =
        first_space == std::string::npos ? "" : line.substr(first_space + 1, second_space - first_space - 1);
    path = path.substr(0, path.find('?'));
    Response response = Text(503, "out of file descriptors\n");
    try {
      if (method == "GET" || method == "HEAD") {
        const std::string authorization = HeaderValue(head, "authorization");
        const std::string accept_encoding = HeaderValue(head, "accept-encoding");
        response = Route(method, path, authorization.c_str(), accept_encoding.c_str());
      }
    } catch (...) {
      response = Text(500, "500 internal server error\n");
    }
    const bool http_1_0 = second_space != std::string::npos && line.substr(second_space + 1) == "HTTP/1.0";
    return Serialize(response, method == "HEAD", http_1_0 ? "HTTP/1.0" : "HTTP/1.1");
  }

  // The gate whose counters the telemetry path reports; set once, after it started.
  void SetGate(const HttpGate* gate) { gate_.store(gate); }

  // CivetWeb's begin_request callback: it sees every request, whatever its method and path,
  // before CivetWeb's own prefix-matched handlers and file serving, which therefore never run.
  static int OnBeginRequest(mg_connection* connection) {
    const mg_request_info* request = mg_get_request_info(connection);
    const auto* server = static_cast<const CivetServer*>(request->user_data);
    auto* router = static_cast<Router*>(const_cast<void*>(server->getUserContext()));
    // Only the gate's own connections: anything else on the private port bypassed its limits.
    if (!router->ports_->Contains(static_cast<uint16_t>(request->remote_port))) {
      mg_printf(connection, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return 403;
    }
    return router->Handle(connection, request);
  }

 private:
  int Handle(mg_connection* connection, const mg_request_info* request) {
    const std::string method = request->request_method != nullptr ? request->request_method : "";
    const bool head = method == "HEAD";
    Response response;
    try {
      response =
          Route(method, request->local_uri != nullptr ? request->local_uri : "",
                mg_get_header(connection, "Authorization"), mg_get_header(connection, "Accept-Encoding"));
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

  Response Route(const std::string& method, const std::string& path, const char* authorization,
                 const char* accept_encoding) {
    if (authenticator_.enabled() && !authenticator_.Authorize(authorization)) {
      Response response = Text(401, "Unauthorized\n");
      response.headers.emplace_back("WWW-Authenticate", kRealmHeader);
      return response;
    }
    // CivetWeb's local_uri is decoded and normalised ("/a/../metrics" is "/metrics").
    const bool get_or_head = method == "GET" || method == "HEAD";
    if (path == telemetry_path_) {
      if (!get_or_head) return MethodNotAllowed("GET, HEAD");
      return LimitedMetrics(accept_encoding);
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

  // The value of the first header `lower_name` in a raw head ("" when absent).
  static std::string HeaderValue(const std::string& head, const std::string& lower_name) {
    size_t start = head.find('\n');
    while (start != std::string::npos && start + 1 < head.size()) {
      const size_t end = head.find('\n', start + 1);
      const std::string line =
          head.substr(start + 1, end == std::string::npos ? std::string::npos : end - start - 1);
      const size_t colon = line.find(':');
      if (colon != std::string::npos && ToLower(line.substr(0, colon)) == lower_name) {
        return std::string(
            Trim(std::string_view(line).substr(colon + 1, line.find_last_not_of("\r") - colon)));
      }
      start = end;
    }
    return "";
  }

  std::string Serialize(Response response, bool head_only, const char* version) const {
    for (const auto& configured : response_headers_) {
      std::erase_if(response.headers, [&configured](const auto& header) {
        return SameHeaderName(header.first, configured.first);
      });
      response.headers.push_back(configured);
    }
    std::string out = std::string(version) + " " + std::to_string(response.status) + " " +
                      mg_get_response_code_text(nullptr, response.status) +
                      "\r\nContent-Type: " + response.content_type +
                      "\r\nContent-Length: " + std::to_string(response.body.size()) + "\r\n";
    const bool has_nosniff = std::any_of(
        response.headers.begin(), response.headers.end(),
        [](const auto& header) { return SameHeaderName(header.first, "X-Content-Type-Options"); });
    if (!has_nosniff) out += "X-Content-Type-Options: nosniff\r\n";
    for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
    out += "Date: " + HttpDate() + "\r\nConnection: close\r\n\r\n";
    if (head_only) return out;
    // The head goes in front of the body, in the body's own buffer: a scrape of 1,000 sets is
    // 1.5 MB, and a second buffer that size per scrape made the allocator return and fault in
    // fresh pages every time (~2 ms of CPU; BENCHMARKS.md, section 1).
    response.body.insert(0, out);
    return std::move(response.body);
  }

  // node_exporter's --web.max-requests: past the limit a scrape answers 503 at once
  // instead of queueing behind the others.
  Response LimitedMetrics(const char* accept_encoding) {
    struct InFlight {
      std::atomic<int>& count;
      ~InFlight() { count.fetch_sub(1); }
    } in_flight{scrapes_in_flight_};
    if (scrapes_in_flight_.fetch_add(1) >= max_requests_ && max_requests_ > 0) {
      scrapes_rejected_.fetch_add(1, std::memory_order_relaxed);
      return Text(503,
                  "too many concurrent scrapes (--web.max-requests=" + std::to_string(max_requests_) + ")\n");
    }
    return Metrics(accept_encoding);
  }

  Response Metrics(const char* accept_encoding) {
    Response response;
    response.content_type = kMetricsContentType;
    response.body = handlers_.render_metrics ? handlers_.render_metrics() : std::string();
    AppendHttpMetrics(&response.body);
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

  // The HTTP front end's own series, after the exporter's.
  void AppendHttpMetrics(std::string* body) const {
    const HttpGate* gate = gate_.load();
    if (gate == nullptr || !http_metrics_) return;
    const HttpGateCounters& counters = gate->counters();
    std::string& out = *body;
    out += "# HELP pidfd_exporter_http_open_connections Client connections the HTTP server holds open.\n";
    out += "# TYPE pidfd_exporter_http_open_connections gauge\n";
    out += "pidfd_exporter_http_open_connections " + std::to_string(counters.open_connections.load()) + "\n";
    out += "# HELP pidfd_exporter_http_connections_accepted_total Client connections accepted.\n";
    out += "# TYPE pidfd_exporter_http_connections_accepted_total counter\n";
    out +=
        "pidfd_exporter_http_connections_accepted_total " + std::to_string(counters.accepted.load()) + "\n";
    out +=
        "# HELP pidfd_exporter_http_connections_dropped_total Client connections closed before a complete "
        "answer, by reason.\n";
    out += "# TYPE pidfd_exporter_http_connections_dropped_total counter\n";
    for (size_t i = 0; i < std::size(kDropReasonNames); ++i) {
      out += std::string("pidfd_exporter_http_connections_dropped_total{reason=\"") + kDropReasonNames[i] +
             "\"} " + std::to_string(counters.dropped[i].load()) + "\n";
    }
    out +=
        "# HELP pidfd_exporter_http_scrapes_rejected_total Scrapes answered 503 because --web.max-requests "
        "scrapes were in flight.\n";
    out += "# TYPE pidfd_exporter_http_scrapes_rejected_total counter\n";
    out += "pidfd_exporter_http_scrapes_rejected_total " + std::to_string(scrapes_rejected_.load()) + "\n";
    out +=
        "# HELP pidfd_exporter_http_served_without_civetweb_total Requests the HTTP gate answered itself "
        "because the process was out of file descriptors.\n";
    out += "# TYPE pidfd_exporter_http_served_without_civetweb_total counter\n";
    out += "pidfd_exporter_http_served_without_civetweb_total " +
           std::to_string(counters.served_without_backend.load()) + "\n";
    out +=
        "# HELP pidfd_exporter_http_scrapes_served_directly_total Scrapes the HTTP gate answered on its own "
        "scrape thread, without relaying them to CivetWeb (a scrape that comes while another is answered "
        "there is relayed).\n";
    out += "# TYPE pidfd_exporter_http_scrapes_served_directly_total counter\n";
    out += "pidfd_exporter_http_scrapes_served_directly_total " +
           std::to_string(counters.served_directly.load()) + "\n";
    out +=
        "# HELP pidfd_exporter_tls_certificate_reloads_total TLS certificate files re-read after a change.\n";
    out += "# TYPE pidfd_exporter_tls_certificate_reloads_total counter\n";
    out += "pidfd_exporter_tls_certificate_reloads_total " + std::to_string(gate->tls_reloads()) + "\n";
    out +=
        "# HELP pidfd_exporter_tls_certificate_reload_failures_total Changed TLS certificate files that "
        "could "
        "not be loaded (the previous certificate stays).\n";
    out += "# TYPE pidfd_exporter_tls_certificate_reload_failures_total counter\n";
    out += "pidfd_exporter_tls_certificate_reload_failures_total " +
           std::to_string(gate->tls_reload_failures()) + "\n";
    out +=
        "# HELP pidfd_exporter_tls_certificate_last_reload_successful 0 while changed TLS certificate files "
        "could not be loaded (an older certificate is served), else 1.\n";
    out += "# TYPE pidfd_exporter_tls_certificate_last_reload_successful gauge\n";
    out += std::string("pidfd_exporter_tls_certificate_last_reload_successful ") +
           (gate->tls_last_reload_successful() ? "1" : "0") + "\n";
  }

  const std::string telemetry_path_;
  const HttpHandlers handlers_;
  BasicAuthenticator authenticator_;
  const std::vector<std::pair<std::string, std::string>> response_headers_;
  const std::shared_ptr<GatePorts> ports_;
  const int max_requests_;
  const bool http_metrics_;
  std::atomic<int> scrapes_in_flight_{0};
  std::atomic<uint64_t> scrapes_rejected_{0};
  std::atomic<const HttpGate*> gate_{nullptr};
};

}  // namespace

struct HttpServer::Impl {
  std::unique_ptr<Router> router;
  std::unique_ptr<CivetServer> server;  // declared after the router: destroyed before it
  std::unique_ptr<HttpGate> gate;       // stopped first, destroyed after the workers (~HttpServer)
  sockaddr_in backend{};
  std::vector<std::string> listening_addresses;
};

HttpServer::HttpServer() : impl_(std::make_unique<Impl>()) {}

namespace {

// Connects to `address` and closes at once.
void Knock(const sockaddr_in& address) {
  const int socket_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (socket_fd < 0) return;
  (void)connect(socket_fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  close(socket_fd);
}

std::string ValidateOptions(const HttpServerOptions& options) {
  if (options.listen_addresses.empty()) return "no listen address";
  if (options.telemetry_path.empty() || options.telemetry_path[0] != '/' || options.telemetry_path == "/" ||
      options.telemetry_path.rfind("/-/", 0) == 0) {
    return "invalid telemetry path \"" + options.telemetry_path +
           "\": must start with / and not be / or under /-/";
  }
  if (options.worker_threads < 1 || options.request_timeout_ms < 1 || options.request_head_timeout_ms < 1) {
    return "worker threads and timeouts must be positive";
  }
  if (options.max_connections < 1 || options.max_requests < 0) {
    return "max connections must be positive and max requests not negative";
  }
  return "";
}

// CivetWeb on an ephemeral loopback port, plain HTTP: the gate hands it complete request
// heads only. Its request timeout then only bounds its reads and writes to the gate, which
// are instant; it is the head timeout so that a local process that connects to the private
// port directly cannot hold a worker for longer than a client of the gate can.
std::unique_ptr<CivetServer> StartCivetweb(const HttpServerOptions& options, Router* router,
                                           sockaddr_in* backend, std::string* error) {
  const std::string queue = std::to_string(options.worker_threads * 2);
  const std::vector<std::string> civetweb_options = {
      "listening_ports", "127.0.0.1:0", "num_threads", std::to_string(options.worker_threads),
      "request_timeout_ms", std::to_string(options.request_head_timeout_ms),
      // Every request is one connection from the gate, which closes it after the answer.
      "enable_keep_alive", "no", "connection_queue", queue, "listen_backlog", "1024",
      // document_root stays unset: no file serving, no directory listing, no PUT/DELETE of files.
  };
  CivetCallbacks callbacks;  // zero-initialised by its constructor
  callbacks.log_message = OnCivetwebLogMessage;
  callbacks.begin_request = Router::OnBeginRequest;
  std::string startup_messages;
  startup_log = &startup_messages;
  std::unique_ptr<CivetServer> server;
  try {
    server = std::make_unique<CivetServer>(civetweb_options, &callbacks, router);
  } catch (const CivetException&) {
    // Handled below: the reason is in startup_messages.
  }
  startup_log = nullptr;
  mg_server_port port{};
  if (!server || server->getContext() == nullptr ||
      mg_get_server_ports(server->getContext(), 1, &port) != 1) {
    *error = "starting CivetWeb on loopback: " + (startup_messages.empty() ? "failed" : startup_messages);
    return nullptr;
  }
  backend->sin_family = AF_INET;
  backend->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  backend->sin_port = htons(static_cast<uint16_t>(port.port));
  return server;
}

// Client connections never take more than half the descriptor limit: the rest is for the
// pidfds of watched processes, so a connection flood cannot stop the counting of exits.
int ConnectionsWithinFileLimit(int max_connections, int backend_connections) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return max_connections;
  const int64_t budget = static_cast<int64_t>(limit.rlim_cur / 2) - 2 * backend_connections;
  if (max_connections <= budget) return max_connections;
  const int lowered = static_cast<int>(std::max<int64_t>(budget, 8));
  LogWarn("Lowering --web.max-connections to half the descriptor limit",
          {{"max_connections", std::to_string(lowered)}, {"file_limit", std::to_string(limit.rlim_cur)}});
  return lowered;
}

// "Name: value\r\n" lines of the configured headers, for the gate's own answers.
std::string HeaderLines(const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string lines;
  for (const auto& [name, value] : headers) {
    if (SameHeaderName(name, "X-Content-Type-Options")) continue;  // the gate sends nosniff
    lines += name + ": " + value + "\r\n";
  }
  return lines;
}

}  // namespace

HttpServer::~HttpServer() {
  if (!impl_) return;
  // No new requests; answers in flight are cut. The gate object itself outlives the workers
  // below: a scrape in flight reads its counters (a SIGTERM under scrape load crashed here).
  if (impl_->gate) impl_->gate->Stop();
  if (!impl_->server) return;
  // CivetWeb's master thread notices the stop request only when its poll() on the
  // listening socket returns, which takes up to its internal timeout (~1 s here). A
  // connection attempt wakes it at once, so SIGTERM ends the exporter promptly.
  std::atomic<bool> closed{false};
  std::thread waker([this, &closed] {
    while (!closed.load()) {
      Knock(impl_->backend);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  // Stops the workers (waits for requests in flight) while the router they call still exists.
  impl_->server->close();
  closed.store(true);
  waker.join();
  impl_->gate.reset();
}

std::vector<std::string> HttpServer::ListeningAddresses() const {
  return impl_->listening_addresses;
}

std::unique_ptr<HttpServer> HttpServer::Start(const HttpServerOptions& options, HttpHandlers handlers,
                                              std::string* error) {
  std::string ignored;
  if (error == nullptr) error = &ignored;
  try {
    *error = ValidateOptions(options);
    if (!error->empty()) return nullptr;
    std::vector<ListeningSocket> listeners;
    if (!BindListeners(options.listen_addresses, &listeners, error)) return nullptr;
    std::unique_ptr<TlsContext> tls;
    if (options.tls) {
      tls = TlsContext::Create(*options.tls, error);
      if (!tls) return nullptr;
    }
    std::unique_ptr<HttpServer> server(new HttpServer());
    Impl& impl = *server->impl_;
    auto ports = std::make_shared<GatePorts>();
    impl.router =
        std::make_unique<Router>(options.telemetry_path, std::move(handlers), options.basic_auth_users,
                                 options.response_headers, ports, options.max_requests, options.http_metrics);
    impl.server = StartCivetweb(options, impl.router.get(), &impl.backend, error);
    if (!impl.server) return nullptr;
    for (const ListeningSocket& listener : listeners) impl.listening_addresses.push_back(listener.address);
    HttpGateOptions gate_options;
    gate_options.max_connections =
        ConnectionsWithinFileLimit(options.max_connections, options.worker_threads * 2);
    gate_options.head_timeout = std::chrono::milliseconds(options.request_head_timeout_ms);
    gate_options.response_timeout = std::chrono::milliseconds(options.request_timeout_ms);
    gate_options.max_backend_connections = options.worker_threads * 2;
    gate_options.backend = impl.backend;
    gate_options.extra_headers = HeaderLines(options.response_headers);
    Router* router = impl.router.get();
    gate_options.serve_without_backend = [router](const std::string& head) {
      return router->ServeWithoutCivetweb(head);
    };
    gate_options.direct_path = options.telemetry_path;
    impl.gate = HttpGate::Start(gate_options, std::move(listeners), std::move(tls), ports, error);
    if (!impl.gate) return nullptr;
    impl.router->SetGate(impl.gate.get());
    return server;
  } catch (const std::exception& failure) {
    startup_log = nullptr;
    *error = std::string("starting HTTP server: ") + failure.what();
    return nullptr;
  }
}

}  // namespace pidfd_exporter
