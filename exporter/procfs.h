// procfs: parsing of /proc/PID/{stat,status,cmdline,cgroup,comm} and pidfd fdinfo as pure
// functions over text, plus thin readers that fetch that text relative to a /proc/PID
// directory fd. Stateless: any thread may call it. It never decides what a process means
// (that is the tracker's job) and never throws: unparsable text yields std::nullopt.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pidfd_exporter {

// /proc/PID/stat. Field numbers are those of proc(5).
struct ProcessStat {
  int pid = 0;                    // field 1
  std::string comm;               // field 2, without the parentheses; may hold any byte but NUL
  char state = '?';               // field 3
  int parent_pid = 0;             // field 4
  uint64_t flags = 0;             // field 9 (PF_KTHREAD = 0x00200000 marks kernel threads)
  long thread_count = 0;          // field 20
  uint64_t start_time_ticks = 0;  // field 22, clock ticks since boot
  bool has_exit_code = false;     // field 52 present (Linux >= 3.5)
  int exit_code = 0;              // field 52: raw wait status while a zombie; 0 when hidden
};
// Handles a comm holding spaces, parentheses and newlines: the comm ends at the LAST ')'.
std::optional<ProcessStat> ParseStat(std::string_view text);

constexpr uint64_t kProcessFlagKernelThread = 0x00200000;

// /proc/PID/status, the fields the exporter uses.
struct ProcessStatus {
  std::string name;  // with the kernel's "\n" and "\\" escapes undone: the same bytes as comm
  char state = '?';
  int parent_pid = 0;
  int tracer_pid = 0;
  uint32_t real_uid = 0;
  uint32_t effective_uid = 0;
  int thread_count = 0;
};
std::optional<ProcessStatus> ParseStatus(std::string_view text);

// /proc/PID/cmdline: NUL-separated arguments. Trailing NULs do not make empty arguments
// (setproctitle pads with them; prometheus/procfs trims them too); a process that rewrote
// its argv into one space-separated string yields one argument (process-exporter does the
// same).
std::vector<std::string> ParseCmdline(std::string_view text);

// /proc/PID/cgroup: the cgroup v2 path (the "0::" line); on a v1-only host the path of
// the name=systemd hierarchy (it holds the unit path), else of the first hierarchy
// listed. nullopt when there is no well-formed line at all.
std::optional<std::string> ParseCgroup(std::string_view text);

// /proc/PID/comm: the name without the trailing newline.
std::string ParseComm(std::string_view text);

// A pidfile: a decimal PID, surrounding whitespace allowed. nullopt for anything else
// (empty, negative, zero, trailing garbage).
std::optional<int> ParsePidfile(std::string_view text);

// /proc/self/fdinfo/<pidfd>: the "Pid:" line; -1 once the process was reaped, 0 when it
// lives in another PID namespace. nullopt when the line is missing.
std::optional<int> ParsePidfdFdinfoPid(std::string_view text);

// The whole text of `name` relative to `directory_fd` (a /proc/PID dirfd, or AT_FDCWD with
// an absolute path), at most `max_bytes`. On failure returns nullopt and sets *error to
// errno (ESRCH or ENOENT mean the process is gone).
std::optional<std::string> ReadFileAt(int directory_fd, const char* name, size_t max_bytes = 65536,
                                      int* error = nullptr);
// The same for a file the kernel generates whole at its first read and that is known to be
// shorter than a page (a seq_file "single" record: /proc/PID/stat and comm, a pidfd's
// fdinfo; not status, whose groups can fill pages): a read that returns less than it asked
// for has returned all of it, so one read() does what ReadFileAt needs two for (the second
// to see EOF). `max_bytes` above 4096 is clamped to 4096; longer text is cut there.
std::optional<std::string> ReadRecordAt(int directory_fd, const char* name, size_t max_bytes,
                                        int* error = nullptr);
// The calling process's open descriptors, from the size stat() reports for /proc/self/fd
// (Linux 6.2+; one system call whatever the count). nullopt before 6.2, where the size is 0.
std::optional<long> CountOpenDescriptorsFromSize();
// The same by listing /proc/self/fd (~1 us per descriptor), not counting the listing's own
// descriptor. nullopt when the directory cannot be opened (out of descriptors).
std::optional<long> CountOpenDescriptorsByListing();
// readlinkat(directory_fd, name): the target, or nullopt (errno in *error).
std::optional<std::string> ReadLinkAt(int directory_fd, const char* name, int* error = nullptr);

// Clock ticks per second for start_time_ticks (sysconf(_SC_CLK_TCK), read once).
long ClockTicksPerSecond();

}  // namespace pidfd_exporter
