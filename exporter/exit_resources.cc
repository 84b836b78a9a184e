#include "exit_resources.h"

#include <algorithm>

#include "procfs.h"

namespace pidfd_exporter {

ProcessResources ExitResources::Resources(const Sum& sum) {
  ProcessResources resources;
  const uint64_t sampled = sum.user_microseconds + sum.system_microseconds;
  // Without delay accounting the exact run time is 0: the sampled times are all there is.
  const double runtime = sum.runtime_nanoseconds > 0 ? static_cast<double>(sum.runtime_nanoseconds) / 1e9
                                                     : static_cast<double>(sampled) / 1e6;
  if (sum.system_microseconds == 0) {
    resources.user_seconds = runtime;  // as cputime_adjust(): all of it is user time
  } else if (sum.user_microseconds == 0) {
    resources.system_seconds = runtime;
  } else {
    resources.user_seconds =
        runtime * static_cast<double>(sum.user_microseconds) / static_cast<double>(sampled);
    resources.system_seconds = runtime - resources.user_seconds;
  }
  resources.peak_rss_bytes = sum.peak_rss_kib * 1024;
  resources.read_bytes = sum.read_bytes;
  resources.write_bytes = sum.write_bytes;
  return resources;
}

void ExitResources::RecordRead(const TaskExitRecord& record, int64_t now_ns) {
  // Before Linux 5.19 records carry no thread group: a thread's record then counts as its own
  // process (never claimed), and a process is summed from its last task's record alone.
  const int tgid = record.tgid != 0 ? record.tgid : record.pid;
  if (sums_.size() >= kMaxSums && sums_.count(tgid) == 0) Expire(now_ns);
  Sum& sum = sums_[tgid];
  // A finished sum nobody claimed, and a new record of the same id: the PID was reused by a
  // process that has ended too. The older one was not watched (its claim would have come first).
  if (sum.complete) {
    // A free read before this record may be this process's (its exit event was not read yet):
    // kept, DeliverFinal() tells whose it is.
    std::optional<FinalRuntime> freed = sum.main_thread_final;
    sum = Sum{};
    sum.main_thread_final = freed;
  }
  sum.user_microseconds += record.user_microseconds;
  sum.system_microseconds += record.system_microseconds;
  sum.runtime_nanoseconds += record.runtime_nanoseconds;
  sum.peak_rss_kib = std::max(sum.peak_rss_kib, record.peak_rss_kib);
  sum.read_bytes += record.read_bytes;
  sum.write_bytes += record.write_bytes;
  sum.updated_ns = now_ns;
  if (record.pid == tgid)
    sum.main_thread = MainThreadRecord{record.runtime_nanoseconds, record.user_microseconds,
                                       record.system_microseconds, record.exit_code};
  if (!record.group_dead) return;
  sum.complete = true;
  sum.exit_code = record.exit_code;
  auto claim = claims_.find(tgid);
  if (claim == claims_.end()) return;
  if (!claim->second.wait_status || *claim->second.wait_status == sum.exit_code)
    DeliverSum(tgid, sum, claim->second.slot, claim->second.start_time_ticks, now_ns);
  claims_.erase(claim);
  sums_.erase(tgid);
}

void ExitResources::Claim(int pid, std::optional<uint32_t> wait_status, size_t slot, int64_t now_ns,
                          uint64_t start_time_ticks) {
  auto sum = sums_.find(pid);
  if (sum == sums_.end() || !sum->second.complete) {
    claims_[pid] = PendingClaim{slot, wait_status, now_ns, start_time_ticks};
    return;
  }
  // A status that differs from the record's: the sum is another process's (a lost record).
  if (!wait_status || *wait_status == sum->second.exit_code)
    DeliverSum(pid, sum->second, slot, start_time_ticks, now_ns);
  sums_.erase(sum);
}

void ExitResources::DeliverSum(int tgid, const Sum& sum, size_t slot, uint64_t start_time_ticks,
                               int64_t now_ns) {
  deliver_(slot, Resources(sum));
  if (!deliver_final_cpu_ || !sum.main_thread) return;
  // Freed already, unless that was an earlier process with this PID.
  if (sum.main_thread_final && DeliverFinal(slot, start_time_ticks, *sum.main_thread, *sum.main_thread_final))
    return;
  if (awaiting_final_.size() >= kMaxSums && awaiting_final_.count(tgid) == 0) Expire(now_ns);
  if (awaiting_final_.size() >= kMaxSums) {
    ++final_runtimes_lost_;  // 16,384 zombies not reaped within a minute: this one keeps its record
    return;
  }
  // Replaces the entry of an earlier process with this PID that is still not freed: that one
  // keeps its record's figure.
  const bool replaced =
      !awaiting_final_.insert_or_assign(tgid, AwaitingFinal{slot, start_time_ticks, *sum.main_thread, now_ns})
           .second;
  if (replaced) ++final_runtimes_lost_;
}

void ExitResources::FinalRuntimeRead(const FinalRuntime& task, int64_t now_ns) {
  // Threads other than the main one were freed at their own exit; what they ran after their
  // records (at most a tick each) is not followed (docs/architecture.md, "Resources").
  if (task.pid != task.tgid || !deliver_final_cpu_) return;
  if (auto awaiting = awaiting_final_.find(task.tgid); awaiting != awaiting_final_.end()) {
    const AwaitingFinal& entry = awaiting->second;
    if (DeliverFinal(entry.slot, entry.start_time_ticks, entry.record, task)) {
      awaiting_final_.erase(awaiting);
      return;
    }
    // Another holder of the PID (one freed late, or the next, not claimed yet): the entry waits
    // on, and the free is kept with the sum below for a claim to come.
  }
  // Freed before its exit was claimed (the exit event, or its records, not read yet): kept with
  // its sum, which its records join or already fill. Every process on the host passes here; the
  // sums of those nobody claims expire like those of their records.
  if (sums_.size() >= kMaxSums && sums_.count(task.tgid) == 0) Expire(now_ns);
  Sum& sum = sums_[task.tgid];
  sum.main_thread_final = task;
  sum.updated_ns = now_ns;
}

bool ExitResources::DeliverFinal(size_t slot, uint64_t start_time_ticks, const MainThreadRecord& record,
                                 const FinalRuntime& freed) {
  if (start_time_ticks != 0) {
    const uint64_t nanoseconds_per_tick = 1'000'000'000ULL / static_cast<uint64_t>(ClockTicksPerSecond());
    if (freed.start_boottime_nanoseconds / nanoseconds_per_tick != start_time_ticks) return false;
  }
  std::optional<FinalCpu> cpu = CpuAfterRecord(record, freed);
  if (!cpu) return false;
  deliver_final_cpu_(slot, *cpu);
  return true;
}

std::optional<FinalCpu> ExitResources::CpuAfterRecord(const MainThreadRecord& record,
                                                      const FinalRuntime& freed) {
  // What was delivered for the main thread: its exact run time, or without delay accounting
  // (the field is 0) its sampled times (Resources()).
  const uint64_t delivered = record.runtime_nanoseconds > 0
                                 ? record.runtime_nanoseconds
                                 : (record.user_microseconds + record.system_microseconds) * 1000;
  if (freed.exit_code != record.exit_code || freed.runtime_nanoseconds < delivered) return std::nullopt;
  const uint64_t after = freed.runtime_nanoseconds - delivered;
  FinalCpu cpu;
  if (after == 0) return cpu;
  // Split like the kernel's cputime_adjust(): in the ratio of the tick-sampled times that came
  // after the record, compared in the record's whole microseconds (it rounds them down). No
  // tick came in most exits: the rest of an exit runs in the kernel.
  const uint64_t user_now = freed.user_nanoseconds / 1000;
  const uint64_t system_now = freed.system_nanoseconds / 1000;
  const uint64_t user_after = user_now > record.user_microseconds ? user_now - record.user_microseconds : 0;
  const uint64_t system_after =
      system_now > record.system_microseconds ? system_now - record.system_microseconds : 0;
  const double seconds = static_cast<double>(after) / 1e9;
  if (user_after + system_after == 0) {
    cpu.system_seconds = seconds;
  } else {
    cpu.user_seconds =
        seconds * static_cast<double>(user_after) / static_cast<double>(user_after + system_after);
    cpu.system_seconds = seconds - cpu.user_seconds;
  }
  return cpu;
}

size_t ExitResources::Expire(int64_t now_ns) {
  const int64_t oldest = now_ns - kMaxAgeNs;
  const int64_t oldest_awaiting = now_ns - kFinalMaxAgeNs;
  final_runtimes_lost_ += std::erase_if(awaiting_final_, [oldest_awaiting](const auto& entry) {
    return entry.second.delivered_ns < oldest_awaiting;
  });
  std::erase_if(sums_, [oldest](const auto& entry) { return entry.second.updated_ns < oldest; });
  if (sums_.size() >= kMaxSums) sums_.clear();  // a flood within kMaxAgeNs: start over
  return std::erase_if(claims_, [oldest](const auto& entry) { return entry.second.claimed_ns < oldest; });
}

}  // namespace pidfd_exporter
