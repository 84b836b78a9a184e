// The scan path of the Tracker (tracker.h): a /proc reconciliation in chunks. Without the
// connector it is the only way processes are found and reads every PID; with it, it lists /proc
// and reads only PIDs the tables do not know (events keep the others current), except after a
// loss of events, when it reads everything again.
#include <algorithm>

#include "log.h"
#include "tracker.h"

namespace pidfd_exporter {
namespace {

bool IsZombie(const ProcessStat& stat) {
  // A leader thread that exited while other threads run also shows 'Z'; only a thread
  // group with nothing left running is a zombie (docs/architecture.md, "Thread leaders").
  return stat.state == 'Z' && stat.thread_count <= 1;
}

}  // namespace

void Tracker::Scan() {
  if (scan_.active) {
    // A scan is under way (in chunks); run another right after it.
    scan_.rescan_requested = true;
    return;
  }
  scan_ = ScanState{};
  scan_.started = MonotonicNanoseconds();
  scan_.full = !connector_ || next_scan_full_;
  next_scan_full_ = false;
  ++scan_number_;
  assigner_.RefreshPidfiles();
  // The PID list alone is quick to take; the per-process work below runs in chunks.
  auto pids = reader_->ListPids();
  if (!pids) return;
  scan_.active = true;
  scan_.pids = std::move(*pids);
  ScanStep();
}

void Tracker::ScanStep() {
  // Chunks keep the loop responsive: pidfd and connector events queued meanwhile are
  // handled between chunks, so a scan of thousands of processes never delays an exit or
  // a reap timestamp by more than one chunk (~64 /proc reads).
  constexpr size_t kChunk = 64;
  size_t done = 0;
  // Pass 1: stat of every user-space process.
  while (scan_.next_pid < scan_.pids.size() && done < kChunk) {
    const int pid = scan_.pids[scan_.next_pid++];
    if (!scan_.full && KnownAndCurrent(pid)) continue;
    ++done;
    auto stat = reader_->ReadStat(pid);
    if (!stat) continue;  // vanished between readdir and read, or a kernel thread
    scan_.parent_of[pid] = stat->parent_pid;
    scan_.entries.push_back({pid, std::move(*stat)});
  }
  if (scan_.next_pid < scan_.pids.size()) {
    loop_->Post([this] { ScanStep(); });
    return;
  }
  if (!scan_.sorted) {
    // Parents start before their children: discovering in start order lets a child see
    // its parent's fresh membership (children: true).
    std::sort(scan_.entries.begin(), scan_.entries.end(), [](const ScanEntry& a, const ScanEntry& b) {
      return a.stat.start_time_ticks != b.stat.start_time_ticks
                 ? a.stat.start_time_ticks < b.stat.start_time_ticks
                 : a.pid < b.pid;
    });
    scan_.sorted = true;
  }
  // Pass 2: reconcile.
  while (scan_.next_entry < scan_.entries.size() && done < kChunk) {
    ++done;
    ReconcileEntry(scan_.entries[scan_.next_entry++]);
  }
  if (scan_.next_entry < scan_.entries.size()) {
    loop_->Post([this] { ScanStep(); });
    return;
  }
  FinishScan();
}

bool Tracker::KnownAndCurrent(int pid) {
  if (auto watched = key_by_pid_.find(pid); watched != key_by_pid_.end()) {
    const WatchedProcess& process = processes_.at(watched->second);
    // Its pidfd reports its end, the connector its renames and execs. A provisional one is
    // read (to be filed as unmatched after a scan interval), and so is one adopted at its
    // fork without a /proc read, once, for its start time.
    return process.member && process.attributes.start_time_ticks != 0;
  }
  auto unmatched = unmatched_.find(pid);
  if (unmatched == unmatched_.end()) return false;
  UnmatchedProcess& known = unmatched->second;
  // Forks drop the entry of a reused PID, and renames and execs update or drop it; what
  // else could make it match is a pidfile, a config or a lineage that changed since.
  if (known.pidfile_generation != assigner_.PidfileGeneration() ||
      known.config_generation != assigner_.ConfigGeneration() ||
      known.lineage_generation != assigner_.LineageGeneration())
    return false;
  known.last_seen_scan = scan_number_;
  scan_.parent_of[pid] = known.parent_pid;
  return true;
}

void Tracker::ReconcileEntry(const ScanEntry& entry) {
  if (auto watched = key_by_pid_.find(entry.pid); watched != key_by_pid_.end()) {
    ReconcileWatched(processes_.at(watched->second), entry);
    return;
  }
  if (auto unmatched = unmatched_.find(entry.pid); unmatched != unmatched_.end()) {
    UnmatchedProcess& known = unmatched->second;
    known.last_seen_scan = scan_number_;
    // Matched nothing before: look again only when something the matchers read changed
    // (a fork that exec'd or renamed itself, a pidfile that now names it, a new config).
    if (known.start_time_ticks == entry.stat.start_time_ticks && known.comm == entry.stat.comm &&
        known.pidfile_generation == assigner_.PidfileGeneration() &&
        known.config_generation == assigner_.ConfigGeneration() &&
        known.lineage_generation == assigner_.LineageGeneration()) {
      return;
    }
    unmatched_.erase(unmatched);
  }
  Discover(entry);
}

void Tracker::ReconcileWatched(WatchedProcess& process, const ScanEntry& entry) {
  // Adopted from a fork event without reading /proc: while its pidfd is not reaped the PID
  // is still its own, so this stat is its stat.
  if (process.attributes.start_time_ticks == 0 && !process.pidfd.IsReaped())
    process.attributes.start_time_ticks = entry.stat.start_time_ticks;
  // A different start time means the PID was recycled; the watched process's own pidfd
  // reports its end, after which the newcomer is discovered.
  if (process.attributes.start_time_ticks != entry.stat.start_time_ticks || process.zombie) return;
  // The entry only says that something changed: it was read in pass 1, possibly before events
  // handled since renamed or exec'd the process into a set. Reread reads it anew.
  const uint64_t key = process.key;
  if (process.attributes.comm != entry.stat.comm || process.config_generation != assigner_.ConfigGeneration())
    Reread(process);
  // A provisional pidfd is only needed across the fork → exec/rename window; one that
  // survived a whole scan interval unmatched goes back to the cheap unmatched list (later
  // renames still arrive as connector events).
  auto still = processes_.find(key);
  if (still != processes_.end() && !still->second.member &&
      still->second.discovered_scan + 1 < scan_number_) {
    RememberUnmatched(entry.pid, entry.stat);
    Forget(key);
  }
}

void Tracker::FinishScan() {
  const size_t process_count = scan_.entries.size();
  std::erase_if(unmatched_, [this](const auto& item) { return item.second.last_seen_scan != scan_number_; });
  // A ghost waits for its exit event, which is queued before the next scan unless the
  // connector lost it (then the rescan is all there is).
  std::erase_if(ghosts_, [this](const auto& item) { return item.second.created_scan + 1 < scan_number_; });
  CheckZombiesForReaps();
  FlushParkedExits(MonotonicNanoseconds() - kParkedExitWaitNs);
  // At a low exit rate the records would otherwise wait long for a batch.
  if (exit_records_) exit_records_->Pair();
  metrics_->ScanDuration(static_cast<double>(MonotonicNanoseconds() - scan_.started) / 1e9);
  // Before Linux 6.2 counting means listing /proc/self/fd, ~1 us per descriptor (10 ms at 10k
  // pidfds, more than the rest of a scan that reads only what is new): at most every
  // kOpenFdsRefreshNs. From 6.2 each scrape counts with one stat() (CountOpenDescriptorsFromSize).
  const int64_t finished = MonotonicNanoseconds();
  if (!open_fds_refreshed_ns_ || finished - *open_fds_refreshed_ns_ >= kOpenFdsRefreshNs) {
    metrics_->RefreshOpenFds();
    open_fds_refreshed_ns_ = finished;
  }
  PublishWatchedCount();
  if (!first_scan_done_.exchange(true, std::memory_order_acq_rel)) {
    LogInfo("First scan done",
            {{"processes", std::to_string(process_count)}, {"watched", std::to_string(processes_.size())}});
  }
  const bool again = scan_.rescan_requested;
  scan_ = ScanState{};
  reader_->ForgetDispositions();
  if (again) ScheduleRescan();
}

void Tracker::CheckZombiesForReaps() {
  // Kernels before 6.9 report no EPOLLHUP at the reap: look at each zombie's pidfd here.
  if (options_.features.reap_events) return;
  std::vector<uint64_t> reaped;
  for (auto& [key, process] : processes_) {
    // Zombies with reap checks are found reaped there, with the better time.
    if (process.zombie && !reap_watch_.Contains(key) && process.pidfd.IsReaped()) reaped.push_back(key);
  }
  if (reaped.empty()) return;
  DrainBeforeFoundReaps();
  for (uint64_t key : reaped) {
    auto found = processes_.find(key);
    if (found != processes_.end()) HandleReap(found->second, MonotonicNanoseconds(), false);
  }
}

void Tracker::Discover(const ScanEntry& entry) {
  // Read first (pinned), assign, and open a pidfd only for members: the pinned directory
  // answering after pidfd_open proves the pidfd is the process we read.
  auto read = reader_->Read(entry.pid, assigner_.NeededAttributes(), entry.stat.start_time_ticks);
  if (!read) return;
  std::optional<Membership> membership =
      assigner_.Assign(read->attributes, LineageOf(entry.stat.parent_pid, scan_.parent_of));
  if (!membership) {
    RememberUnmatched(entry.pid, entry.stat);
    return;
  }
  Pidfd pidfd = OpenPidfd(entry.pid);
  if (!pidfd.valid() || !reader_->Confirm(*read, pidfd, PidfdOpened::kAfterRead)) return;
  WatchedProcess* adopted = Adopt(std::move(pidfd), std::move(read->attributes), membership, false);
  if (!adopted) return;
  adopted->adopted_by_scan = true;
  if (IsZombie(entry.stat)) AdoptedAsZombie(*adopted, entry.stat);
}

void Tracker::RememberUnmatched(int pid, const ProcessStat& stat) {
  UnmatchedProcess& entry = unmatched_[pid];
  entry.start_time_ticks = stat.start_time_ticks;
  entry.comm = stat.comm;
  entry.pidfile_generation = assigner_.PidfileGeneration();
  entry.config_generation = assigner_.ConfigGeneration();
  entry.lineage_generation = assigner_.LineageGeneration();
  entry.last_seen_scan = scan_number_;
  entry.parent_pid = stat.parent_pid;
  entry.forked_ns.reset();  // read now: perhaps another process of the PID than the fork's
}

void Tracker::ScheduleRescan() {
  if (rescan_pending_) return;
  rescan_pending_ = true;
  loop_->Post([this] {
    rescan_pending_ = false;
    Scan();
  });
}

}  // namespace pidfd_exporter
