#include "pidfd.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>

#include "procfs.h"

namespace pidfd_exporter {
namespace {

// The first 64 bytes of struct pidfd_info (include/uapi/linux/pidfd.h, PIDFD_INFO_SIZE_VER0).
// Everything the exporter reads (ppid, credentials, exit_code) sits inside them, and the
// 64-byte ioctl number is the one every kernel since 6.13 accepts.
struct KernelPidfdInfo {
  uint64_t mask;
  uint64_t cgroupid;
  uint32_t pid;
  uint32_t tgid;
  uint32_t ppid;
  uint32_t ruid;
  uint32_t rgid;
  uint32_t euid;
  uint32_t egid;
  uint32_t suid;
  uint32_t sgid;
  uint32_t fsuid;
  uint32_t fsgid;
  int32_t exit_code;
};
static_assert(sizeof(KernelPidfdInfo) == 64, "PIDFD_INFO_SIZE_VER0 is 64 bytes");

constexpr unsigned long kPidfdGetInfo = _IOWR(0xFF, 11, KernelPidfdInfo);
constexpr long kPidfsMagic = 0x50494446;

}  // namespace

Pidfd Pidfd::Open(int pid, int* error) {
  const long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) {
    if (error) *error = errno;
    return Pidfd();
  }
  return Pidfd(UniqueFd(static_cast<int>(fd)));
}

uint64_t Pidfd::Inode() const {
  struct stat status {};
  if (fstat(fd_.get(), &status) != 0) return 0;
  return status.st_ino;
}

std::optional<PidfdInfo> Pidfd::GetInfo(uint64_t mask, int* error) const {
  KernelPidfdInfo raw{};
  raw.mask = mask;
  if (ioctl(fd_.get(), kPidfdGetInfo, &raw) != 0) {
    if (error) *error = errno;
    return std::nullopt;
  }
  PidfdInfo info;
  if (raw.mask & kInfoPid) {
    info.has_pid = true;
    info.pid = static_cast<int>(raw.pid);
    info.tgid = static_cast<int>(raw.tgid);
    info.parent_pid = static_cast<int>(raw.ppid);
  }
  if (raw.mask & kInfoCredentials) {
    info.has_credentials = true;
    info.real_uid = raw.ruid;
    info.effective_uid = raw.euid;
  }
  if (raw.mask & kInfoExit) {
    info.has_exit = true;
    info.exit_status = raw.exit_code;
  }
  return info;
}

namespace {
std::atomic<bool> g_reap_is_polled{false};
}  // namespace

void Pidfd::SetReapIsPolled(bool polled) {
  g_reap_is_polled.store(polled, std::memory_order_relaxed);
}

bool Pidfd::HasExited() const {
  pollfd request{fd_.get(), POLLIN, 0};
  return poll(&request, 1, 0) == 1;
}

bool Pidfd::IsReaped() const {
  if (g_reap_is_polled.load(std::memory_order_relaxed)) {
    // events = 0: POLLIN is set for a zombie already, only POLLHUP says "reaped" (6.9+).
    pollfd request{fd_.get(), 0, 0};
    return poll(&request, 1, 0) == 1 && (request.revents & POLLHUP);
  }
  // Before 6.9 there is no POLLHUP. Signal 0 through the pidfd succeeds while the process
  // has a task (a zombie too) and fails with ESRCH once it was reaped: one system call,
  // cheap enough for the reap checks of exporter/reap_watch.h. Without permission to signal
  // it (EPERM: another user's process and no CAP_KILL) fdinfo tells instead.
  if (syscall(SYS_pidfd_send_signal, fd_.get(), 0, nullptr, 0) == 0) return false;
  if (errno == ESRCH) return true;
  return ReapedPerFdinfo();
}

