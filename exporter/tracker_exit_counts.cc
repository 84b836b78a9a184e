// Counting a watched member's exit (tracker.h): the OOM verdict of a SIGKILL
// (exporter/oom_attribution.h) and the claim on what the process used (exporter/exit_resources.h).
#include "tracker.h"

namespace pidfd_exporter {

Tracker::ExitIdentity Tracker::IdentityOf(const WatchedProcess& process, int64_t now_ns) const {
  ExitIdentity identity;
  identity.pid = process.attributes.pid;
  identity.comm = process.attributes.comm;
  identity.start_time_ticks = process.attributes.start_time_ticks;
  identity.watched_since_ns = process.adopted_monotonic_ns;
  identity.exit_ns = process.zombie ? process.zombie->exit.monotonic_ns : now_ns;
  if (process.zombie) identity.oom_cgroup = process.zombie->oom_cgroup;
  identity.memory_cgroup = process.memory_cgroup;
  return identity;
}

void Tracker::ReadOomEvidence(WatchedProcess& process) {
  if (!oom_->HasCounter()) return;
  // The statuses at hand without a system call: the connector's event (drained before the
  // pidfd's) or /proc's field 52, read just now.
  std::optional<uint32_t> status;
  if (process.connector_exit)
    status = process.connector_exit->wait_status;
  else
    status = process.zombie->proc_wait_status;
  if (!status || !ExitAccounting::IsSigkill(*status)) return;
  // Read by PID: still this process only if it was not reaped meanwhile. On cgroup v1 a zombie
  // shows the root memory cgroup: the cgroup noted when it joined its set is used then.
  std::optional<std::string> cgroup = oom_->MemoryCgroupOf(process.attributes.pid);
  if (!cgroup || *cgroup == "/" || process.pidfd.IsReaped()) cgroup = process.memory_cgroup;
  if (cgroup) process.zombie->oom_cgroup = oom_->ReadCounter(std::move(*cgroup));
}

void Tracker::NoteMemoryCgroup(WatchedProcess& process) {
  if (!oom_->WantsCgroupsOfMembers()) return;
  std::optional<std::string> cgroup = oom_->MemoryCgroupOf(process.attributes.pid);
  if (cgroup && !process.pidfd.IsReaped()) process.memory_cgroup = std::move(cgroup);
}

void Tracker::CountExit(size_t slot, std::optional<uint32_t> wait_status, ExitIdentity identity) {
  ClaimExitResources(identity.pid, wait_status, slot, identity.start_time_ticks);
  if (!oom_ || !wait_status || !ExitAccounting::IsSigkill(*wait_status)) {
    accounting_.ExitCounted(slot, wait_status);
    return;
  }
  SigkillExit exit;
  exit.pid = identity.pid;
  exit.comm = std::move(identity.comm);
  exit.watched_since_ns = identity.watched_since_ns;
  exit.exit_ns = identity.exit_ns;
  exit.reading = std::move(identity.oom_cgroup);
  // Exit and reap seen together: no zombie was read, the count is read now.
  if (!exit.reading && identity.memory_cgroup)
    exit.reading = oom_->ReadCounter(std::move(*identity.memory_cgroup));
  // Held at most OomAttribution::kHoldNs; the slot stays valid (an exit is an event of its set,
  // which cannot expire that fast).
  oom_->Attribute(std::move(exit), [this, slot, wait_status](bool oom_killed) {
    accounting_.ExitCounted(slot, wait_status, oom_killed);
  });
}

void Tracker::ClaimExitResources(int pid, std::optional<uint32_t> wait_status, size_t slot,
                                 uint64_t start_time_ticks) {
  if (!exit_resources_) return;
  const int64_t now = MonotonicNanoseconds();
  exit_resources_->Claim(pid, wait_status, slot, now, start_time_ticks);
  ArmResourcesTimer(now);
}

void Tracker::ArmResourcesTimer(int64_t now_ns) {
  std::optional<int64_t> due;
  if (exit_resources_->HasClaims())
    due = now_ns + kResourcesReadDelayNs;
  else if (exit_resources_->AwaitsFinalRuntimes())
    due = now_ns + kFinalRuntimePollNs;
  // An earlier deadline stands; a claim after a final run time's poll brings it forward.
  if (!due || (resources_timer_due_ && *resources_timer_due_ <= *due)) return;
  if (loop_->ArmTimerAt(resources_timer_id_, *due)) resources_timer_due_ = due;
}

void Tracker::OnResourcesTimer() {
  resources_timer_due_.reset();
  if (!exit_records_ || !exit_resources_) return;
  const int64_t now = MonotonicNanoseconds();
  if (final_runtime_probe_) DrainFinalRuntimes();
  // Reads the queued records: the claimed processes' are among them.
  if (exit_resources_->HasClaims()) exit_records_->Pair();
  if (const size_t lost = exit_resources_->Expire(now)) metrics_->CountError("exit_resources_lost", lost);
  if (final_runtime_probe_) {
    // Those processes keep the run time of their exit record: a full ring lost their frees,
    // or they were not freed within a minute (zombies), or another took their PID first.
    const uint64_t dropped = final_runtime_probe_->Dropped();
    if (dropped > final_runtimes_dropped_)
      metrics_->CountError("final_runtime_dropped", dropped - final_runtimes_dropped_);
    final_runtimes_dropped_ = dropped;
    if (const size_t lost = exit_resources_->TakeFinalRuntimesLost())
      metrics_->CountError("final_runtime_lost", lost);
  }
  ArmResourcesTimer(now);
}

void Tracker::DrainFinalRuntimes() {
  // The clock is read once, and only when a record came: most connector reads find none.
  std::optional<int64_t> now;
  final_runtime_probe_->Drain([this, &now](const FinalRuntime& task) {
    if (!now) now = MonotonicNanoseconds();
    exit_resources_->FinalRuntimeRead(task, *now);
  });
}

}  // namespace pidfd_exporter
