#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace integration {
namespace {

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

std::string Trim(const std::string& text) {
  size_t start = text.find_first_not_of(" \t");
  if (start == std::string::npos) return "";
  size_t end = text.find_last_not_of(" \t\r");
  return text.substr(start, end - start + 1);
}

// Decodes a chunked body; false when it is malformed or truncated.
bool DecodeChunked(const std::string& raw, std::string* body) {
  size_t position = 0;
  body->clear();
  while (true) {
    size_t line_end = raw.find("\r\n", position);
    if (line_end == std::string::npos) return false;
    size_t chunk_size = 0;
    try {
      chunk_size = std::stoul(raw.substr(position, line_end - position), nullptr, 16);
    } catch (...) {
      return false;
    }
    position = line_end + 2;
    if (chunk_size == 0) return true;
    if (position + chunk_size > raw.size()) return false;
    body->append(raw, position, chunk_size);
    position += chunk_size + 2;  // the chunk's trailing CRLF
  }
}

}  // namespace

HttpResult HttpGet(const std::string& host, int port, const std::string& path,
                   const std::vector<std::string>& headers, std::chrono::milliseconds timeout) {
  return HttpRequest("GET", host, port, path, headers, timeout);
}

HttpResult HttpRequest(const std::string& method, const std::string& host, int port, const std::string& path,
                       const std::vector<std::string>& headers, std::chrono::milliseconds timeout) {
  HttpResult result;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    result.error = std::string("socket: ") + strerror(errno);
    return result;
  }
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
    result.error = "not an IPv4 address: " + host;
    return result;
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    result.error = "connect " + host + ":" + std::to_string(port) + ": " + strerror(errno);
    return result;
  }
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
                        "\r\nConnection: close\r\n";
  for (const std::string& header : headers) request += header + "\r\n";
  request += "\r\n";
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      result.error = std::string("send: ") + strerror(errno);
      return result;
    }
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buffer[16384];
  while (true) {
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      result.error =
          std::string("recv: ") + strerror(errno) + " after " + std::to_string(raw.size()) + " bytes";
      return result;
    }
    raw.append(buffer, static_cast<size_t>(n));
  }
  size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    result.error = "no end of headers in a " + std::to_string(raw.size()) + "-byte response";
    return result;
  }
  HttpResponse response;
  std::string head = raw.substr(0, header_end);
  size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) {
    result.error = "malformed status line: " + status_line;
    return result;
  }
  response.status = std::atoi(status_line.c_str() + 9);
  while (line_end != std::string::npos) {
    size_t next = head.find("\r\n", line_end + 2);
    std::string line =
        head.substr(line_end + 2, next == std::string::npos ? std::string::npos : next - line_end - 2);
    size_t colon = line.find(':');
    if (colon != std::string::npos)
      response.headers[Lower(Trim(line.substr(0, colon)))] = Trim(line.substr(colon + 1));
    line_end = next;
  }
  std::string raw_body = raw.substr(header_end + 4);
  auto header = [&response](const std::string& name) {
    auto found = response.headers.find(name);
    return found == response.headers.end() ? std::string() : found->second;
  };
  if (Lower(header("transfer-encoding")) == "chunked") {
    if (!DecodeChunked(raw_body, &response.body)) {
      result.error = "malformed chunked body";
      return result;
    }
  } else if (!header("content-length").empty()) {
    size_t length = std::stoul(header("content-length"));
    if (raw_body.size() < length) {
      result.error = "body shorter than Content-Length";
      return result;
    }
    response.body = raw_body.substr(0, length);
  } else {
    response.body = std::move(raw_body);
  }
  result.response = std::move(response);
  return result;
}

}  // namespace integration
