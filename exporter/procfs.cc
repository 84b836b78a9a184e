#include "procfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <type_traits>

#include "text_lines.h"
#include "unique_fd.h"

namespace pidfd_exporter {
namespace {

constexpr std::string_view kWhitespace = " \t\n\r\v\f";

std::string_view Trim(std::string_view text) {
  const size_t first = text.find_first_not_of(kWhitespace);
  if (first == std::string_view::npos) return {};
  const size_t last = text.find_last_not_of(kWhitespace);
  return text.substr(first, last - first + 1);
}

// The whole of `text` as a decimal integer of type T; nothing else may be in it. Unsigned
// types reject a sign, signed types accept only '-'; out-of-range values are rejected.
template <typename T>
std::optional<T> ParseDecimal(std::string_view text) {
  if (text.empty()) return std::nullopt;
  T value{};
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc() || stop != end) return std::nullopt;
  return value;
}

// Undoes the escaping of the Name: line in /proc/PID/status. The kernel escapes only '\n'
// and '\\' there (seq_escape_str with ESCAPE_SPACE|ESCAPE_SPECIAL, only "\n\\"); the
// other sequences of those two classes are undone too so that a kernel escaping more still
// round-trips. An unknown sequence is kept as it is: the bytes are the best we have.
std::string UnescapeStatusName(std::string_view escaped) {
  // The letter after the backslash, and the byte it stands for, at the same index.
  constexpr std::string_view kEscapeLetters = "ntrfvae\"\\";
  constexpr std::string_view kEscapedBytes = "\n\t\r\f\v\a\x1b\"\\";
  static_assert(kEscapeLetters.size() == kEscapedBytes.size());
  std::string name;
  name.reserve(escaped.size());
  for (size_t i = 0; i < escaped.size(); ++i) {
    const size_t letter = (escaped[i] == '\\' && i + 1 < escaped.size()) ? kEscapeLetters.find(escaped[i + 1])
                                                                         : std::string_view::npos;
    if (letter == std::string_view::npos) {
      name.push_back(escaped[i]);
    } else {
      name.push_back(kEscapedBytes[letter]);
      ++i;
    }
  }
  return name;
}

// Field numbers of proc(5) for /proc/PID/stat. Fields 1 and 2 precede the comm's closing
// parenthesis; field 3 is the first one after it.
constexpr size_t kFirstFieldAfterComm = 3;
constexpr size_t kFieldParentPid = 4;
constexpr size_t kFieldFlags = 9;
constexpr size_t kFieldThreadCount = 20;
constexpr size_t kFieldStartTime = 22;
constexpr size_t kFieldExitCode = 52;

}  // namespace

