#include "tracker.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "log.h"

namespace pidfd_exporter {
namespace {

int64_t MonotonicNanoseconds() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

double ClockSeconds(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

// Exit records waiting for their exit event. A record is paired when its event has been received
// and records are next read (a few hundred exits, a scan, or a record needed): records whose
// events were lost are dropped after a connector overflow, at this age, or all at this count.
constexpr size_t kMaxExitRecords = 16384;
constexpr int64_t kExitRecordMaxAgeNs = 10'000'000'000;
// Exit events noted before their records are read and paired with them. Pairing reads ~1.5 us
// of records per exit: it runs once the connector's queue is empty (no fork waits behind it)
// from kPairUnpairedExitsAt on, and at once from kMaxUnpairedExits (~5 MiB of queued records in
// the 8 MiB receive buffer at ~1.3 KiB each), whatever waits.
constexpr size_t kPairUnpairedExitsAt = 512;
constexpr size_t kMaxUnpairedExits = 4096;

bool IsGoneError(int error) {
  return error == ESRCH || error == ENOENT || error == EINVAL;
}

bool IsZombie(const ProcessStat& stat) {
  // A leader thread that exited while other threads run also shows 'Z'; only a thread
  // group with nothing left running is a zombie (research: kernel_pidfd.md §2.3).
  return stat.state == 'Z' && stat.thread_count <= 1;
}

// Parses a directory entry name of /proc as a PID; 0 for anything else.
int ParsePidName(const char* name) {
  int pid = 0;
  for (const char* c = name; *c; ++c) {
    if (*c < '0' || *c > '9' || pid > 100000000) return 0;
    pid = pid * 10 + (*c - '0');
  }
  return pid;
}

}  // namespace

std::unique_ptr<Tracker> Tracker::Create(EventLoop* loop, Metrics* metrics, const Config& config,
                                         TrackerOptions options, std::string* error) {
  UniqueFd procfs(open(options.procfs_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!procfs) {
    *error = "open " + options.procfs_root + ": " + strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<Tracker>(new Tracker(loop, metrics, config, std::move(options), std::move(procfs)));
}

Tracker::Tracker(EventLoop* loop, Metrics* metrics, const Config& config, TrackerOptions options,
                 UniqueFd procfs)
    : loop_(loop),
      metrics_(metrics),
      options_(std::move(options)),
      procfs_(std::move(procfs)),
      sets_(std::make_unique<ProcessSets>(config)) {
  for (const auto& set : config.process_sets) set_templates_.push_back(set.name);
  metrics_->CreateFixedSets(sets_->FixedNames());
  loop_->SetKeyedHandler([this](uint64_t key, uint32_t events) { OnPidfdEvent(key, events); });
  PublishWatchedCount();
}

Tracker::~Tracker() = default;

void Tracker::ApplyConfig(const Config& config) {
  sets_ = std::make_unique<ProcessSets>(config);
  set_templates_.clear();
  for (const auto& set : config.process_sets) set_templates_.push_back(set.name);
  metrics_->SetMaxSets(config.max_sets);
  metrics_->CreateFixedSets(sets_->FixedNames());
  ++config_generation_;
  std::vector<uint64_t> keys;
  keys.reserve(processes_.size());
  for (const auto& [key, process] : processes_) keys.push_back(key);
  // Parents first, so that descendants see their ancestors' new membership.
  std::sort(keys.begin(), keys.end(), [this](uint64_t a, uint64_t b) {
    return processes_.at(a).start_time_ticks < processes_.at(b).start_time_ticks;
  });
  for (uint64_t key : keys) {
    WatchedProcess& process = processes_.at(key);
    // Set indexes of the old config mean nothing in the new one.
    process.joined_via_ancestor = false;
    // Re-read: the new matchers may need attributes the old ones did not.
    if (process.state == State::kRunning && Rematch(process)) continue;
    // A zombie (or a process gone mid-reload) is judged on what was last read of it.
    const bool was_zombie = process.state == State::kZombie && process.member;
    const size_t old_slot = process.set_slot;
    Reconsider(process);
    if (!process.member) {
      if (was_zombie) {
        metrics_->ZombieRemoved(old_slot, process.parent_label, process.exit_unix_seconds);
        BoardRemove(process);
      }
      Forget(key);
    } else if (was_zombie && process.set_slot != old_slot) {
      metrics_->ZombieRemoved(old_slot, process.parent_label, process.exit_unix_seconds);
      metrics_->ZombieAdded(process.set_slot, process.parent_label, process.exit_unix_seconds);
      BoardAdd(process);
    }
  }
  std::vector<bool> in_use(metrics_->SetCount(), false);
  for (const auto& [key, process] : processes_) {
    if (process.member && process.set_slot < in_use.size()) in_use[process.set_slot] = true;
  }
  metrics_->RemoveSets(std::set<std::string>(set_templates_.begin(), set_templates_.end()), in_use);
  ScheduleRescan();
}

void Tracker::Scan() {
  if (scan_.active) {
    // A scan is under way (in chunks); run another right after it.
    scan_.rescan_requested = true;
    return;
  }
  scan_ = ScanState{};
  scan_.active = true;
  scan_.started = MonotonicNanoseconds();
  ++scan_number_;
  if (sets_->RefreshPidfiles()) ++pidfile_generation_;
  // The PID list alone is quick to take; the per-process work below runs in chunks.
  const int directory_fd = openat(procfs_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* directory = directory_fd >= 0 ? fdopendir(directory_fd) : nullptr;
  if (!directory) {
    if (directory_fd >= 0) close(directory_fd);
    metrics_->CountError(errno == EMFILE || errno == ENFILE ? "emfile" : "proc_read");
    scan_.active = false;
    return;
  }
  while (const dirent* entry = readdir(directory)) {
    const int pid = ParsePidName(entry->d_name);
    if (pid > 0) scan_.pids.push_back(pid);
  }
  closedir(directory);
  ScanStep();
}

void Tracker::ScanStep() {
  // Chunks keep the loop responsive: pidfd and connector events queued meanwhile are
  // handled between chunks, so a scan of thousands of processes never delays an exit or
  // a reap timestamp by more than one chunk (~64 /proc reads).
  constexpr size_t kChunk = 64;
  size_t done = 0;
  // Pass 1: stat of every process.
  while (scan_.next_pid < scan_.pids.size() && done < kChunk) {
    const int pid = scan_.pids[scan_.next_pid++];
    ++done;
    const std::string path = std::to_string(pid) + "/stat";
    int error = 0;
    const auto text = ReadFileAt(procfs_.get(), path.c_str(), 4096, &error);
    if (!text) {
      if (error == EMFILE || error == ENFILE) metrics_->CountError("emfile");
      continue;  // vanished between readdir and read
    }
    auto stat = ParseStat(*text);
    if (!stat || (stat->flags & kProcessFlagKernelThread)) continue;
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

void Tracker::ReconcileEntry(const ScanEntry& entry) {
  if (auto watched = key_by_pid_.find(entry.pid); watched != key_by_pid_.end()) {
    WatchedProcess& process = processes_.at(watched->second);
    // Adopted from a fork event without reading /proc: while its pidfd is not reaped
    // the PID is still its own, so this stat is its stat.
    if (process.start_time_ticks == 0 && !process.pidfd.IsReaped()) {
      process.start_time_ticks = entry.stat.start_time_ticks;
    }
    // A different start time means the PID was recycled; the watched process's own
    // pidfd reports its end, after which the newcomer is discovered.
    if (process.start_time_ticks != entry.stat.start_time_ticks) return;
    if (process.state != State::kRunning) return;
    // The entry only says that something changed: it was read in pass 1, possibly before
    // events handled since renamed or exec'd the process into a set. Rematch reads it anew.
    if (process.comm != entry.stat.comm || process.config_generation != config_generation_) Rematch(process);
    // A provisional pidfd is only needed across the fork → exec/rename window; one that
    // survived a whole scan interval unmatched goes back to the cheap unmatched list
    // (later renames still arrive as connector events).
    auto again = key_by_pid_.find(entry.pid);
    if (again != key_by_pid_.end()) {
      WatchedProcess& still = processes_.at(again->second);
      if (!still.member && still.discovered_scan + 1 < scan_number_) {
        RememberUnmatched(entry.pid, entry.stat);
        Forget(still.key);
      }
    }
    return;
  }
  if (auto unmatched = unmatched_.find(entry.pid); unmatched != unmatched_.end()) {
    UnmatchedProcess& known = unmatched->second;
    known.last_seen_scan = scan_number_;
    // Matched nothing before: look again only when something the matchers read changed
    // (a fork that exec'd or renamed itself, a pidfile that now names it, a new config).
    if (known.start_time_ticks == entry.stat.start_time_ticks && known.comm == entry.stat.comm &&
        known.pidfile_generation == pidfile_generation_ && known.config_generation == config_generation_ &&
        known.lineage_generation == lineage_generation_) {
      return;
    }
    unmatched_.erase(unmatched);
  }
  Discover(entry, scan_.parent_of);
}

void Tracker::FinishScan() {
  const int64_t started = scan_.started;
  const size_t process_count = scan_.entries.size();
  std::erase_if(unmatched_, [this](const auto& item) { return item.second.last_seen_scan != scan_number_; });
  // A ghost waits for its exit event, which is queued before the next scan unless the
  // connector lost it (then the rescan is all there is).
  std::erase_if(ghosts_, [this](const auto& item) { return item.second.created_scan + 1 < scan_number_; });

  // Kernels before 6.9 report no EPOLLHUP at the reap: look at each zombie's pidfd here.
  if (!options_.features.reap_events) {
    std::vector<uint64_t> reaped;
    for (auto& [key, process] : processes_) {
      if (process.state == State::kZombie && process.pidfd.IsReaped()) reaped.push_back(key);
    }
    for (uint64_t key : reaped) HandleReap(processes_.at(key), MonotonicNanoseconds(), false);
  }

  // At a low exit rate the records would otherwise wait long for kPairUnpairedExitsAt.
  if (taskstats_) PairExitRecords();
  metrics_->ScanDuration(static_cast<double>(MonotonicNanoseconds() - started) / 1e9);
  metrics_->RefreshOpenFds();
  PublishWatchedCount();
  if (!first_scan_done_.exchange(true, std::memory_order_acq_rel)) {
    LogInfo("First scan done",
            {{"processes", std::to_string(process_count)}, {"watched", std::to_string(processes_.size())}});
  }
  const bool again = scan_.rescan_requested;
  scan_ = ScanState{};
  parent_ignores_children_.clear();  // dispositions change and PIDs are reused
  if (again) ScheduleRescan();
}

bool Tracker::ReadAttributes(int directory_fd, const ProcessStat& stat, ProcessAttributes* attributes) {
  attributes->pid = stat.pid;
  attributes->parent_pid = stat.parent_pid;
  attributes->start_time_ticks = stat.start_time_ticks;
  attributes->comm = stat.comm;
  const unsigned needs = sets_->NeededAttributes();
  int error = 0;
  if (needs & kNeedExe) {
    // Unreadable for other users' processes without CAP_SYS_PTRACE, and for zombies:
    // an empty exe then simply does not match.
    if (auto target = ReadLinkAt(directory_fd, "exe", &error))
      attributes->exe_path = std::move(*target);
    else if (error == ESRCH)
      return false;
  }
  if (needs & kNeedCmdline) {
    auto text = ReadFileAt(directory_fd, "cmdline", 65536, &error);
    if (text)
      attributes->argv = ParseCmdline(*text);
    else if (error == ESRCH || error == ENOENT)
      return false;
  }
  if (needs & kNeedUser) {
    auto text = ReadFileAt(directory_fd, "status", 16384, &error);
    if (!text) return false;
    auto status = ParseStatus(*text);
    if (!status) return false;
    attributes->effective_uid = status->effective_uid;
    attributes->username = Username(status->effective_uid);
  }
  if (needs & kNeedCgroup) {
    auto text = ReadFileAt(directory_fd, "cgroup", 65536, &error);
    if (!text) return false;
    if (auto path = ParseCgroup(*text)) attributes->cgroup = std::move(*path);
  }
  return true;
}

std::optional<MatchResult> Tracker::MatchAncestors(int parent_pid,
                                                   const std::unordered_map<int, int>& ancestors,
                                                   const ProcessAttributes& attributes) const {
  // Walk up the parent chain (bounded: PID loops cannot happen, but a corrupt read could).
  int pid = parent_pid;
  for (int depth = 0; depth < 128 && pid > 1; ++depth) {
    if (auto watched = key_by_pid_.find(pid); watched != key_by_pid_.end()) {
      const WatchedProcess& ancestor = processes_.at(watched->second);
      if (ancestor.set_has_children) {
        MatchResult result;
        result.set_index = ancestor.set_index;
        result.name = sets_->NameForDescendant(ancestor.set_index, attributes);
        result.children = true;
        return result;
      }
    }
    auto parent = ancestors.find(pid);
    if (parent == ancestors.end()) break;
    pid = parent->second;
  }
  return std::nullopt;
}

void Tracker::Discover(const ScanEntry& entry, const std::unordered_map<int, int>& ancestors) {
  const std::string pid_name = std::to_string(entry.pid);
  // Pin the process we read with its /proc directory: if it is reaped and the PID reused
  // after pidfd_open, reading through this descriptor fails with ESRCH (research §3).
  UniqueFd directory(openat(procfs_.get(), pid_name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!directory) {
    if (errno == EMFILE || errno == ENFILE) metrics_->CountError("emfile");
    return;
  }
  ProcessAttributes attributes;
  if (!ReadAttributes(directory.get(), entry.stat, &attributes)) return;

  std::optional<MatchResult> match = sets_->Match(attributes);
  bool via_ancestor = false;
  if (!match) {
    match = MatchAncestors(entry.stat.parent_pid, ancestors, attributes);
    via_ancestor = match.has_value();
  }
  if (!match) {
    RememberUnmatched(entry.pid, entry.stat);
    return;
  }

  int error = 0;
  Pidfd pidfd = Pidfd::Open(entry.pid, &error);
  if (!pidfd.valid()) {
    if (error == EMFILE || error == ENFILE) {
      // Out of descriptors: count it and try again at the next scan (not remembered as
      // unmatched), so the exporter catches up once descriptors free up.
      metrics_->CountError("emfile");
    } else if (!IsGoneError(error)) {
      metrics_->CountError("pidfd_open");
      LogDebug("pidfd_open failed", {{"pid", pid_name}, {"err", strerror(error)}});
    }
    return;
  }
  // Verify: the pinned /proc directory still answers after pidfd_open, so the PID could
  // not have been recycled in between and the pidfd refers to the process we matched.
  auto verify_text = ReadFileAt(directory.get(), "stat", 4096, &error);
  if (!verify_text && (error == EMFILE || error == ENFILE)) {
    // The pidfd took the last descriptor: the scan tries again, but it must be counted.
    metrics_->CountError("emfile");
    return;
  }
  auto verified = verify_text ? ParseStat(*verify_text) : std::nullopt;
  if (!verified || verified->start_time_ticks != entry.stat.start_time_ticks) return;
  Adopt(std::move(pidfd), entry.stat, std::move(attributes), match, via_ancestor,
        /*zombie_exit_unknown=*/true);
}

void Tracker::DiscoverPid(int pid, bool provisional_allowed) {
  int error = 0;
  Pidfd pidfd = Pidfd::Open(pid, &error);
  if (!pidfd.valid()) {
    if (error == EMFILE || error == ENFILE)
      metrics_->CountError("emfile");
    else if (!IsGoneError(error))
      metrics_->CountError("pidfd_open");
    return;
  }
  const std::string pid_name = std::to_string(pid);
  UniqueFd directory(openat(procfs_.get(), pid_name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!directory) {
    if (errno == EMFILE || errno == ENFILE) metrics_->CountError("emfile");
    return;
  }
  auto text = ReadFileAt(directory.get(), "stat", 4096, &error);
  if (!text && (error == EMFILE || error == ENFILE)) metrics_->CountError("emfile");
  auto stat = text ? ParseStat(*text) : std::nullopt;
  if (!stat || (stat->flags & kProcessFlagKernelThread)) return;
  ProcessAttributes attributes;
  if (!ReadAttributes(directory.get(), *stat, &attributes)) return;
  // Everything above was read by PID after pidfd_open: it is ours only if the pidfd's
  // process was still not reaped afterwards (then the PID could not have been reused).
  if (pidfd.IsReaped()) return;

  std::optional<MatchResult> match = sets_->Match(attributes);
  bool via_ancestor = false;
  if (!match) {
    match = MatchAncestors(stat->parent_pid, {}, attributes);
    via_ancestor = match.has_value();
  }
  if (!match && !provisional_allowed) {
    RememberUnmatched(pid, *stat);
    return;
  }
  // A zombie found here exited moments ago: its pidfd reports the exit right after the
  // registration and the connector's exit event gives the exact time.
  Adopt(std::move(pidfd), *stat, std::move(attributes), match, via_ancestor, /*zombie_exit_unknown=*/false,
        /*fresh_fork=*/provisional_allowed);
}

Tracker::WatchedProcess* Tracker::Adopt(Pidfd pidfd, const ProcessStat& stat, ProcessAttributes attributes,
                                        const std::optional<MatchResult>& match, bool via_ancestor,
                                        bool zombie_exit_unknown, bool fresh_fork) {
  uint64_t key = options_.features.pidfs_identity ? pidfd.Inode() : 0;
  if (key == 0) key = next_synthetic_key_++;
  key &= ~(1ull << 63);
  if (processes_.count(key)) return nullptr;  // already watched (the same process under its inode)

  WatchedProcess process;
  process.key = key;
  process.pid = stat.pid;
  process.start_time_ticks = stat.start_time_ticks;
  process.comm = stat.comm;
  process.attributes = std::move(attributes);
  process.discovered_scan = scan_number_;
  process.adopted_monotonic_ns = MonotonicNanoseconds();
  process.config_generation = config_generation_;
  process.pidfd = std::move(pidfd);
  // EPOLLET: the first report is the exit (EPOLLIN), a later one with EPOLLHUP the reap;
  // level-triggered EPOLLIN would spin for as long as the process stays a zombie.
  int error = 0;
  if (!loop_->AddKeyed(process.pidfd.fd(), EPOLLIN | EPOLLET, key, &error)) {
    metrics_->CountError(error == ENOMEM || error == ENOSPC ? "epoll_limit" : "epoll_ctl");
    return nullptr;
  }
  auto [inserted, ignored] = processes_.emplace(key, std::move(process));
  WatchedProcess& watched = inserted->second;
  key_by_pid_[watched.pid] = key;
  // It has a pidfd now: its exit is counted through it, never again from a ghost.
  ghosts_.erase(watched.pid);
  watched.member = false;
  watched.fresh_fork = fresh_fork;
  SetMembership(watched, match, via_ancestor);
  watched.fresh_fork = false;
  PublishWatchedCount();

  if (watched.member && zombie_exit_unknown && IsZombie(stat)) {
    // Already a zombie when first seen: its exit time is unknown. It counts as a zombie
    // (age from first sight, a lower bound) but yields no reap latency and no lifetime.
    watched.state = State::kZombie;
    watched.exit_time_known = false;
    watched.exit_unix_seconds = ClockSeconds(CLOCK_REALTIME);
    ReadZombieDetails(watched, &stat);
    metrics_->ZombieAdded(watched.set_slot, watched.parent_label, watched.exit_unix_seconds);
    BoardAdd(watched);
  }
  return &watched;
}

void Tracker::SetMembership(WatchedProcess& process, const std::optional<MatchResult>& match,
                            bool via_ancestor) {
  if (!match) {
    if (process.member) {
      metrics_->ProcessLeft(process.set_slot);
      process.member = false;
    }
    process.joined_via_ancestor = false;
    return;
  }
  const size_t slot = metrics_->SetSlot(match->name, set_templates_[match->set_index]);
  const bool gains_children_member = match->children && !(process.member && process.set_has_children);
  if (!process.member) {
    process.set_slot = slot;
    process.member = true;
    metrics_->ProcessJoined(slot);
  } else if (slot != process.set_slot) {
    // It became something else (exec, rename): it leaves the old set and joins the new
    // one, where its exit will be counted.
    metrics_->ProcessLeft(process.set_slot);
    process.set_slot = slot;
    metrics_->ProcessJoined(slot);
  }
  process.set_index = match->set_index;
  process.set_has_children = match->children;
  process.joined_via_ancestor = via_ancestor;
  // Descendants forked before this process matched now belong to its set too: make the
  // next scan look at the unmatched ones again.
  if (gains_children_member) {
    ++lineage_generation_;
    // A process adopted at its own fork has no children yet: skip the walk on that hot path.
    if (process.fresh_fork) return;
    // Those still held provisionally (forked moments ago, no rename or exec yet) are not on
    // the unmatched list the scan re-examines, and a scan that finds them unmatched would
    // file them under the new lineage generation: they join here, now.
    for (auto& [key, other] : processes_) {
      if (other.member || other.state != State::kRunning || other.attributes.parent_pid != process.pid)
        continue;
      SetMembership(
          other,
          MatchResult{process.set_index, sets_->NameForDescendant(process.set_index, other.attributes), true},
          /*via_ancestor=*/true);
    }
  }
}

void Tracker::Reconsider(WatchedProcess& process) {
  process.config_generation = config_generation_;
  std::optional<MatchResult> match = sets_->Match(process.attributes);
  bool via_ancestor = false;
  if (!match && process.joined_via_ancestor) {
    // Descendants keep the membership they inherited, under the name they get now.
    match = MatchResult{process.set_index, sets_->NameForDescendant(process.set_index, process.attributes),
                        process.set_has_children};
    via_ancestor = true;
  }
  if (!match) {
    // A parent (or further ancestor) that belongs to a children: true set.
    match = MatchAncestors(process.attributes.parent_pid, {}, process.attributes);
    via_ancestor = match.has_value();
  }
  SetMembership(process, match, via_ancestor);
}

bool Tracker::Rematch(WatchedProcess& process) {
  const std::string pid_name = std::to_string(process.pid);
  UniqueFd directory(openat(procfs_.get(), pid_name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!directory) return false;
  const auto text = ReadFileAt(directory.get(), "stat", 4096);
  const auto stat = text ? ParseStat(*text) : std::nullopt;
  if (!stat || stat->start_time_ticks != process.start_time_ticks) return false;
  ProcessAttributes attributes;
  if (!ReadAttributes(directory.get(), *stat, &attributes)) return false;
  // Read by PID: ours only if the pidfd was still not reaped afterwards.
  if (process.pidfd.IsReaped()) return false;
  process.comm = stat->comm;
  process.attributes = std::move(attributes);
  Reconsider(process);
  if (!process.member && !connector_) {
    // Without the connector nothing needs a provisional pidfd.
    const int pid = process.pid;
    RememberUnmatched(pid, *stat);
    Forget(process.key);
  }
  return true;
}

void Tracker::StopWatching(WatchedProcess& process) {
  if (process.member) metrics_->ProcessLeft(process.set_slot);
  Forget(process.key);
}

void Tracker::Forget(uint64_t key) {
  auto found = processes_.find(key);
  if (found == processes_.end()) return;
  WatchedProcess& process = found->second;
  loop_->Remove(process.pidfd.fd());
  if (auto by_pid = key_by_pid_.find(process.pid); by_pid != key_by_pid_.end() && by_pid->second == key) {
    key_by_pid_.erase(by_pid);
  }
  processes_.erase(found);
  PublishWatchedCount();
}

void Tracker::OnPidfdEvent(uint64_t key, uint32_t events) {
  auto found = processes_.find(key);
  if (found == processes_.end()) return;
  if (connector_ && found->second.state == State::kRunning && found->second.connector_exit_ns == 0) {
    // The kernel queues the connector's exit event right after waking the pidfd: read it
    // first, so the exit time is the kernel's stamp rather than our wake-up.
    DrainConnector();
    found = processes_.find(key);
    if (found == processes_.end()) return;
  }
  if (!found->second.member) {
    // A provisional process ended. Its rename or exec, if any, was queued on the
    // connector before it exited: handle those first, then decide on its last identity.
    DrainConnector();
    found = processes_.find(key);
    if (found == processes_.end()) return;
    if (!found->second.member && !ResolveProvisionalExit(found->second)) return;
  }
  WatchedProcess& process = found->second;
  // The moment epoll reported it, not the moment we got to it: other handlers of the same
  // round (a connector drain, a scan chunk) must not delay the exit or reap stamp.
  const int64_t current = MonotonicNanoseconds();
  const int64_t woke = loop_->WakeMonotonicNanoseconds();
  const int64_t now = woke > 0 && woke < current ? woke : current;
  const double behind_seconds = static_cast<double>(current - now) / 1e9;
  // Under load the parent may have reaped it between epoll_wait and now: its parent and
  // /proc entry are gone, and the EPOLLHUP is still to come. Settle both at once.
  if ((events & EPOLLIN) && !(events & EPOLLHUP) && process.pidfd.IsReaped()) events |= EPOLLHUP;
  // Deduplicate by state, never count events: EPOLLIN alone also arrives again when a
  // zombie is re-parented, and exit and reap can arrive in one event.
  if (events & (EPOLLHUP | EPOLLERR)) {
    const bool together = process.state == State::kRunning;
    if (together) {
      HandleExit(process, now, ClockSeconds(CLOCK_BOOTTIME) - behind_seconds,
                 ClockSeconds(CLOCK_REALTIME) - behind_seconds);
    }
    HandleReap(process, now, together);
    return;
  }
  if (events & EPOLLIN) {
    if (process.state == State::kRunning) {
      HandleExit(process, now, ClockSeconds(CLOCK_BOOTTIME) - behind_seconds,
                 ClockSeconds(CLOCK_REALTIME) - behind_seconds);
    } else {
      HandleReparent(process);
    }
  }
}

bool Tracker::ResolveProvisionalExit(WatchedProcess& process) {
  // The pidfd woke before the exit event was handled: the exit record is queued already.
  if (process.identity_lost && taskstats_) {
    if (const TaskExitRecord* record = PeekExitRecord(process)) RecoverIdentity(process, *record);
  }
  if (process.identity_lost) {
    // It exec'd and was gone before its new name could be read: never guess a set.
    metrics_->UnattributedExit();
    Forget(process.key);
    return false;
  }
  Reconsider(process);
  if (!process.member) {
    Forget(process.key);
    return false;
  }
  return true;
}

void Tracker::HandleExit(WatchedProcess& process, int64_t monotonic_ns, double boot_seconds,
                         double unix_seconds) {
  process.state = State::kZombie;
  process.exit_time_known = true;
  process.exit_monotonic_ns = monotonic_ns;
  process.exit_boot_seconds = boot_seconds;
  process.exit_unix_seconds = unix_seconds;
  if (process.connector_exit_ns > 0 && process.connector_exit_ns < monotonic_ns) {
    // The connector stamped the exit in the kernel: more precise than our wake-up.
    const double earlier = static_cast<double>(monotonic_ns - process.connector_exit_ns) / 1e9;
    process.exit_monotonic_ns = process.connector_exit_ns;
    process.exit_boot_seconds -= earlier;
    process.exit_unix_seconds -= earlier;
  }
  ReadZombieDetails(process, nullptr);
  metrics_->ZombieAdded(process.set_slot, process.parent_label, process.exit_unix_seconds);
  BoardAdd(process);
}

void Tracker::ReadZombieDetails(WatchedProcess& process, const ProcessStat* known_stat) {
  int parent_pid = -1;
  // 6.13+: the parent straight from the pidfd, no /proc read and no PID-reuse question.
  if (options_.features.get_info) {
    if (auto info = process.pidfd.GetInfo(Pidfd::kInfoPid); info && info->has_pid)
      parent_pid = info->parent_pid;
  }
  const bool need_status_from_proc = !options_.features.exit_status && options_.can_read_other_exit_codes;
  if (parent_pid < 0 || need_status_from_proc) {
    std::optional<ProcessStat> stat;
    if (known_stat) {
      stat = *known_stat;
    } else {
      const std::string path = std::to_string(process.pid) + "/stat";
      if (auto text = ReadFileAt(procfs_.get(), path.c_str(), 4096)) stat = ParseStat(*text);
      // Read by PID: trust it only if the pidfd still is not reaped (then the PID was
      // still ours while we read) and the start time matches.
      if (stat && (process.pidfd.IsReaped() || stat->start_time_ticks != process.start_time_ticks))
        stat.reset();
    }
    if (stat) {
      if (parent_pid < 0) parent_pid = stat->parent_pid;
      if (need_status_from_proc && stat->has_exit_code && stat->state == 'Z')
        process.wait_status = stat->exit_code;
    }
  }
  process.parent_pid = parent_pid < 0 ? 0 : parent_pid;
  process.parent_label = ParentLabel(process.parent_pid);
}

std::string Tracker::ParentLabel(int parent_pid) const {
  if (parent_pid <= 0) return "unknown";
  if (connector_) {
    // A watched parent's name is kept current by exec and rename events: no /proc read (one
    // open, read and close per exit otherwise, 7% of the exporter's CPU in a fork storm).
    if (auto parent = key_by_pid_.find(parent_pid); parent != key_by_pid_.end()) {
      const WatchedProcess& watched = processes_.at(parent->second);
      // A reaped parent's PID may already be another process's (its pidfd event is pending).
      if (watched.state == State::kRunning && !watched.identity_lost && !watched.pidfd.IsReaped())
        return SanitizeLabelValue(watched.comm);
    }
  }
  const std::string path = std::to_string(parent_pid) + "/comm";
  auto text = ReadFileAt(procfs_.get(), path.c_str(), 256);
  if (!text) return "unknown";
  return SanitizeLabelValue(ParseComm(*text));
}

void Tracker::HandleReparent(WatchedProcess& process) {
  const std::string old_label = process.parent_label;
  const int old_parent = process.parent_pid;
  ReadZombieDetails(process, nullptr);
  if (process.parent_pid == old_parent && process.parent_label == old_label) return;
  metrics_->ZombieParentChanged(process.set_slot, old_label, process.parent_label);
  BoardAdd(process);
}

void Tracker::HandleReap(WatchedProcess& process, int64_t monotonic_ns, bool exit_and_reap_together) {
  if (process.identity_lost && taskstats_) {
    if (const TaskExitRecord* record = PeekExitRecord(process); record && RecoverIdentity(process, *record)) {
      if (!process.member) {
        // It became a program no set wants: it left its set at the exec, nothing to count.
        Forget(process.key);
        return;
      }
    }
  }
  if (process.identity_lost) {
    // It exec'd and was gone before its new name could be read: whatever it became, it is
    // no longer what joined this set. Never count it in a guessed set.
    metrics_->UnattributedExit();
    if (process.state == State::kZombie) {
      metrics_->ZombieRemoved(process.set_slot, process.parent_label, process.exit_unix_seconds);
      BoardRemove(process);
    }
    metrics_->ProcessLeft(process.set_slot);
    Forget(process.key);
    return;
  }
  if (process.exit_time_known) {
    // Exit and reap in one wake-up (auto-reaping parents, SA_NOCLDWAIT): nothing tells
    // them apart, and the kernel does both in one go for such parents: latency 0.
    // With the connector's in-kernel exit stamp the reap is still seen at the same moment
    // as ever (now), so the latency is measured as for separate events: for an
    // auto-reaping parent that is our few microseconds of processing.
    const bool exit_stamped = process.connector_exit_ns > 0 && process.connector_exit_ns <= monotonic_ns;
    const bool auto_reaped =
        (exit_and_reap_together && !exit_stamped) || process.reaped_at_exit || ParentIgnoresChildren(process);
    const double latency =
        auto_reaped ? 0.0 : static_cast<double>(monotonic_ns - process.exit_monotonic_ns) / 1e9;
    metrics_->ReapLatencyObserved(process.set_slot, latency);
    LogDebug("Reaped", {{"pid", std::to_string(process.pid)},
                        {"latency_seconds", std::to_string(latency)},
                        {"auto_reaped", auto_reaped ? "yes" : "no"},
                        {"exit_stamped", exit_stamped ? "yes" : "no"}});
    if (process.start_monotonic_ns > 0) {
      // Both ends stamped by the kernel (fork and exit events): exact.
      metrics_->LifetimeObserved(
          process.set_slot,
          static_cast<double>(process.exit_monotonic_ns - process.start_monotonic_ns) / 1e9);
    } else if (process.start_time_ticks > 0) {
      const double lifetime = process.exit_boot_seconds - static_cast<double>(process.start_time_ticks) /
                                                              static_cast<double>(ClockTicksPerSecond());
      metrics_->LifetimeObserved(process.set_slot, lifetime);
    }
  }
  std::optional<int> wait_status;
  if (options_.features.exit_status) {
    if (auto info = process.pidfd.GetInfo(Pidfd::kInfoExit); info && info->has_exit)
      wait_status = info->exit_status;
  }
  if (!wait_status) wait_status = process.connector_wait_status;
  if (!wait_status) wait_status = process.wait_status;
  if (wait_status) {
    const ExitReason reason = DescribeWaitStatus(*wait_status);
    metrics_->ExitCounted(process.set_slot, reason.reason, reason.code, ClockSeconds(CLOCK_REALTIME));
  } else {
    metrics_->ExitCounted(process.set_slot, "unknown", "", ClockSeconds(CLOCK_REALTIME));
  }
  if (process.state == State::kZombie) {
    metrics_->ZombieRemoved(process.set_slot, process.parent_label, process.exit_unix_seconds);
    BoardRemove(process);
  }
  metrics_->ProcessLeft(process.set_slot);
  Forget(process.key);
}

void Tracker::AttachConnector(std::unique_ptr<ProcConnector> connector) {
  connector_ = std::move(connector);
  loop_->AddFd(connector_->fd(), EPOLLIN, [this](uint32_t) { DrainConnector(); });
}

void Tracker::AttachTaskstats(std::unique_ptr<TaskstatsListener> listener) {
  // Not on epoll: records matter only next to their exit events, so they are read when the
  // connector's events ask for them (no second wake-up per exit on the host).
  taskstats_ = std::move(listener);
}

bool Tracker::ExitRecordsCanName() const {
  return sets_->NeededAttributes() == 0;
}

void Tracker::DrainExitRecords() {
  for (int round = 0; round < 16; ++round) {
    taskstats_batch_.Clear();
    std::string error;
    const TaskstatsListener::ReceiveStatus status = taskstats_->Receive(&taskstats_batch_, &error);
    const int64_t now = MonotonicNanoseconds();
    for (TaskExitRecord& record : taskstats_batch_.records) {
      const int pid = record.pid;
      record.received_monotonic_ns = now;
      exit_records_[pid].push_back(std::move(record));
    }
    // Lost records cost only names: their exits are still counted, as unattributed at worst.
    if (status == TaskstatsListener::ReceiveStatus::kOverflow) metrics_->CountError("taskstats_overflow");
    if (status == TaskstatsListener::ReceiveStatus::kError) {
      metrics_->CountError("taskstats_receive");
      LogWarn("Taskstats receive failed", {{"err", error}});
      break;
    }
    if (status == TaskstatsListener::ReceiveStatus::kWouldBlock) break;
  }
}

void Tracker::PairExitRecords() {
  DrainExitRecords();
  for (const UnpairedExit& exit : unpaired_exits_) TakeExitRecord(exit);
  unpaired_exits_.clear();
  // What is left waits for exit events still queued on the connector (a fraction of a second),
  // or lost with it: an old leftover would be handed to the PID's next process.
  const int64_t oldest_kept = MonotonicNanoseconds() - kExitRecordMaxAgeNs;
  size_t kept = 0;
  for (auto queue = exit_records_.begin(); queue != exit_records_.end();) {
    std::vector<TaskExitRecord>& records = queue->second;
    records.erase(records.begin(),
                  std::find_if(records.begin(), records.end(), [oldest_kept](const auto& record) {
                    return record.received_monotonic_ns >= oldest_kept;
                  }));
    kept += records.size();
    queue = records.empty() ? exit_records_.erase(queue) : std::next(queue);
  }
  if (kept > kMaxExitRecords) DropExitRecords();
}

void Tracker::DropExitRecords() {
  exit_records_.clear();
}

std::optional<TaskExitRecord> Tracker::RecordForExit(const ProcEvent& event) {
  const UnpairedExit exit{event.pid, event.tgid, event.parent_tgid, event.exit_code};
  // A record is needed only to name an exec'd process that vanished; every other exit event
  // is noted, and paired with its record later, in a batch, off the path of fresh forks.
  bool needed = false;
  if (!event.IsThreadEvent() && ExitRecordsCanName()) {
    if (auto watched = key_by_pid_.find(event.pid); watched != key_by_pid_.end()) {
      needed = processes_.at(watched->second).identity_lost;
    } else if (auto ghost = ghosts_.find(event.pid); ghost != ghosts_.end()) {
      needed = ghost->second.exec_seen;
    }
  }
  if (!needed) {
    unpaired_exits_.push_back(exit);
    if (unpaired_exits_.size() >= kMaxUnpairedExits) PairExitRecords();
    return std::nullopt;
  }
  PairExitRecords();
  return TakeExitRecord(exit);
}

std::optional<TaskExitRecord> Tracker::TakeExitRecord(const UnpairedExit& event) {
  auto found = exit_records_.find(event.pid);
  if (found == exit_records_.end()) return std::nullopt;
  std::vector<TaskExitRecord>& queue = found->second;
  std::optional<TaskExitRecord> taken;
  // Oldest first: a task's record arrives before its exit event, and the PID's next task
  // cannot exit before it was forked, after this exit. A front record that does not fit the
  // event belongs to an exit whose event was lost: dropped.
  size_t used = 0;
  while (used < queue.size() && !taken) {
    const TaskExitRecord& record = queue[used++];
    const bool fits =
        record.exit_code == event.exit_code && (record.tgid == 0 || record.tgid == event.tgid) &&
        (record.parent_tgid == 0 || event.parent_tgid == 0 || record.parent_tgid == event.parent_tgid);
    if (fits) taken = record;
  }
  queue.erase(queue.begin(), queue.begin() + static_cast<std::ptrdiff_t>(used));
  if (queue.empty()) exit_records_.erase(found);
  return taken;
}

const TaskExitRecord* Tracker::PeekExitRecord(const WatchedProcess& process) {
  PairExitRecords();
  auto found = exit_records_.find(process.pid);
  if (found == exit_records_.end()) return nullptr;
  std::optional<int> wait_status = process.connector_wait_status;
  if (!wait_status && options_.features.exit_status) {
    // Readable once the process is reaped (6.15+): the same raw status as the record's.
    if (auto info = process.pidfd.GetInfo(Pidfd::kInfoExit); info && info->has_exit)
      wait_status = info->exit_status;
  }
  for (const TaskExitRecord& record : found->second) {
    // The process's own end: its leader's record (the record of a thread has another id).
    if (record.tgid != 0 && record.tgid != process.pid) continue;
    if (wait_status && static_cast<uint32_t>(*wait_status) != record.exit_code) continue;
    return &record;
  }
  return nullptr;
}

bool Tracker::RecoverIdentity(WatchedProcess& process, const TaskExitRecord& record) {
  // The record names the program; matchers that read more (exe, cmdline, user, cgroup) cannot
  // be answered from it.
  if (!ExitRecordsCanName()) return false;
  // A zombie is counted under its set: move it with the process.
  const bool counted_zombie = process.state == State::kZombie && process.member;
  if (counted_zombie) {
    metrics_->ZombieRemoved(process.set_slot, process.parent_label, process.exit_unix_seconds);
    BoardRemove(process);
  }
  process.identity_lost = false;
  process.comm = record.comm;
  process.attributes.comm = record.comm;
  Reconsider(process);
  if (process.state == State::kZombie && process.member) {
    metrics_->ZombieAdded(process.set_slot, process.parent_label, process.exit_unix_seconds);
    BoardAdd(process);
  }
  LogDebug("Exec'd process named by its exit record",
           {{"pid", std::to_string(process.pid)}, {"member", process.member ? "yes" : "no"}});
  return true;
}

void Tracker::ScheduleRescan() {
  if (rescan_pending_) return;
  rescan_pending_ = true;
  loop_->Post([this] {
    rescan_pending_ = false;
    Scan();
  });
}

void Tracker::DrainConnector() {
  if (!connector_ || draining_connector_) return;
  draining_connector_ = true;
  // Bounded rounds: under a fork storm the loop must still get to pidfds and scrapes;
  // the socket stays readable and epoll calls back.
  for (int round = 0; round < 16; ++round) {
    connector_batch_.Clear();
    std::string error;
    const ProcConnector::ReceiveStatus status = connector_->Receive(&connector_batch_, &error);
    for (const ProcEvent& event : connector_batch_.events) {
      // A task's exit record is queued before its exit event is even sent: whenever records
      // are read, every exit event received so far finds its record among them.
      std::optional<TaskExitRecord> record;
      if (taskstats_ && event.kind == ProcEvent::Kind::kExit) record = RecordForExit(event);
      OnConnectorEvent(event, record ? &*record : nullptr);
    }
    if (connector_batch_.lost || status == ProcConnector::ReceiveStatus::kOverflow) {
      // Events were dropped: only a full /proc scan can tell what was missed.
      metrics_->CountError("connector_overflow");
      ScheduleRescan();
      if (taskstats_) {
        // The records of lost exit events would stay queued for the PIDs' next processes:
        // pair what was received, then drop the rest.
        PairExitRecords();
        DropExitRecords();
      }
    }
    if (status == ProcConnector::ReceiveStatus::kError) {
      metrics_->CountError("connector_receive");
      LogWarn("Proc connector receive failed", {{"err", error}});
      break;
    }
    if (status == ProcConnector::ReceiveStatus::kWouldBlock) {
      if (taskstats_ && unpaired_exits_.size() >= kPairUnpairedExitsAt) PairExitRecords();
      break;
    }
  }
  draining_connector_ = false;
}

void Tracker::OnConnectorEvent(const ProcEvent& event, const TaskExitRecord* record) {
  // Threads fork, exec and exit like processes; only thread-group events are process
  // events (an exec from a non-leader thread is reported with the leader's pid).
  if (event.IsThreadEvent()) return;
  switch (event.kind) {
    case ProcEvent::Kind::kFork:
      OnFork(event.pid, event.parent_tgid, event.timestamp_ns);
      break;
    case ProcEvent::Kind::kExec:
      OnExecOrComm(event.pid, nullptr);
      break;
    case ProcEvent::Kind::kComm:
      OnExecOrComm(event.pid, &event.comm);
      break;
    case ProcEvent::Kind::kExit:
      OnConnectorExit(event, record);
      break;
    case ProcEvent::Kind::kOther:
      break;
  }
}

bool Tracker::SettleStale(int pid) {
  auto stale = key_by_pid_.find(pid);
  if (stale == key_by_pid_.end()) return true;
  WatchedProcess& old = processes_.at(stale->second);
  // The PID was handed out again, so the process we hold under it was reaped; its pidfd
  // event may still be queued behind this connector event: settle it now.
  if (!old.pidfd.IsReaped()) return false;
  if (!old.member) {
    Forget(old.key);
    return true;
  }
  const int64_t now = MonotonicNanoseconds();
  const bool together = old.state == State::kRunning;
  if (together) HandleExit(old, now, ClockSeconds(CLOCK_BOOTTIME), ClockSeconds(CLOCK_REALTIME));
  HandleReap(old, now, together);
  return true;
}

void Tracker::RememberUnmatched(int pid, const ProcessStat& stat) {
  UnmatchedProcess& entry = unmatched_[pid];
  entry.start_time_ticks = stat.start_time_ticks;
  entry.comm = stat.comm;
  entry.pidfile_generation = pidfile_generation_;
  entry.config_generation = config_generation_;
  entry.lineage_generation = lineage_generation_;
  entry.last_seen_scan = scan_number_;
  entry.parent_pid = stat.parent_pid;
}

std::string Tracker::InheritedComm(int parent_pid) const {
  if (auto parent = key_by_pid_.find(parent_pid); parent != key_by_pid_.end()) {
    return processes_.at(parent->second).comm;
  }
  // Kept current by comm and exec events, so no /proc read is needed.
  if (auto parent = unmatched_.find(parent_pid); parent != unmatched_.end()) return parent->second.comm;
  return RawComm(parent_pid);
}

void Tracker::OnFork(int child_pid, int parent_pid, uint64_t timestamp_ns) {
  unmatched_.erase(child_pid);
  ghosts_.erase(child_pid);
  if (!SettleStale(child_pid)) return;
  const size_t watched_before = processes_.size();
  if (sets_->NeededAttributes() == 0 && options_.features.get_info) {
    // The matchers look at the comm alone, and a fork has its parent's comm (a later
    // exec or rename arrives as its own event): no /proc read at all on this hot path.
    int error = 0;
    Pidfd pidfd = Pidfd::Open(child_pid, &error);
    if (pidfd.valid()) {
      auto info = pidfd.GetInfo(Pidfd::kInfoPid);
      // The parent the kernel names must be the one of the event, else the PID was
      // reaped and handed out again before we opened it: trust nothing then.
      if (info && info->has_pid && info->parent_pid == parent_pid) {
        ProcessStat stat;
        stat.pid = child_pid;
        stat.parent_pid = parent_pid;
        stat.state = 'R';
        stat.comm = InheritedComm(parent_pid);
        ProcessAttributes attributes;
        attributes.pid = child_pid;
        attributes.parent_pid = parent_pid;
        attributes.comm = stat.comm;
        std::optional<MatchResult> match = sets_->Match(attributes);
        bool via_ancestor = false;
        if (!match) {
          match = MatchAncestors(parent_pid, {}, attributes);
          via_ancestor = match.has_value();
        }
        if (WatchedProcess* adopted =
                Adopt(std::move(pidfd), stat, std::move(attributes), match, via_ancestor, false, true)) {
          adopted->start_monotonic_ns = static_cast<int64_t>(timestamp_ns);
        }
      }
    } else if (error == EMFILE || error == ENFILE) {
      metrics_->CountError("emfile");
    }
  } else {
    DiscoverPid(child_pid, /*provisional_allowed=*/true);
  }
  if (processes_.size() > watched_before || key_by_pid_.count(child_pid)) return;
  // Reaped before we could open it (or out of descriptors): remember what a fork
  // inherits, its parent's name, so that its exit event can still be counted.
  Ghost ghost;
  ghost.parent_pid = parent_pid;
  ghost.created_scan = scan_number_;
  ghost.comm = InheritedComm(parent_pid);
  if (auto parent = key_by_pid_.find(parent_pid); parent != key_by_pid_.end()) {
    const WatchedProcess& watched_parent = processes_.at(parent->second);
    if (watched_parent.member && watched_parent.set_has_children) {
      ghost.inherited_set_index = watched_parent.set_index;
      ghost.inherited_attributes = watched_parent.attributes;
    }
  }
  ghosts_[child_pid] = std::move(ghost);
}

void Tracker::OnExecOrComm(int pid, const std::string* new_comm) {
  if (auto ghost = ghosts_.find(pid); ghost != ghosts_.end()) {
    if (new_comm) {
      ghost->second.comm = *new_comm;
      ghost->second.exec_seen = false;
    } else {
      ghost->second.exec_seen = true;
    }
    return;
  }
  const bool comm_only = sets_->NeededAttributes() == 0;
  auto watched = key_by_pid_.find(pid);
  if (watched == key_by_pid_.end()) {
    // Not watched: it matched nothing so far. Something it is matched on changed.
    auto known = unmatched_.find(pid);
    if (comm_only && new_comm && known != unmatched_.end()) {
      // A rename with comm-only matchers: decide from the event, open a pidfd only when
      // the new name matches.
      ProcessAttributes attributes;
      attributes.pid = pid;
      attributes.parent_pid = known->second.parent_pid;
      attributes.comm = *new_comm;
      std::optional<MatchResult> match = sets_->Match(attributes);
      if (!match) {
        known->second.comm = *new_comm;
        return;
      }
    }
    const int parent_pid = known != unmatched_.end() ? known->second.parent_pid : 0;
    unmatched_.erase(pid);
    DiscoverPid(pid, /*provisional_allowed=*/false);
    // A ghost holds a name alone: it can stand for a process only where the name is all the
    // matchers need (and, after an exec, an exit record will give that name).
    if (key_by_pid_.count(pid) || unmatched_.count(pid) || !comm_only || (!new_comm && !taskstats_)) return;
    // Gone before its pidfd could be opened (or out of descriptors: then it lives on, and the
    // ghost expires after the next scan, which watches it). Its exit event, queued behind this
    // one when it is gone, counts it: under a rename's name, or under the name its exit record
    // gives after an exec.
    Ghost ghost;
    ghost.parent_pid = parent_pid;
    ghost.created_scan = scan_number_;
    if (new_comm)
      ghost.comm = *new_comm;
    else
      ghost.exec_seen = true;
    ghosts_[pid] = std::move(ghost);
    return;
  }
  WatchedProcess& process = processes_.at(watched->second);
  if (process.state != State::kRunning) return;
  if (comm_only) {
    // Only the name matters: a rename carries it, an exec needs one small read.
    std::optional<std::string> comm;
    if (new_comm) {
      comm = *new_comm;
    } else {
      const std::string path = std::to_string(pid) + "/comm";
      if (auto text = ReadFileAt(procfs_.get(), path.c_str(), 256)) comm = ParseComm(*text);
      if (comm && process.pidfd.IsReaped()) comm.reset();  // read from a recycled PID
    }
    if (!comm) {
      process.identity_lost = true;
      return;
    }
    process.identity_lost = false;
    process.comm = *comm;
    process.attributes.comm = *comm;
    Reconsider(process);
    return;
  }
  const std::string pid_name = std::to_string(process.pid);
  UniqueFd directory(openat(procfs_.get(), pid_name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::optional<ProcessStat> stat;
  if (directory) {
    if (auto text = ReadFileAt(directory.get(), "stat", 4096)) stat = ParseStat(*text);
  }
  ProcessAttributes attributes;
  bool readable = stat && stat->start_time_ticks == process.start_time_ticks &&
                  ReadAttributes(directory.get(), *stat, &attributes) && !process.pidfd.IsReaped();
  if (readable) {
    process.comm = stat->comm;
    process.attributes = std::move(attributes);
  } else if (new_comm) {
    // Gone already, but the event carries the new name.
    process.comm = *new_comm;
    process.attributes.comm = *new_comm;
  } else {
    process.identity_lost = true;
    return;
  }
  process.identity_lost = false;
  Reconsider(process);
}

void Tracker::OnConnectorExit(const ProcEvent& event, const TaskExitRecord* record) {
  const int pid = event.pid;
  if (auto watched = key_by_pid_.find(pid); watched != key_by_pid_.end()) {
    WatchedProcess& process = processes_.at(watched->second);
    if (process.state == State::kRunning) {
      // The leader thread's own exit is reported with pid == tgid, also when other threads
      // still run (it exited first, or another thread's execve replaced it): the process
      // lives on, and its pidfd is not readable yet. Such an event says nothing about the
      // process's exit (research §2.3, §2.6); the process's real end, when a non-leader
      // thread is the last, comes only as a thread event and through the pidfd.
      pollfd exited{process.pidfd.fd(), POLLIN, 0};
      if (poll(&exited, 1, 0) == 0) return;
    }
    process.connector_exit_ns = static_cast<int64_t>(event.timestamp_ns);
    process.connector_wait_status = static_cast<int>(event.exit_code);
    process.connector_parent_pid = event.parent_tgid;
    // The kernel names no parent when the task was already released when it reported the
    // exit: the parent had it auto-reaped (SIGCHLD ignored, SA_NOCLDWAIT).
    process.reaped_at_exit = event.parent_tgid == 0;
    if (process.member && process.state == State::kZombie && process.exit_time_known &&
        process.connector_exit_ns < process.exit_monotonic_ns) {
      // The pidfd woke us first; the connector's in-kernel stamp is the true exit time.
      process.exit_monotonic_ns = process.connector_exit_ns;
    }
    if (process.member && process.state == State::kZombie && !process.exit_time_known &&
        process.connector_exit_ns <= process.adopted_monotonic_ns) {
      // A scan found it already a zombie (exit time unknown) while its exit event was still
      // queued. An exit stamped before the adoption is this process's (its PID could not be
      // reused while we held it as a zombie): the kernel's stamp is its exit time.
      metrics_->ZombieRemoved(process.set_slot, process.parent_label, process.exit_unix_seconds);
      BoardRemove(process);
      const double ago = static_cast<double>(MonotonicNanoseconds() - process.connector_exit_ns) / 1e9;
      process.exit_time_known = true;
      process.exit_monotonic_ns = process.connector_exit_ns;
      process.exit_boot_seconds = ClockSeconds(CLOCK_BOOTTIME) - ago;
      process.exit_unix_seconds = ClockSeconds(CLOCK_REALTIME) - ago;
      metrics_->ZombieAdded(process.set_slot, process.parent_label, process.exit_unix_seconds);
      BoardAdd(process);
    }
    // It exec'd and its new name was gone before we could read it: the record has it.
    if (process.identity_lost && record) RecoverIdentity(process, *record);
    return;
  }
  auto found = ghosts_.find(pid);
  if (found == ghosts_.end()) return;
  Ghost ghost = std::move(found->second);
  ghosts_.erase(found);
  if (ghost.exec_seen && record && ExitRecordsCanName()) {
    // The name it died with, after an exec whose new name nobody read.
    ghost.comm = record->comm;
    ghost.exec_seen = false;
  }
  if (ghost.exec_seen) {
    metrics_->UnattributedExit();
    return;
  }
  ProcessAttributes attributes;
  attributes.pid = pid;
  attributes.parent_pid = ghost.parent_pid;
  attributes.comm = ghost.comm;
  std::optional<MatchResult> match = sets_->Match(attributes);
  if (!match && ghost.inherited_set_index) {
    // A descendant by lineage keeps its set, under the name it has now.
    ProcessAttributes named = std::move(ghost.inherited_attributes);
    named.pid = pid;
    named.parent_pid = ghost.parent_pid;
    named.comm = ghost.comm;
    match = MatchResult{*ghost.inherited_set_index,
                        sets_->NameForDescendant(*ghost.inherited_set_index, named), true};
  }
  if (!match) return;
  // A member that ended before any pidfd could be opened: its exit counts (reason and
  // code from the event), without a reap latency.
  const size_t slot = metrics_->SetSlot(match->name, set_templates_[match->set_index]);
  metrics_->ProcessJoined(slot);
  metrics_->ProcessLeft(slot);
  const ExitReason reason = DescribeWaitStatus(static_cast<int>(event.exit_code));
  metrics_->ExitCounted(slot, reason.reason, reason.code, ClockSeconds(CLOCK_REALTIME));
  metrics_->MissedExit(slot);
}

std::string Tracker::RawComm(int pid) const {
  const std::string path = std::to_string(pid) + "/comm";
  auto text = ReadFileAt(procfs_.get(), path.c_str(), 256);
  return text ? ParseComm(*text) : std::string();
}

bool Tracker::ParentIgnoresChildren(const WatchedProcess& process) {
  // A parent with SIGCHLD set to SIG_IGN has its children released by the kernel in the
  // exit itself: the reap latency is 0 whatever our own wake-up delay was. Parents fork
  // many children, so the answer is cached per parent until the next scan.
  const int parent = process.connector_parent_pid > 0 ? process.connector_parent_pid : process.parent_pid;
  if (parent <= 0) return false;
  if (auto cached = parent_ignores_children_.find(parent); cached != parent_ignores_children_.end()) {
    return cached->second;
  }
  bool ignores = false;
  const std::string path = std::to_string(parent) + "/status";
  if (auto text = ReadFileAt(procfs_.get(), path.c_str(), 16384)) {
    const size_t line = text->find("\nSigIgn:");
    if (line != std::string::npos) {
      const unsigned long long ignored = std::strtoull(text->c_str() + line + 9, nullptr, 16);
      ignores = (ignored >> (SIGCHLD - 1)) & 1;
    }
  }
  parent_ignores_children_[parent] = ignores;
  return ignores;
}

const std::string& Tracker::Username(uint32_t uid) {
  auto found = usernames_.find(uid);
  if (found != usernames_.end()) return found->second;
  std::string name = std::to_string(uid);
  passwd entry{};
  passwd* result = nullptr;
  char buffer[4096];
  if (getpwuid_r(uid, &entry, buffer, sizeof buffer, &result) == 0 && result) name = result->pw_name;
  return usernames_.emplace(uid, std::move(name)).first->second;
}

void Tracker::BoardAdd(const WatchedProcess& process) {
  StatusZombie zombie;
  zombie.set = metrics_->SetName(process.set_slot);
  zombie.pid = process.pid;
  zombie.comm = process.comm;
  zombie.parent_pid = process.parent_pid;
  zombie.parent_comm = process.parent_label;
  zombie.exit_unix_seconds = process.exit_unix_seconds;
  zombie.exit_time_known = process.exit_time_known;
  std::lock_guard<std::mutex> lock(board_mutex_);
  board_[process.key] = std::move(zombie);
}

void Tracker::BoardRemove(const WatchedProcess& process) {
  std::lock_guard<std::mutex> lock(board_mutex_);
  board_.erase(process.key);
}

std::vector<StatusZombie> Tracker::Zombies() const {
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

void Tracker::PublishWatchedCount() {
  metrics_->SetWatchedPidfds(static_cast<int64_t>(processes_.size()));
}

}  // namespace pidfd_exporter
