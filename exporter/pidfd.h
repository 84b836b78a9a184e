// Pidfd: one RAII pidfd (pidfd_open(2)), what the kernel tells about it (PIDFD_GET_INFO,
// with our own struct definition because Debian 12's headers lack it), its identity (the
// pidfs inode, unique per boot since Linux 6.9), and a probe of which of these the running
// kernel offers. Owned by the event-loop thread; the probe runs once at start-up, before
// any other thread exists, because it forks.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "unique_fd.h"

namespace pidfd_exporter {

// What PIDFD_GET_INFO returned; a field is valid only when its has_* flag is set.
struct PidfdInfo {
  bool has_pid = false;  // PIDFD_INFO_PID: pid, tgid, ppid (6.13+)
  int pid = 0;
  int tgid = 0;
  int parent_pid = 0;
  bool has_credentials = false;  // PIDFD_INFO_CREDS
  uint32_t real_uid = 0;
  uint32_t effective_uid = 0;
  bool has_exit = false;  // PIDFD_INFO_EXIT (6.15+, only after the reap)
  int exit_status = 0;    // raw wait status: WIFEXITED / WTERMSIG / WCOREDUMP apply
};

// Which kernel mechanisms this machine offers, measured by ProbeKernelFeatures().
struct KernelFeatures {
  bool pidfd_open = false;      // 5.3+: exits are events
  bool reap_events = false;     // 6.9+: EPOLLHUP when the parent reaps
  bool get_info = false;        // 6.13+: PIDFD_GET_INFO (parent pid without reading /proc)
  bool exit_status = false;     // 6.15+: PIDFD_INFO_EXIT after the reap, for non-children
  bool pidfs_identity = false;  // 6.9+: fstat(pidfd).st_ino is unique per process and boot
  bool proc_connector = false;  // set by main once the connector opened
  bool taskstats = false;       // set by main once the taskstats listener registered
  // OOM attribution sources (exporter/oom_attribution.h) and exit resources: true from the
  // probe ("may be tried"), cleared by --debug.disable-kernel-features or by main when the
  // source cannot be opened.
  bool oom_kernel_log = true;      // /dev/kmsg readable (root or CAP_SYSLOG)
  bool oom_cgroup_counter = true;  // a memory cgroup hierarchy with oom_kill counters
  bool exit_resources = true;      // taskstats records are read (needs taskstats)
  // The eBPF probe of exporter/final_runtime_probe.h: the CPU a process used after its exit
  // record (needs exit_resources, CAP_BPF and CAP_PERFMON, kernel BTF, Linux 5.8+).
  bool final_runtime = true;
};

class Pidfd {
 public:
  Pidfd() = default;
  // pidfd_open(pid, 0). On failure the result is invalid and *error holds errno: ESRCH
  // (reaped), ENOENT/EINVAL (not a thread-group leader, or gone on older kernels),
  // EMFILE/ENFILE (out of file descriptors), ENOSYS (kernel < 5.3).
  static Pidfd Open(int pid, int* error);

  bool valid() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  void Close() { fd_.Reset(); }

  // The pidfs inode number (process identity); 0 when fstat fails.
  uint64_t Inode() const;
  // PIDFD_GET_INFO for `mask` bits (PIDFD_INFO_* below); nullopt with *error on failure
  // (ENOTTY before 6.13, ESRCH after the reap unless the EXIT bit is asked for).
  std::optional<PidfdInfo> GetInfo(uint64_t mask, int* error = nullptr) const;
  // True once the parent reaped the process: poll() with no requested events reports
  // POLLHUP (6.9+). On older kernels (SetReapIsPolled(false)) pidfd_send_signal(fd, 0)
  // fails with ESRCH; where that is not permitted, /proc/self/fdinfo says "Pid: -1".
  bool IsReaped() const;
  // True once the whole thread group exited (the pidfd is readable): a zombie or reaped.
  bool HasExited() const;
  // The fdinfo way alone (one open, read and close).
  bool ReapedPerFdinfo() const;
  // Set once at start-up from ProbeKernelFeatures().reap_events: whether poll() tells a
  // reaped process apart (6.9+); otherwise IsReaped() reads fdinfo alone, as it must
  // before 6.9 and as --debug.disable-kernel-features=reap_events makes it on newer kernels.
  static void SetReapIsPolled(bool polled);

  static constexpr uint64_t kInfoPid = 1ull << 0;
  static constexpr uint64_t kInfoCredentials = 1ull << 1;
  static constexpr uint64_t kInfoExit = 1ull << 3;

 private:
  explicit Pidfd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// Forks one short-lived child and watches it exit and be reaped through a pidfd to learn
// what this kernel supports. Call before any thread is started.
KernelFeatures ProbeKernelFeatures();

// The hidden --debug.disable-kernel-features switch: clears the named features in
// *features so the fallbacks of older kernels run on a new one (tests/vm/ covers them
// on Linux 6.18 between runs on the real 6.1). `names` is a comma-separated list of
// reap_events, pidfs_identity, get_info, exit_status, oom_kernel_log, oom_cgroup_counter,
// exit_resources, final_runtime; empty clears nothing. False with
// *error naming the first unknown name.
bool DisableKernelFeatures(const std::string& names, KernelFeatures* features, std::string* error);

// "exited"/"killed"/"dumped" and "0".."255" or "SIGKILL" for a raw wait status.
struct ExitReason {
  const char* reason;
  std::string code;
};
ExitReason DescribeWaitStatus(int wait_status);
// "SIGSEGV" for 11; "SIG<n>" for numbers without a name (real-time signals).
std::string SignalName(int signal_number);

}  // namespace pidfd_exporter
