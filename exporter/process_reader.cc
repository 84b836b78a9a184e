#include "process_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace pidfd_exporter {
namespace {

constexpr int kKernelThreadDaemonPid = 2;  // kthreadd: the parent of every kernel thread

// Parses a directory entry name of /proc as a PID; 0 for anything else.
int ParsePidName(const char* name) {
  int pid = 0;
  for (const char* c = name; *c; ++c) {
    if (*c < '0' || *c > '9' || pid > 100000000) return 0;
    pid = pid * 10 + (*c - '0');
  }
  return pid;
}

bool IsOutOfDescriptors(int error) {
  return error == EMFILE || error == ENFILE;
}

}  // namespace

std::unique_ptr<ProcessReader> ProcessReader::Open(const std::string& procfs_root, ErrorCounter count_error,
                                                   std::string* error) {
  UniqueFd procfs(open(procfs_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!procfs) {
    *error = "open " + procfs_root + ": " + strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<ProcessReader>(new ProcessReader(std::move(procfs), std::move(count_error)));
}

bool ProcessReader::IsUserSpace(const ProcessStat& stat) {
  return (stat.flags & kProcessFlagKernelThread) == 0;
}

std::optional<std::string> ProcessReader::NameForkedFrom(int parent_pid) {
  if (parent_pid == kKernelThreadDaemonPid) return std::nullopt;
  const std::string path = std::to_string(parent_pid) + "/stat";
  int error = 0;
  const auto text = ReadRecordAt(procfs_.get(), path.c_str(), 4096, &error);
  if (!text) CountFailure(error);
  const auto stat = text ? ParseStat(*text) : std::nullopt;
  if (!stat) return std::string();
  if (!IsUserSpace(*stat)) return std::nullopt;
  return stat->comm;
}

void ProcessReader::CountFailure(int error) {
  // A vanished process is the normal case ("PIDs can vanish between getting the list and
  // getting stats"); running out of descriptors is not, and must show.
  if (IsOutOfDescriptors(error)) count_error_("emfile");
}

std::optional<std::vector<int>> ProcessReader::ListPids() {
  const int directory_fd = openat(procfs_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* directory = directory_fd >= 0 ? fdopendir(directory_fd) : nullptr;
  if (!directory) {
    const int error = errno;
    if (directory_fd >= 0) close(directory_fd);
    count_error_(IsOutOfDescriptors(error) ? "emfile" : "proc_read");
    return std::nullopt;
  }
  std::vector<int> pids;
  while (const dirent* entry = readdir(directory)) {
    const int pid = ParsePidName(entry->d_name);
    if (pid > 0) pids.push_back(pid);
  }
  closedir(directory);
  return pids;
}

std::optional<ProcessStat> ProcessReader::ReadStat(int pid) {
  const std::string path = std::to_string(pid) + "/stat";
  int error = 0;
  const auto text = ReadRecordAt(procfs_.get(), path.c_str(), 4096, &error);
  if (!text) {
    CountFailure(error);
    return std::nullopt;
  }
  auto stat = ParseStat(*text);
  if (!stat || !IsUserSpace(*stat)) return std::nullopt;
  return stat;
}

std::optional<std::string> ProcessReader::ReadComm(int pid) {
  const std::string path = std::to_string(pid) + "/comm";
  int error = 0;
  auto text = ReadRecordAt(procfs_.get(), path.c_str(), 256, &error);
  if (!text) {
    CountFailure(error);
    return std::nullopt;
  }
  return ParseComm(*text);
}

std::optional<ProcessRead> ProcessReader::Read(int pid, unsigned needs,
                                               std::optional<uint64_t> expected_start_ticks) {
  ProcessRead read;
  const std::string pid_name = std::to_string(pid);
  read.directory = UniqueFd(openat(procfs_.get(), pid_name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!read.directory) {
    CountFailure(errno);
    return std::nullopt;
  }
  int error = 0;
  auto text = ReadRecordAt(read.directory.get(), "stat", 4096, &error);
  auto stat = text ? ParseStat(*text) : std::nullopt;
  if (!text) CountFailure(error);
  if (!stat || !IsUserSpace(*stat)) return std::nullopt;
  if (expected_start_ticks && *expected_start_ticks != 0 && stat->start_time_ticks != *expected_start_ticks)
    return std::nullopt;
  read.stat = std::move(*stat);
  read.attributes.pid = read.stat.pid;
  read.attributes.parent_pid = read.stat.parent_pid;
  read.attributes.start_time_ticks = read.stat.start_time_ticks;
  read.attributes.comm = read.stat.comm;
  if (!ReadAttributes(read.directory.get(), needs, &read.attributes)) return std::nullopt;
  return read;
}

bool ProcessReader::Confirm(const ProcessRead& read, const Pidfd& pidfd, PidfdOpened opened) {
  if (opened == PidfdOpened::kBeforeRead) return !pidfd.IsReaped();
  int error = 0;
  auto text = ReadRecordAt(read.directory.get(), "stat", 4096, &error);
  if (!text) {
    CountFailure(error);
    return false;
  }
  auto stat = ParseStat(*text);
  return stat && stat->start_time_ticks == read.stat.start_time_ticks;
}

std::optional<ProcessStat> ProcessReader::ReadConfirmedStat(int pid, uint64_t start_ticks,
                                                            const Pidfd& pidfd) {
  const std::string path = std::to_string(pid) + "/stat";
  auto text = ReadRecordAt(procfs_.get(), path.c_str(), 4096);
  auto stat = text ? ParseStat(*text) : std::nullopt;
  // Read by PID: the pidfd still not reaped afterwards means the PID was still its own.
  if (!stat || pidfd.IsReaped()) return std::nullopt;
  if (start_ticks != 0 && stat->start_time_ticks != start_ticks) return std::nullopt;
  return stat;
}

bool ProcessReader::ReadAttributes(int directory_fd, unsigned needs, ProcessAttributes* attributes) {
  int error = 0;
  if (needs & kNeedExe) {
    // Unreadable for other users' processes without CAP_SYS_PTRACE, and for zombies:
    // an empty exe then simply does not match.
    if (auto target = ReadLinkAt(directory_fd, "exe", &error))
      attributes->exe_path = std::move(*target);
    else if (error == ESRCH)
      return false;
  }
  if (needs & kNeedCmdline) {
    auto text = ReadFileAt(directory_fd, "cmdline", 65536, &error);
    if (text)
      attributes->argv = ParseCmdline(*text);
    else if (error == ESRCH || error == ENOENT)
      return false;
  }
  if (needs & kNeedUser) {
    auto text = ReadFileAt(directory_fd, "status", 16384, &error);
    auto status = text ? ParseStatus(*text) : std::nullopt;
    if (!status) return false;
    attributes->effective_uid = status->effective_uid;
    attributes->username = Username(status->effective_uid);
  }
  if (needs & kNeedCgroup) {
    auto text = ReadFileAt(directory_fd, "cgroup", 65536, &error);
    if (!text) return false;
    if (auto path = ParseCgroup(*text)) attributes->cgroup = std::move(*path);
  }
  return true;
}

bool ProcessReader::IgnoresChildren(int parent_pid) {
  if (parent_pid <= 0) return false;
  if (auto cached = ignores_children_.find(parent_pid); cached != ignores_children_.end())
    return cached->second;
  bool ignores = false;
  const std::string path = std::to_string(parent_pid) + "/status";
  if (auto text = ReadFileAt(procfs_.get(), path.c_str(), 16384)) {
    const size_t line = text->find("\nSigIgn:");
    if (line != std::string::npos) {
      const unsigned long long ignored = std::strtoull(text->c_str() + line + 9, nullptr, 16);
      ignores = (ignored >> (SIGCHLD - 1)) & 1;
    }
  }
  ignores_children_[parent_pid] = ignores;
  return ignores;
}

const std::string& ProcessReader::Username(uint32_t uid) {
  auto found = usernames_.find(uid);
  if (found != usernames_.end()) return found->second;
  std::string name = std::to_string(uid);
  passwd entry{};
  passwd* result = nullptr;
  char buffer[4096];
  if (getpwuid_r(uid, &entry, buffer, sizeof buffer, &result) == 0 && result) name = result->pw_name;
  return usernames_.emplace(uid, std::move(name)).first->second;
}

}  // namespace pidfd_exporter
