// ProcessReader: what /proc says about a PID, and whether that is what a pidfd refers to. It
// owns the procfs root descriptor and the uid → username cache; it reads, it confirms, and it
// decides one thing only: whether a PID is a user-space process (kernel threads never are
// watched, whichever path — scan, fork, exec — met them). Which set a process belongs to is the
// SetAssigner's question. Event-loop thread only.
//
// Why reads are confirmed (docs/architecture.md, "PID reuse"): a read by PID may reach the
// PID's next process once the one we mean was reaped. A read through a pinned /proc/PID
// directory fails with ESRCH once that process is gone, and a pidfd that is not reaped still
// holds its PID, so either check ties the text to the process.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pidfd.h"
#include "process_set.h"
#include "procfs.h"
#include "unique_fd.h"

namespace pidfd_exporter {

// One read of a process through its pinned /proc/PID directory.
struct ProcessRead {
  UniqueFd directory;
  ProcessStat stat;
  ProcessAttributes attributes;  // the fields the `needs` mask asked for, plus pid, parent, start, comm
};

// When the pidfd was opened relative to the read: that decides which check proves identity.
enum class PidfdOpened { kBeforeRead, kAfterRead };

class ProcessReader {
 public:
  // Counts a failed read by error operation ("emfile", "proc_read"): the only place that
  // turns read errors into pidfd_exporter_errors_total.
  using ErrorCounter = std::function<void(std::string_view operation)>;

  // nullptr with *error when the procfs root cannot be opened.
  static std::unique_ptr<ProcessReader> Open(const std::string& procfs_root, ErrorCounter count_error,
                                             std::string* error);

  // Kernel threads (PF_KTHREAD) are never watched; everything else is a user-space process.
  static bool IsUserSpace(const ProcessStat& stat);

  // The PIDs listed in the procfs root, in directory order; nullopt (counted) when unlistable.
  std::optional<std::vector<int>> ListPids();
  // stat by PID, unconfirmed (the scan's cheap first pass); nullopt for gone processes and
  // kernel threads.
  std::optional<ProcessStat> ReadStat(int pid);
  // /proc/PID/comm by PID, unconfirmed.
  std::optional<std::string> ReadComm(int pid);
  // The name a child forked by `parent_pid` inherits (its parent's), "" when the parent is
  // gone; nullopt when the child is a kernel thread: kthreadd (PID 2) and every other kernel
  // thread fork kernel threads. (A user-mode helper a kernel thread starts becomes a user
  // process at its exec, which arrives as its own event.) For parents the caller does not know.
  std::optional<std::string> NameForkedFrom(int parent_pid);
  // Pins /proc/PID, reads stat and the attributes `needs` asks for (AttributeNeed bits).
  // nullopt when gone, a kernel thread, or not the process started at `expected_start_ticks`.
  std::optional<ProcessRead> Read(int pid, unsigned needs, std::optional<uint64_t> expected_start_ticks);
  // True when `read` and `pidfd` are the same process: a pidfd opened before the read must
  // still not be reaped; one opened after it must find the pinned directory still answering
  // with the same start time.
  bool Confirm(const ProcessRead& read, const Pidfd& pidfd, PidfdOpened opened);
  // stat of the process `pidfd` refers to (PID `pid`, started at `start_ticks`, 0 when unknown),
  // read by PID and confirmed; nullopt once it was reaped.
  std::optional<ProcessStat> ReadConfirmedStat(int pid, uint64_t start_ticks, const Pidfd& pidfd);
  // Whether `parent_pid` ignores SIGCHLD (SigIgn in status): its children are released at exit.
  // Parents fork many children, so answers are cached until ForgetDispositions().
  bool IgnoresChildren(int parent_pid);
  // Dispositions change and PIDs are reused: the scan drops the cache after each pass.
  void ForgetDispositions() { ignores_children_.clear(); }

 private:
  ProcessReader(UniqueFd procfs, ErrorCounter count_error)
      : procfs_(std::move(procfs)), count_error_(std::move(count_error)) {}
  bool ReadAttributes(int directory_fd, unsigned needs, ProcessAttributes* attributes);
  const std::string& Username(uint32_t uid);
  void CountFailure(int error);

  UniqueFd procfs_;
  ErrorCounter count_error_;
  std::unordered_map<uint32_t, std::string> usernames_;
  std::unordered_map<int, bool> ignores_children_;  // by parent pid
};

}  // namespace pidfd_exporter
