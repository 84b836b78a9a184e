// Log: structured log lines on stderr, logfmt (default) or JSON, with a level filter.
// Thread-safe (one mutex around each write); any thread may call it. It never throws and
// never blocks on anything but stderr.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace pidfd_exporter {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class LogFormat { kLogfmt, kJson };

// Parses "debug", "info", "warn", "error" / "logfmt", "json"; false when unknown.
bool ParseLogLevel(std::string_view text, LogLevel* level);
bool ParseLogFormat(std::string_view text, LogFormat* format);
void ConfigureLog(LogLevel level, LogFormat format);
bool LogEnabled(LogLevel level);

using LogField = std::pair<std::string_view, std::string>;
// One line: ts=... level=... msg="..." key=value ... (values quoted and escaped as needed).
void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});

// "operation: strerror(error_number)", for error sentences about a failed system call.
std::string ErrnoText(std::string_view operation, int error_number);

inline void LogDebug(std::string_view message, std::initializer_list<LogField> fields = {}) {
  if (LogEnabled(LogLevel::kDebug)) Log(LogLevel::kDebug, message, fields);
}
inline void LogInfo(std::string_view message, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kInfo, message, fields);
}
inline void LogWarn(std::string_view message, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kWarn, message, fields);
}
inline void LogError(std::string_view message, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kError, message, fields);
}

}  // namespace pidfd_exporter
