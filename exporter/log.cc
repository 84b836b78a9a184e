#include "log.h"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace pidfd_exporter {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kLogfmt)};
std::mutex g_write_mutex;

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

std::string Timestamp() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  char buffer[64];
  const size_t length = strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  snprintf(buffer + length, sizeof buffer - length, ".%03ldZ", now.tv_nsec / 1000000);
  return buffer;
}

// Escapes for both formats: quotes, backslashes and control bytes become escapes, so a
// process name can never break a log line in two.
void AppendEscaped(std::string* out, std::string_view value) {
  for (unsigned char c : value) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char hex[8];
          snprintf(hex, sizeof hex, "\\u%04x", c);
          out->append(hex);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
}

bool NeedsQuotes(std::string_view value) {
  if (value.empty()) return true;
  for (unsigned char c : value) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

void AppendLogfmtPair(std::string* line, std::string_view key, std::string_view value) {
  if (!line->empty()) line->push_back(' ');
  line->append(key);
  line->push_back('=');
  if (NeedsQuotes(value)) {
    line->push_back('"');
    AppendEscaped(line, value);
    line->push_back('"');
  } else {
    line->append(value);
  }
}

void AppendJsonPair(std::string* line, std::string_view key, std::string_view value) {
  if (line->size() > 1) line->push_back(',');
  line->push_back('"');
  AppendEscaped(line, key);
  line->append("\":\"");
  AppendEscaped(line, value);
  line->push_back('"');
}

}  // namespace

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  if (text == "debug")
    *level = LogLevel::kDebug;
  else if (text == "info")
    *level = LogLevel::kInfo;
  else if (text == "warn")
    *level = LogLevel::kWarn;
  else if (text == "error")
    *level = LogLevel::kError;
  else
    return false;
  return true;
}

bool ParseLogFormat(std::string_view text, LogFormat* format) {
  if (text == "logfmt")
    *format = LogFormat::kLogfmt;
  else if (text == "json")
    *format = LogFormat::kJson;
  else
    return false;
  return true;
}

void ConfigureLog(LogLevel level, LogFormat format) {
  g_level.store(static_cast<int>(level));
  g_format.store(static_cast<int>(format));
}

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  std::string line;
  if (static_cast<LogFormat>(g_format.load()) == LogFormat::kJson) {
    line.push_back('{');
    AppendJsonPair(&line, "ts", Timestamp());
    AppendJsonPair(&line, "level", LevelName(level));
    AppendJsonPair(&line, "msg", message);
    for (const auto& [key, value] : fields) AppendJsonPair(&line, key, value);
    line.append("}\n");
  } else {
    AppendLogfmtPair(&line, "ts", Timestamp());
    AppendLogfmtPair(&line, "level", LevelName(level));
    AppendLogfmtPair(&line, "msg", message);
    for (const auto& [key, value] : fields) AppendLogfmtPair(&line, key, value);
    line.push_back('\n');
  }
  std::lock_guard<std::mutex> lock(g_write_mutex);
  // One write per line keeps lines whole even when several threads log at once.
  const char* data = line.data();
  size_t remaining = line.size();
  while (remaining > 0) {
    const ssize_t written = ::write(STDERR_FILENO, data, remaining);
    if (written <= 0) break;
    data += written;
    remaining -= static_cast<size_t>(written);
  }
}

std::string ErrnoText(std::string_view operation, int error_number) {
  return std::string(operation) + ": " + std::strerror(error_number);
}

}  // namespace pidfd_exporter
