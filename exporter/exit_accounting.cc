#include "exit_accounting.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include <algorithm>

#include "log.h"
#include "pidfd.h"
#include "procfs.h"

namespace pidfd_exporter {
namespace {

int64_t NowNanoseconds(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

// A CLOCK_MONOTONIC instant on another clock (Unix or boot time), as seconds: the same
// distance before now. CLOCK_MONOTONIC does not count suspend, CLOCK_BOOTTIME does, and the
// wall clock may be stepped: instants are kept on the monotonic clock and converted here.
double SecondsOn(clockid_t clock, int64_t monotonic_ns) {
  const int64_t ago = NowNanoseconds(CLOCK_MONOTONIC) - monotonic_ns;
  return static_cast<double>(NowNanoseconds(clock) - ago) / 1e9;
}

}  // namespace

std::optional<uint32_t> DecideWaitStatus(const ExitStatusSources& sources) {
  if (sources.pidfd_info) return sources.pidfd_info;
  if (sources.connector) return sources.connector;
  return sources.proc_stat;
}

void ExitAccounting::ZombieAppeared(uint64_t key, ZombieView zombie) {
  ZombieGone(key);
  Published published;
  published.exit_unix_seconds = SecondsOn(CLOCK_REALTIME, zombie.exit.monotonic_ns);
  published.view = std::move(zombie);
  const ZombieView& view = published.view;
  metrics_->ZombieAdded(view.slot, view.parent_label);
  exit_times_[view.slot].insert(published.exit_unix_seconds);
  PublishOldest(view.slot);

  StatusZombie row;
  row.set = metrics_->SetName(view.slot);
  row.pid = view.pid;
  row.comm = view.comm;
  row.parent_pid = view.parent_pid;
  row.parent_comm = view.parent_label;
  row.exit_unix_seconds = published.exit_unix_seconds;
  row.exit_time_known = view.exit.observed;
  {
    std::lock_guard<std::mutex> lock(board_mutex_);
    board_[key] = std::move(row);
  }
  zombies_.emplace(key, std::move(published));
}

void ExitAccounting::ZombieGone(uint64_t key) {
  auto found = zombies_.find(key);
  if (found == zombies_.end()) return;
  const Published& published = found->second;
  const size_t slot = published.view.slot;
  metrics_->ZombieRemoved(slot, published.view.parent_label);
  if (auto times = exit_times_.find(slot); times != exit_times_.end()) {
    if (auto time = times->second.find(published.exit_unix_seconds); time != times->second.end())
      times->second.erase(time);
    if (times->second.empty()) exit_times_.erase(times);
  }
  zombies_.erase(found);
  PublishOldest(slot);
  std::lock_guard<std::mutex> lock(board_mutex_);
  board_.erase(key);
}

void ExitAccounting::ZombieReparented(uint64_t key, int parent_pid, std::string parent_label) {
  auto found = zombies_.find(key);
  if (found == zombies_.end()) return;
  ZombieView& view = found->second.view;
  if (view.parent_pid == parent_pid && view.parent_label == parent_label) return;
  metrics_->ZombieParentChanged(view.slot, view.parent_label, parent_label);
  view.parent_pid = parent_pid;
  view.parent_label = std::move(parent_label);
  std::lock_guard<std::mutex> lock(board_mutex_);
  if (auto row = board_.find(key); row != board_.end()) {
    row->second.parent_pid = view.parent_pid;
    row->second.parent_comm = view.parent_label;
  }
}

void ExitAccounting::PublishOldest(size_t slot) {
  auto times = exit_times_.find(slot);
  metrics_->SetOldestZombie(
      slot, times == exit_times_.end() ? std::nullopt : std::optional<double>(*times->second.begin()));
}

void ExitAccounting::ExitCounted(size_t slot, std::optional<uint32_t> wait_status, bool oom_killed) {
  const double now = SecondsOn(CLOCK_REALTIME, NowNanoseconds(CLOCK_MONOTONIC));
  if (!wait_status) {
    metrics_->ExitCounted(slot, "unknown", "", now);
    return;
  }
  const ExitReason reason = DescribeWaitStatus(static_cast<int>(*wait_status));
  // Only a SIGKILL can be the OOM killer's (a core dump or any other signal is not).
  const bool by_oom_killer = oom_killed && IsSigkill(*wait_status);
  metrics_->ExitCounted(slot, by_oom_killer ? "oom_killed" : reason.reason, reason.code, now);
}

bool ExitAccounting::IsSigkill(uint32_t wait_status) {
  const int status = static_cast<int>(wait_status);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && !WCOREDUMP(status);
}

void ExitAccounting::ExitResourcesCounted(size_t slot, const ProcessResources& resources) {
  metrics_->ExitResourcesObserved(slot, resources.user_seconds, resources.system_seconds,
                                  resources.peak_rss_bytes, resources.read_bytes, resources.write_bytes);
}

void ExitAccounting::ExitFinalCpuCounted(size_t slot, const FinalCpu& cpu) {
  metrics_->ExitCpuAdded(slot, cpu.user_seconds, cpu.system_seconds);
}

double ExitAccounting::ReapLatencySeconds(const ReapFacts& facts) {
  // Exit and reap in one wake-up (auto-reaping parents, SA_NOCLDWAIT): nothing tells them
  // apart, and the kernel does both in one go for such parents: latency 0. With the
  // connector's in-kernel exit stamp the reap is still seen at the same moment as ever, so
  // the latency is measured as for separate events: for an auto-reaping parent that is our
  // few microseconds of processing.
  const bool released = (facts.exit_and_reap_seen_together && !facts.exit_stamped_by_kernel) ||
                        facts.released_at_exit || facts.parent_ignores_children;
  if (released) return 0.0;
  return static_cast<double>(facts.reaped_monotonic_ns - facts.exit.monotonic_ns) / 1e9;
}

void ExitAccounting::Reaped(const ReapFacts& facts) {
  if (!facts.exit.observed) return;  // first sight is no exit time
  const double latency = ReapLatencySeconds(facts);
  metrics_->ReapLatencyObserved(facts.slot, latency);
  // Checked first: the fields are built before LogDebug looks at the level, and formatting a
  // double on every reap showed in profiles of exec storms.
  if (LogEnabled(LogLevel::kDebug)) LogDebug("Reaped", {{"latency_seconds", std::to_string(latency)}});
  if (facts.fork_monotonic_ns) {
    // Both ends stamped by the kernel (fork and exit events): exact.
    metrics_->LifetimeObserved(facts.slot,
                               static_cast<double>(facts.exit.monotonic_ns - *facts.fork_monotonic_ns) / 1e9);
  } else if (facts.start_time_ticks > 0) {
    const double started =
        static_cast<double>(facts.start_time_ticks) / static_cast<double>(ClockTicksPerSecond());
    metrics_->LifetimeObserved(facts.slot, SecondsOn(CLOCK_BOOTTIME, facts.exit.monotonic_ns) - started);
  }
}

void ExitAccounting::ExitWithoutPidfd(size_t slot, uint32_t wait_status) {
  ExitCounted(slot, wait_status);
  metrics_->MissedExit(slot);
}

void ExitAccounting::UnattributedExit() {
  metrics_->UnattributedExit();
}

std::vector<StatusZombie> ExitAccounting::Zombies() const {
  std::vector<StatusZombie> zombies;
  {
    std::lock_guard<std::mutex> lock(board_mutex_);
    zombies.reserve(board_.size());
    for (const auto& [key, zombie] : board_) zombies.push_back(zombie);
  }
  std::sort(zombies.begin(), zombies.end(), [](const StatusZombie& a, const StatusZombie& b) {
    return a.exit_unix_seconds < b.exit_unix_seconds;
  });
  return zombies;
}

}  // namespace pidfd_exporter
