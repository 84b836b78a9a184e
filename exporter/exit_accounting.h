// ExitAccounting: the only writer of how processes end — exits (reason and code, oom_killed
// when exporter/oom_attribution.h says so), what exited processes used (CPU, peak memory, I/O),
// reap latency, lifetime, missed and unattributed exits, the zombie gauges and the zombie board
// of the status page. The tracker reports facts (a zombie appeared, a process was reaped, an
// exit was seen with no pidfd); this unit decides what they mean for the metrics: which exit
// status wins among its sources, when a reap latency is 0, which clock a time is shown in.
// Event-loop thread, except Zombies(), which HTTP threads may call.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "exit_resources.h"
#include "metrics.h"
#include "status_page.h"

namespace pidfd_exporter {

// When a process exited, in CLOCK_MONOTONIC: one clock for one instant, converted to Unix or
// boot time only where it is shown.
struct ExitStamp {
  int64_t monotonic_ns = 0;
  // False for a process first seen as a zombie: the stamp is when we first saw it, a lower
  // bound on its age, and it yields no reap latency and no lifetime.
  bool observed = true;
};

// The sources of a wait status. DecideWaitStatus takes the first one present, in this order:
// 1. PIDFD_INFO_EXIT (6.15+): the kernel's own copy, readable after the reap by anyone;
// 2. the proc connector's exit event (root): the same raw status, sent at the exit;
// 3. /proc/PID/stat field 52 while a zombie (root or CAP_SYS_PTRACE; 0 for others).
// All three carry the same value when present; the order only ranks how directly they
// come from the kernel. None: the exit counts with reason="unknown".
struct ExitStatusSources {
  std::optional<uint32_t> pidfd_info;
  std::optional<uint32_t> connector;
  std::optional<uint32_t> proc_stat;
};
std::optional<uint32_t> DecideWaitStatus(const ExitStatusSources& sources);

// What the board and the zombie gauges show of one zombie.
struct ZombieView {
  size_t slot = 0;
  int pid = 0;
  std::string comm;
  int parent_pid = 0;  // 0 when unknown
  std::string parent_label;
  ExitStamp exit;
};

// What is known when a watched process's reap was seen.
struct ReapFacts {
  size_t slot = 0;
  ExitStamp exit;
  int64_t reaped_monotonic_ns = 0;
  bool exit_and_reap_seen_together = false;  // one pidfd wake-up reported both
  bool exit_stamped_by_kernel = false;       // the exit stamp is the connector's in-kernel time
  bool released_at_exit = false;             // the connector's exit event named no parent
  bool parent_ignores_children = false;      // SIGCHLD ignored: the kernel reaps at the exit
  std::optional<int64_t> fork_monotonic_ns;  // the connector's fork stamp
  uint64_t start_time_ticks = 0;             // /proc stat field 22; 0 when unknown
};

class ExitAccounting {
 public:
  explicit ExitAccounting(Metrics* metrics) : metrics_(metrics) {}

  // --- event-loop thread ---
  // A watched member became a zombie (or moved: the old entry under `key` is replaced).
  void ZombieAppeared(uint64_t key, ZombieView zombie);
  // The zombie under `key` is no longer one (reaped, or it left its set). No-op otherwise.
  void ZombieGone(uint64_t key);
  // The zombie's parent changed (its parent exited and it was re-parented).
  void ZombieReparented(uint64_t key, int parent_pid, std::string parent_label);
  bool IsZombie(uint64_t key) const { return zombies_.count(key) > 0; }
  // The exit of a watched member, once: reason and code from `wait_status` (unknown when none).
  // `oom_killed`: the OOM killer sent its SIGKILL (reason "oom_killed"); ignored unless the
  // status is a SIGKILL.
  void ExitCounted(size_t slot, std::optional<uint32_t> wait_status, bool oom_killed = false);
  // What an exited member used (exporter/exit_resources.h), once per process.
  void ExitResourcesCounted(size_t slot, const ProcessResources& resources);
  // The CPU a counted process used after its exit record (exporter/final_runtime_probe.h).
  void ExitFinalCpuCounted(size_t slot, const FinalCpu& cpu);
  // Reap latency and lifetime of a reaped member whose exit was observed.
  void Reaped(const ReapFacts& facts);
  // A member that ended before any pidfd could be opened: counted from its exit event alone.
  void ExitWithoutPidfd(size_t slot, uint32_t wait_status);
  // An exit that cannot be placed in any set (it exec'd and its new name was never read).
  void UnattributedExit();

  // --- any thread ---
  // The current zombies, oldest first.
  std::vector<StatusZombie> Zombies() const;

  // A wait status of a SIGKILL (no core dump): the only end the OOM killer gives.
  static bool IsSigkill(uint32_t wait_status);

  // The reap latency a ReapFacts yields: 0 when the kernel released the process at its exit.
  static double ReapLatencySeconds(const ReapFacts& facts);

 private:
  struct Published {
    ZombieView view;
    double exit_unix_seconds = 0;  // as shown: the gauge must be handed back the same value
  };
  void PublishOldest(size_t slot);

  Metrics* metrics_;
  std::unordered_map<uint64_t, Published> zombies_;     // by process key
  std::map<size_t, std::multiset<double>> exit_times_;  // by slot: the oldest zombie per set
  mutable std::mutex board_mutex_;
  std::map<uint64_t, StatusZombie> board_;  // by key; guarded by board_mutex_
};

}  // namespace pidfd_exporter
