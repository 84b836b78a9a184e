// A minimal blocking HTTP/1.1 client over plain sockets, enough to scrape the exporter as a
// black box: one request per connection (Connection: close), chunked or length-delimited or
// read-to-EOF bodies. Any thread; no state.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace integration {

struct HttpResponse {
  int status = 0;
  // Header names lower-cased; the last value wins for repeated headers.
  std::map<std::string, std::string> headers;
  std::string body;
};

struct HttpResult {
  std::optional<HttpResponse> response;
  std::string error;  // why there is no response
};

// GET `path` from host:port. `headers` are extra request headers ("Name: value").
HttpResult HttpGet(const std::string& host, int port, const std::string& path,
                   const std::vector<std::string>& headers = {},
                   std::chrono::milliseconds timeout = std::chrono::seconds(5));
// Any method without a body (POST and PUT send Content-Length: 0 via `headers` if needed).
HttpResult HttpRequest(const std::string& method, const std::string& host, int port, const std::string& path,
                       const std::vector<std::string>& headers = {},
                       std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace integration