std::optional<ProcessStat> ParseStat(std::string_view text) {
  // The comm may hold anything but NUL, "(" and ")" included, so only the LAST ')' of the
  // text can be trusted to close it; every field after it is numeric except the state.
  const size_t open = text.find('(');
  const size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;

  ProcessStat stat;
  const auto pid = ParseDecimal<int>(Trim(text.substr(0, open)));
  if (!pid || *pid <= 0) return std::nullopt;
  stat.pid = *pid;
  stat.comm = std::string(text.substr(open + 1, close - open - 1));

  std::string_view rest = text.substr(close + 1);
  if (rest.empty() || rest.front() != ' ') return std::nullopt;
  rest.remove_prefix(1);
  if (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
  // The fields are walked in place, not split into a vector of ~50 views: this runs for every
  // process a scan reads. Every field up to exit_code is a decimal integer but the state;
  // checking all of them rejects text that merely has enough spaces in it.
  std::string_view fields[kFieldExitCode + 1];  // by proc(5) field number, up to exit_code
  size_t last_field = kFirstFieldAfterComm;
  for (size_t start = 0;; ++last_field) {
    const size_t stop = rest.find(' ', start);
    const std::string_view value = rest.substr(start, stop == std::string_view::npos ? stop : stop - start);
    if (last_field > kFirstFieldAfterComm && last_field <= kFieldExitCode) {
      const std::string_view digits = (!value.empty() && value.front() == '-') ? value.substr(1) : value;
      if (!ParseDecimal<uint64_t>(digits)) return std::nullopt;
    }
    if (last_field <= kFieldExitCode) fields[last_field] = value;
    if (stop == std::string_view::npos) break;
    start = stop + 1;
  }
  if (last_field < kFieldStartTime) return std::nullopt;
  if (fields[kFirstFieldAfterComm].size() != 1) return std::nullopt;
  stat.state = fields[kFirstFieldAfterComm].front();

  const auto parent_pid = ParseDecimal<int>(fields[kFieldParentPid]);
  const auto flags = ParseDecimal<uint64_t>(fields[kFieldFlags]);
  const auto thread_count = ParseDecimal<long>(fields[kFieldThreadCount]);
  const auto start_time = ParseDecimal<uint64_t>(fields[kFieldStartTime]);
  if (!parent_pid || !flags || !thread_count || !start_time) return std::nullopt;
  stat.parent_pid = *parent_pid;
  stat.flags = *flags;
  stat.thread_count = *thread_count;
  stat.start_time_ticks = *start_time;

  if (last_field >= kFieldExitCode) {
    const auto exit_code = ParseDecimal<int>(fields[kFieldExitCode]);
    if (!exit_code) return std::nullopt;
    stat.has_exit_code = true;
    stat.exit_code = *exit_code;
  }
  return stat;
}

std::optional<ProcessStatus> ParseStatus(std::string_view text) {
  ProcessStatus status;
  bool have_name = false, have_state = false, have_parent = false, have_tracer = false, have_uid = false,
       have_threads = false;
  bool malformed = false;
  // A present but unparsable line spoils the whole text rather than leaving a default in it.
  auto take_integer = [&malformed](std::string_view value, auto* target, bool* seen) {
    const auto parsed = ParseDecimal<std::remove_pointer_t<decltype(target)>>(Trim(value));
    if (parsed) *target = *parsed;
    malformed = malformed || !parsed;
    *seen = true;
  };

  ForEachLine(text, [&](std::string_view line) {
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return true;
    const std::string_view key = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    // The first line with a key wins; the kernel never repeats one.
    if (key == "Name" && !have_name) {
      // Exactly one tab follows the colon; a name may itself begin with blanks.
      if (!value.empty() && value.front() == '\t') value.remove_prefix(1);
      status.name = UnescapeStatusName(value);
      have_name = true;
    } else if (key == "State" && !have_state) {
      value = Trim(value);  // "R (running)"
      if (!value.empty()) status.state = value.front();
      malformed = malformed || value.empty();
      have_state = true;
    } else if (key == "PPid" && !have_parent) {
      take_integer(value, &status.parent_pid, &have_parent);
    } else if (key == "TracerPid" && !have_tracer) {
      take_integer(value, &status.tracer_pid, &have_tracer);
    } else if (key == "Threads" && !have_threads) {
      take_integer(value, &status.thread_count, &have_threads);
    } else if (key == "Uid" && !have_uid) {
      // "real effective saved filesystem", tab-separated.
      value = Trim(value);
      const size_t gap = value.find_first_of(kWhitespace);
      const std::string_view after_real =
          gap == std::string_view::npos ? std::string_view() : Trim(value.substr(gap));
      take_integer(value.substr(0, gap), &status.real_uid, &have_uid);
      take_integer(after_real.substr(0, after_real.find_first_of(kWhitespace)), &status.effective_uid,
                   &have_uid);
    }
    return !malformed;
  });

  if (malformed || !have_name || !have_state || !have_parent || !have_tracer || !have_uid || !have_threads) {
    return std::nullopt;
  }
  return status;
}

std::vector<std::string> ParseCmdline(std::string_view text) {
  // Trailing NULs are padding (setproctitle implementations fill the old argv area with
  // them), not empty arguments; prometheus/procfs, which process-exporter uses, trims the
  // same way.
  const size_t last = text.find_last_not_of('\0');
  if (last == std::string_view::npos) return {};
  std::vector<std::string> arguments;
  for (const std::string_view argument : Split(text.substr(0, last + 1), '\0')) {
    arguments.emplace_back(argument);
  }
  return arguments;
}

std::optional<std::string> ParseCgroup(std::string_view text) {
  // Line format: "hierarchy-id:controller-list:path"; the path may itself contain ':'.
  std::optional<std::string_view> unified, systemd, first;
  ForEachLine(text, [&](std::string_view line) {
    const size_t first_colon = line.find(':');
    if (first_colon == std::string_view::npos) return true;
    const size_t second_colon = line.find(':', first_colon + 1);
    if (second_colon == std::string_view::npos) return true;
    const std::string_view hierarchy = line.substr(0, first_colon);
    const std::string_view controllers = line.substr(first_colon + 1, second_colon - first_colon - 1);
    const std::string_view path = line.substr(second_colon + 1);
    if (hierarchy == "0" && controllers.empty()) {
      unified = path;
      return false;
    }
    if (!first) first = path;
    // On v1 the name=systemd hierarchy holds the unit path (/system.slice/x.service) even
    // when the controllers listed first sit at "/".
    if (!systemd) {
      for (const std::string_view controller : Split(controllers, ',')) {
        if (controller == "name=systemd") systemd = path;
      }
    }
    return true;
  });
  if (unified) return std::string(*unified);
  if (systemd) return std::string(*systemd);
  if (first) return std::string(*first);
  return std::nullopt;
}

std::string ParseComm(std::string_view text) {
  // Only the last newline is the kernel's; the name itself may end in one before it.
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return std::string(text);
}

std::optional<int> ParsePidfile(std::string_view text) {
  const std::string_view digits = Trim(text);
  if (digits.empty() || digits.front() < '0' || digits.front() > '9') return std::nullopt;
  const auto pid = ParseDecimal<int>(digits);
  if (!pid || *pid <= 0) return std::nullopt;
  return pid;
}

std::optional<int> ParsePidfdFdinfoPid(std::string_view text) {
  std::optional<int> pid;
  ForEachLine(text, [&pid](std::string_view line) {
    constexpr std::string_view kKey = "Pid:";
    if (!line.starts_with(kKey)) return true;
    pid = ParseDecimal<int>(Trim(line.substr(kKey.size())));
    return false;
  });
  return pid;
}

std::optional<std::string> ReadFileAt(int directory_fd, const char* name, size_t max_bytes, int* error) {
  auto fail = [error]() -> std::optional<std::string> {
    if (error != nullptr) *error = errno;
    return std::nullopt;
  };
  const UniqueFd file(::openat(directory_fd, name, O_RDONLY | O_CLOEXEC));
  if (!file) return fail();

  // /proc files report size 0 and are generated on read; one read returns at most a page
  // for many of them (cmdline, status of a process with many groups), so read until EOF.
  constexpr size_t kChunk = 4096;
  std::string content;
  while (content.size() < max_bytes) {
    const size_t used = content.size();
    content.resize(std::min(max_bytes, used + kChunk));
    const ssize_t count = ::read(file.get(), content.data() + used, content.size() - used);
    if (count < 0) {
      if (errno == EINTR) {
        content.resize(used);
        continue;
      }
      return fail();
    }
    content.resize(used + static_cast<size_t>(count));
    if (count == 0) break;
  }
  if (error != nullptr) *error = 0;
  return content;
}

std::optional<std::string> ReadRecordAt(int directory_fd, const char* name, size_t max_bytes, int* error) {
  const UniqueFd file(::openat(directory_fd, name, O_RDONLY | O_CLOEXEC));
  if (!file) {
    if (error != nullptr) *error = errno;
    return std::nullopt;
  }
  // On the stack: this runs for every exec of an unmatched process (its comm), and a
  // zero-filled page on the heap per call cost more than the read of a 16-byte comm.
  constexpr size_t kPage = 4096;
  char buffer[kPage];
  ssize_t count = 0;
  do {
    count = ::read(file.get(), buffer, std::min(max_bytes, kPage));
  } while (count < 0 && errno == EINTR);
  if (count < 0) {
    if (error != nullptr) *error = errno;
    return std::nullopt;
  }
  if (error != nullptr) *error = 0;
  return std::string(buffer, static_cast<size_t>(count));
}

std::optional<long> CountOpenDescriptorsFromSize() {
  struct stat directory {};
  if (::stat("/proc/self/fd", &directory) != 0 || directory.st_size <= 0) return std::nullopt;
  return static_cast<long>(directory.st_size);
}

std::optional<long> CountOpenDescriptorsByListing() {
  DIR* directory = ::opendir("/proc/self/fd");
  if (!directory) return std::nullopt;
  long count = 0;
  while (const dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(directory);
  return count - 1;  // not the directory stream's own descriptor
}

std::optional<std::string> ReadLinkAt(int directory_fd, const char* name, int* error) {
  // readlinkat truncates silently: a result that fills the buffer may be cut, so retry
  // with a larger one. /proc/PID/exe and fd links are bounded by PATH_MAX plus a suffix
  // such as " (deleted)"; the cap only stops a pathological loop.
  constexpr size_t kMaxLinkBytes = 1 << 20;
  std::string target(256, '\0');
  while (true) {
    const ssize_t count = ::readlinkat(directory_fd, name, target.data(), target.size());
    if (count < 0) {
      if (error != nullptr) *error = errno;
      return std::nullopt;
    }
    if (static_cast<size_t>(count) < target.size()) {
      target.resize(static_cast<size_t>(count));
      if (error != nullptr) *error = 0;
      return target;
    }
    if (target.size() >= kMaxLinkBytes) {
      if (error != nullptr) *error = ENAMETOOLONG;
      return std::nullopt;
    }
    target.resize(target.size() * 2);
  }
}

long ClockTicksPerSecond() {
  // USER_HZ is fixed at 100 on every Linux architecture the exporter targets; sysconf is
  // still asked so that an unusual build is not misread, and 100 covers its failure.
  static const long ticks = [] {
    const long value = ::sysconf(_SC_CLK_TCK);
    return value > 0 ? value : 100L;
  }();
  return ticks;
}

}  // namespace pidfd_exporter
