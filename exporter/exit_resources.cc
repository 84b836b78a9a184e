#include "exit_resources.h"

#include <algorithm>

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
  if (sum.complete) sum = Sum{};
  sum.user_microseconds += record.user_microseconds;
  sum.system_microseconds += record.system_microseconds;
  sum.runtime_nanoseconds += record.runtime_nanoseconds;
  sum.peak_rss_kib = std::max(sum.peak_rss_kib, record.peak_rss_kib);
  sum.read_bytes += record.read_bytes;
  sum.write_bytes += record.write_bytes;
  sum.updated_ns = now_ns;
  if (!record.group_dead) return;
  sum.complete = true;
  sum.exit_code = record.exit_code;
  auto claim = claims_.find(tgid);
  if (claim == claims_.end()) return;
  if (!claim->second.wait_status || *claim->second.wait_status == sum.exit_code)
    deliver_(claim->second.slot, Resources(sum));
  claims_.erase(claim);
  sums_.erase(tgid);
}

void ExitResources::Claim(int pid, std::optional<uint32_t> wait_status, size_t slot, int64_t now_ns) {
  auto sum = sums_.find(pid);
  if (sum == sums_.end() || !sum->second.complete) {
    claims_[pid] = PendingClaim{slot, wait_status, now_ns};
    return;
  }
  // A status that differs from the record's: the sum is another process's (a lost record).
  if (!wait_status || *wait_status == sum->second.exit_code) deliver_(slot, Resources(sum->second));
  sums_.erase(sum);
}

size_t ExitResources::Expire(int64_t now_ns) {
  const int64_t oldest = now_ns - kMaxAgeNs;
  std::erase_if(sums_, [oldest](const auto& entry) { return entry.second.updated_ns < oldest; });
  if (sums_.size() >= kMaxSums) sums_.clear();  // a flood within kMaxAgeNs: start over
  return std::erase_if(claims_, [oldest](const auto& entry) { return entry.second.claimed_ns < oldest; });
}

}  // namespace pidfd_exporter
