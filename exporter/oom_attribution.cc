#include "oom_attribution.h"

#include <sys/epoll.h>
#include <time.h>

#include <algorithm>

#include "log.h"

namespace pidfd_exporter {

void OomCorrelator::VictimLogged(const OomKill& kill, int64_t read_ns) {
  Victim& victim = victims_[kill.pid];
  if (!kill.comm.empty()) victim.comm = kill.comm;
  victim.read_ns = read_ns;
}

bool OomCorrelator::LogComplete(bool log_open, int64_t now_ns) const {
  return log_open && (!last_loss_ns_ || now_ns - *last_loss_ns_ > kMemoryNs);
}

void OomCorrelator::CountersListed(const std::map<std::string, uint64_t>& counts, bool complete,
                                   int64_t now_ns) {
  const bool first = !listed_complete_ && cgroups_.empty();
  for (auto state = cgroups_.begin(); state != cgroups_.end();) {
    if (counts.count(state->first) == 0 && state->second.sigkill_exits_ns.empty())
      state = cgroups_.erase(state);  // removed since
    else
      ++state;
  }
  for (const auto& [cgroup, count] : counts) {
    auto [state, created] = cgroups_.try_emplace(cgroup);
    CgroupState& cgroup_state = state->second;
    if (created) {
      // Absent from a complete listing before: created since, so its count started at 0 after it.
      cgroup_state.accounted = first || !listed_complete_ ? count : 0;
    } else if (count == cgroup_state.last_listed) {
      // Unchanged for a whole period: a rise no exit claimed was a process we do not watch.
      cgroup_state.accounted = std::max(cgroup_state.accounted, count);
    }
    cgroup_state.last_listed = count;
  }
  listed_complete_ = complete;
  listed_ns_ = now_ns;
}

void OomCorrelator::CgroupExitSeen(const SigkillExit& exit) {
  if (!exit.reading) return;
  auto [state, created] = cgroups_.try_emplace(exit.reading->cgroup);
  if (created) {
    // Not in the last listing: with a complete one, the cgroup is newer and started at 0; without
    // one there is no baseline, and every kill so far counts as explained (a miss, never a guess).
    state->second.accounted = listed_complete_ ? 0 : exit.reading->oom_kills;
    state->second.last_listed = state->second.accounted;
  }
  state->second.sigkill_exits_ns.push_back(exit.exit_ns);
}

bool OomCorrelator::LoggedVictim(const SigkillExit& exit) {
  auto found = victims_.find(exit.pid);
  if (found == victims_.end()) return false;
  const Victim& victim = found->second;
  // The PID is the initial namespace's, as ours; a line read before we held the process belongs
  // to an earlier holder of the PID, and a different name to another process.
  if (victim.read_ns < exit.watched_since_ns) return false;
  if (!victim.comm.empty() && !exit.comm.empty() && victim.comm != exit.comm) return false;
  victims_.erase(found);
  return true;
}

std::optional<bool> OomCorrelator::CgroupVerdict(const SigkillExit& exit) {
  if (!exit.reading) return std::nullopt;
  auto found = cgroups_.find(exit.reading->cgroup);
  if (found == cgroups_.end()) return std::nullopt;
  CgroupState& state = found->second;
  std::vector<int64_t>& exits = state.sigkill_exits_ns;
  // A rise a listing already showed well before this exit was another process's kill.
  if (listed_ns_ && *listed_ns_ < exit.exit_ns - kVictimExitDelayNs)
    state.accounted = std::max(state.accounted, state.last_listed);
  const uint64_t rise =
      exit.reading->oom_kills > state.accounted ? exit.reading->oom_kills - state.accounted : 0;
  const auto nearby = static_cast<uint64_t>(std::count_if(exits.begin(), exits.end(), [&](int64_t other) {
    return other >= exit.exit_ns - kSameCgroupWindowNs && other <= exit.exit_ns + kSameCgroupWindowNs;
  }));
  if (auto own = std::find(exits.begin(), exits.end(), exit.exit_ns); own != exits.end()) exits.erase(own);
  if (rise == 0) return false;
  if (rise >= nearby) {
    ++state.accounted;
    return true;
  }
  // More SIGKILL exits than kills: which was the OOM killer's is unknowable. None is called one,
  // and the rise is spent so the others cannot claim it either.
  state.accounted += rise;
  return false;
}

OomVerdict OomCorrelator::Decide(const SigkillExit& exit, int64_t now_ns, bool log_open, bool final) {
  if (LoggedVictim(exit)) return OomVerdict::kOomKilled;
  if (LogComplete(log_open, now_ns)) {
    // "Killed process" is logged after the signal is sent: it may trail the exit a little.
    return final ? OomVerdict::kKilled : OomVerdict::kWait;
  }
  if (!exit.reading) return OomVerdict::kKilled;
  // Other SIGKILL exits of the cgroup may still come: the counter cannot tell them apart.
  if (!final) return OomVerdict::kWait;
  const std::optional<bool> by_cgroup = CgroupVerdict(exit);
  return by_cgroup && *by_cgroup ? OomVerdict::kOomKilled : OomVerdict::kKilled;
}

void OomCorrelator::Expire(int64_t now_ns) {
  std::erase_if(victims_, [&](const auto& entry) { return now_ns - entry.second.read_ns > kMemoryNs; });
  for (auto& [cgroup, state] : cgroups_)
    std::erase_if(state.sigkill_exits_ns, [&](int64_t exit_ns) { return now_ns - exit_ns > kMemoryNs; });
}

OomAttribution::OomAttribution(EventLoop* loop, std::unique_ptr<KernelLog> log,
                               std::optional<CgroupOomCounter> counter,
                               std::function<void(const std::string&)> count_error)
    : loop_(loop), log_(std::move(log)), counter_(std::move(counter)), count_error_(std::move(count_error)) {
  if (log_ && !loop_->AddFd(log_->fd(), EPOLLIN, [this](uint32_t) { ReadLog(); })) {
    LogWarn("Cannot watch /dev/kmsg: OOM kills are told by the cgroup counter alone");
    log_.reset();
  }
  if (counter_) {
    ListCounters();
    list_timer_ = loop_->AddTimer(kListInterval, [this] { ListCounters(); });
  }
  hold_timer_ = loop_->AddDeadlineTimer([this] { ResolveHeld(false); });
}

OomAttribution::~OomAttribution() {
  if (log_) loop_->Remove(log_->fd());
  if (hold_timer_ >= 0) loop_->DisarmTimer(hold_timer_);
}

void OomAttribution::ReadLog() {
  if (!log_) return;
  std::vector<OomKill> kills;
  std::string error;
  const KernelLog::ReadStatus status = log_->Read(&kills, &error);
  const int64_t now = MonotonicNanoseconds();
  for (const OomKill& kill : kills) correlator_.VictimLogged(kill, now);
  if (status == KernelLog::ReadStatus::kLost) {
    correlator_.LogLost(now);
    count_error_("kmsg_overwritten");
  } else if (status == KernelLog::ReadStatus::kError) {
    count_error_("kmsg_read");
    LogWarn("Reading /dev/kmsg failed", {{"err", error}});
  }
  if (!kills.empty() && !held_.empty()) ResolveHeld(false);
}

void OomAttribution::ListCounters() {
  const std::map<std::string, uint64_t> counts = counter_->ListAll();
  const int64_t now = MonotonicNanoseconds();
  correlator_.CountersListed(counts, counts.size() < CgroupOomCounter::kMaxCgroups, now);
  correlator_.Expire(now);
}

std::optional<std::string> OomAttribution::MemoryCgroupOf(int pid) const {
  if (!counter_) return std::nullopt;
  return counter_->CgroupOf(pid);
}

std::optional<CgroupOomReading> OomAttribution::ReadCounter(std::string cgroup) const {
  if (!counter_) return std::nullopt;
  const std::optional<uint64_t> kills = counter_->OomKills(cgroup);
  if (!kills) return std::nullopt;
  return CgroupOomReading{std::move(cgroup), *kills};
}

void OomAttribution::Attribute(SigkillExit exit, std::function<void(bool)> count) {
  ReadLog();  // the victim's line is usually queued already
  correlator_.CgroupExitSeen(exit);
  const int64_t now = MonotonicNanoseconds();
  const OomVerdict verdict = correlator_.Decide(exit, now, log_ != nullptr, /*final=*/false);
  if (verdict != OomVerdict::kWait) {
    count(verdict == OomVerdict::kOomKilled);
    return;
  }
  const int64_t deadline = std::max(exit.exit_ns, now - kHoldNs) + kHoldNs;
  held_.push_back(Held{std::move(exit), deadline, std::move(count)});
  ArmHoldTimer();
}

void OomAttribution::ResolveHeld(bool all_due) {
  const int64_t now = MonotonicNanoseconds();
  for (auto held = held_.begin(); held != held_.end();) {
    const bool final = all_due || held->deadline_ns <= now;
    if (final && counter_ && held->exit.reading) {
      // The counter as it is now: a kill may have been counted after the zombie was read.
      if (auto kills = counter_->OomKills(held->exit.reading->cgroup))
        held->exit.reading->oom_kills = std::max(held->exit.reading->oom_kills, *kills);
    }
    const OomVerdict verdict = correlator_.Decide(held->exit, now, log_ != nullptr, final);
    if (verdict == OomVerdict::kWait) {
      ++held;
      continue;
    }
    held->count(verdict == OomVerdict::kOomKilled);
    held = held_.erase(held);
  }
  ArmHoldTimer();
}

void OomAttribution::ArmHoldTimer() {
  if (held_.empty()) return;
  int64_t earliest = held_.front().deadline_ns;
  for (const Held& held : held_) earliest = std::min(earliest, held.deadline_ns);
  loop_->ArmTimerAt(hold_timer_, earliest);
}

}  // namespace pidfd_exporter
