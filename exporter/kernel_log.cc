#include "kernel_log.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <charconv>

#include "log.h"

namespace pidfd_exporter {
namespace {

std::optional<uint64_t> ParseNumber(std::string_view text) {
  uint64_t number = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (error != std::errc() || end == text.data()) return std::nullopt;
  return number;
}

// The number at the start of `text` (digits up to the first non-digit).
std::optional<int> LeadingPid(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::optional<uint64_t> number = ParseNumber(text.substr(0, digits));
  if (!number || *number == 0 || *number > 0x3fffffff) return std::nullopt;
  return static_cast<int>(*number);
}

// The value of "key=" in a comma-separated "oom-kill:" line, up to the next ',' (values such as
// cgroup paths may hold commas only in theory; a wrong split fails the PID check later).
std::string_view FieldValue(std::string_view text, std::string_view key) {
  size_t at = text.find(key);
  while (at != std::string_view::npos && at != 0 && text[at - 1] != ',' && text[at - 1] != ':')
    at = text.find(key, at + 1);
  if (at == std::string_view::npos) return {};
  const std::string_view rest = text.substr(at + key.size());
  return rest.substr(0, rest.find(','));
}

// "oom-kill:constraint=...,task_memcg=/a,task=python3,pid=24881,uid=0". The task name comes before
// the pid and may hold any byte, so pid= is searched from the end.
std::optional<OomKill> ParseOomKillLine(std::string_view text) {
  const size_t pid_at = text.rfind(",pid=");
  if (pid_at == std::string_view::npos) return std::nullopt;
  const std::optional<int> pid = LeadingPid(text.substr(pid_at + 5));
  if (!pid) return std::nullopt;
  OomKill kill;
  kill.pid = *pid;
  const std::string_view head = text.substr(0, pid_at);
  if (const size_t task_at = head.rfind(",task="); task_at != std::string_view::npos)
    kill.comm = std::string(head.substr(task_at + 6));
  kill.memory_cgroup = std::string(FieldValue(head, "task_memcg="));
  return kill;
}

// "Memory cgroup out of memory: Killed process 24881 (python3) total-vm:..." (also "Out of
// memory: Killed process ..." for the global OOM killer). The name ends at the last ") ".
std::optional<OomKill> ParseKilledProcessLine(std::string_view text) {
  constexpr std::string_view kMarker = "Killed process ";
  const size_t at = text.find(kMarker);
  const bool from_oom_killer = text.find("out of memory") != std::string_view::npos ||
                               text.find("Out of memory") != std::string_view::npos;
  if (at == std::string_view::npos || !from_oom_killer) return std::nullopt;
  std::string_view rest = text.substr(at + kMarker.size());
  const std::optional<int> pid = LeadingPid(rest);
  if (!pid) return std::nullopt;
  OomKill kill;
  kill.pid = *pid;
  const size_t open = rest.find(" (");
  const size_t close = rest.rfind(") ");
  if (open != std::string_view::npos && close != std::string_view::npos && close > open)
    kill.comm = std::string(rest.substr(open + 2, close - open - 2));
  return kill;
}

}  // namespace

std::optional<OomKill> ParseKernelLogRecord(std::string_view record) {
  const size_t semicolon = record.find(';');
  if (semicolon == std::string_view::npos) return std::nullopt;
  const std::string_view prefix = record.substr(0, semicolon);
  std::string_view text = record.substr(semicolon + 1);
  text = text.substr(0, text.find('\n'));  // continuation lines are the record's dictionary
  const size_t first_comma = prefix.find(',');
  const std::optional<uint64_t> priority = ParseNumber(prefix.substr(0, first_comma));
  if (!priority || first_comma == std::string_view::npos || (*priority >> 3) != 0) return std::nullopt;
  std::optional<OomKill> kill;
  if (text.starts_with("oom-kill:"))
    kill = ParseOomKillLine(text);
  else
    kill = ParseKilledProcessLine(text);
  if (!kill) return std::nullopt;
  const std::string_view after_priority = prefix.substr(first_comma + 1);
  const size_t second_comma = after_priority.find(',');
  if (second_comma != std::string_view::npos) {
    const std::string_view stamp = after_priority.substr(second_comma + 1);
    kill->kernel_microseconds = ParseNumber(stamp.substr(0, stamp.find(','))).value_or(0);
  }
  return kill;
}

std::unique_ptr<KernelLog> KernelLog::Open(std::string* error, const char* path) {
  UniqueFd fd(open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    const int open_error = errno;
    *error = ErrnoText(std::string("open(") + path + ")", open_error);
    if (open_error == EPERM || open_error == EACCES)
      *error += " (reading the kernel log needs CAP_SYSLOG while kernel.dmesg_restrict=1)";
    return nullptr;
  }
  // Only what is logged from now on: the ring buffer's history holds kills of processes long gone
  // whose PIDs may be in use again.
  if (lseek(fd.get(), 0, SEEK_END) < 0) {
    *error = ErrnoText("lseek(/dev/kmsg, SEEK_END)", errno);
    return nullptr;
  }
  return std::unique_ptr<KernelLog>(new KernelLog(std::move(fd)));
}

KernelLog::ReadStatus KernelLog::Read(std::vector<OomKill>* kills, std::string* error) {
  char buffer[kRecordBufferBytes];
  ReadStatus status = ReadStatus::kDrained;
  for (int record = 0; record < kMaxRecordsPerRead; ++record) {
    const ssize_t length = read(fd_.get(), buffer, sizeof buffer);
    if (length > 0) {
      if (auto kill = ParseKernelLogRecord(std::string_view(buffer, static_cast<size_t>(length))))
        kills->push_back(std::move(*kill));
      continue;
    }
    if (length < 0 && errno == EINTR) continue;
    // EPIPE: the reader fell behind the ring buffer; the next read returns the oldest record kept.
    if (length < 0 && errno == EPIPE) {
      status = ReadStatus::kLost;
      continue;
    }
    if (length == 0 || errno == EAGAIN) return status;
    *error = ErrnoText("read(/dev/kmsg)", errno);
    return ReadStatus::kError;
  }
  return status;
}

}  // namespace pidfd_exporter