bool Pidfd::ReapedPerFdinfo() const {
  // "Pid: -1" once the struct pid has no task (5.10+; the signal above covers 5.3+).
  const std::string name = "/proc/self/fdinfo/" + std::to_string(fd_.get());
  const auto text = ReadRecordAt(AT_FDCWD, name.c_str(), 4096);
  if (!text) return false;
  const auto pid = ParsePidfdFdinfoPid(*text);
  return pid && *pid == -1;
}

KernelFeatures ProbeKernelFeatures() {
  KernelFeatures features;
  int ready_pipe[2];
  if (pipe2(ready_pipe, O_CLOEXEC) != 0) return features;
  const pid_t child = fork();
  if (child < 0) {
    close(ready_pipe[0]);
    close(ready_pipe[1]);
    return features;
  }
  if (child == 0) {
    // Wait until the parent holds a pidfd, so the probe sees exit and reap as two steps.
    char byte;
    close(ready_pipe[1]);
    (void)!read(ready_pipe[0], &byte, 1);
    _exit(5);
  }
  close(ready_pipe[0]);
  int error = 0;
  Pidfd pidfd = Pidfd::Open(child, &error);
  features.pidfd_open = pidfd.valid();
  if (pidfd.valid()) {
    struct statfs filesystem {};
    features.pidfs_identity = fstatfs(pidfd.fd(), &filesystem) == 0 && filesystem.f_type == kPidfsMagic;
    const auto live_info = pidfd.GetInfo(Pidfd::kInfoPid);
    features.get_info = live_info && live_info->has_pid && live_info->pid == child;
  }
  close(ready_pipe[1]);  // lets the child exit
  if (pidfd.valid()) {
    pollfd exited{pidfd.fd(), POLLIN, 0};
    (void)poll(&exited, 1, 5000);
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (pidfd.valid()) {
    pollfd reaped{pidfd.fd(), 0, 0};
    features.reap_events = poll(&reaped, 1, 1000) == 1 && (reaped.revents & POLLHUP);
    const auto exit_info = pidfd.GetInfo(Pidfd::kInfoExit);
    features.exit_status = exit_info && exit_info->has_exit && exit_info->exit_status == status;
  }
  return features;
}

bool DisableKernelFeatures(const std::string& names, KernelFeatures* features, std::string* error) {
  const std::pair<const char*, bool KernelFeatures::*> switchable[] = {
      {"reap_events", &KernelFeatures::reap_events},
      {"pidfs_identity", &KernelFeatures::pidfs_identity},
      {"get_info", &KernelFeatures::get_info},
      {"exit_status", &KernelFeatures::exit_status},
      {"oom_kernel_log", &KernelFeatures::oom_kernel_log},
      {"oom_cgroup_counter", &KernelFeatures::oom_cgroup_counter},
      {"exit_resources", &KernelFeatures::exit_resources},
      {"final_runtime", &KernelFeatures::final_runtime}};
  size_t begin = 0;
  while (begin < names.size()) {
    size_t end = names.find(',', begin);
    if (end == std::string::npos) end = names.size();
    const std::string name = names.substr(begin, end - begin);
    begin = end + 1;
    if (name.empty()) continue;
    bool known = false;
    for (const auto& [feature_name, member] : switchable) {
      if (name == feature_name) {
        features->*member = false;
        known = true;
      }
    }
    if (!known) {
      *error = "unknown kernel feature \"" + name +
               "\" (known: reap_events, pidfs_identity, get_info, exit_status, oom_kernel_log, "
               "oom_cgroup_counter, exit_resources, final_runtime)";
      return false;
    }
  }
  return true;
}

std::string SignalName(int signal_number) {
  const char* abbreviation = sigabbrev_np(signal_number);
  if (abbreviation) return std::string("SIG") + abbreviation;
  return "SIG" + std::to_string(signal_number);
}

ExitReason DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return {"exited", std::to_string(WEXITSTATUS(wait_status))};
  if (WIFSIGNALED(wait_status)) {
    return {WCOREDUMP(wait_status) ? "dumped" : "killed", SignalName(WTERMSIG(wait_status))};
  }
  return {"unknown", ""};
}

}  // namespace pidfd_exporter
