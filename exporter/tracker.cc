#include "tracker.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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
  metrics_->CreateFixedSets(sets_->FixedNames());
  loop_->SetKeyedHandler([this](uint64_t key, uint32_t events) { OnPidfdEvent(key, events); });
  PublishWatchedCount();
}

Tracker::~Tracker() = default;

void Tracker::ApplyConfig(const Config& config) {
  sets_ = std::make_unique<ProcessSets>(config);
  metrics_->CreateFixedSets(sets_->FixedNames());
  ++config_generation_;
  loop_->Post([this] { Scan(); });
}

void Tracker::Scan() {
  const int64_t started = MonotonicNanoseconds();
  ++scan_number_;
  if (sets_->RefreshPidfiles()) ++pidfile_generation_;

  // Pass 1: stat of every process. A second descriptor on /proc keeps the tracker's own
  // position-free descriptor untouched by readdir.
  std::vector<ScanEntry> entries;
  std::unordered_map<int, int> parent_of;
  {
    const int directory_fd = openat(procfs_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* directory = directory_fd >= 0 ? fdopendir(directory_fd) : nullptr;
    if (!directory) {
      if (directory_fd >= 0) close(directory_fd);
      metrics_->CountError(errno == EMFILE || errno == ENFILE ? "emfile" : "proc_read");
      return;
    }
    while (const dirent* entry = readdir(directory)) {
      const int pid = ParsePidName(entry->d_name);
      if (pid <= 0) continue;
      const std::string path = std::string(entry->d_name) + "/stat";
      int error = 0;
      const auto text = ReadFileAt(procfs_.get(), path.c_str(), 4096, &error);
      if (!text) {
        if (error == EMFILE || error == ENFILE) metrics_->CountError("emfile");
        continue;  // vanished between readdir and read
      }
      auto stat = ParseStat(*text);
      if (!stat || (stat->flags & kProcessFlagKernelThread)) continue;
      parent_of[pid] = stat->parent_pid;
      entries.push_back({pid, std::move(*stat)});
    }
    closedir(directory);
  }
  // Parents start before their children: discovering in start order lets a child see
  // its parent's fresh membership (children: true).
  std::sort(entries.begin(), entries.end(), [](const ScanEntry& a, const ScanEntry& b) {
    return a.stat.start_time_ticks != b.stat.start_time_ticks
               ? a.stat.start_time_ticks < b.stat.start_time_ticks
               : a.pid < b.pid;
  });

  // Pass 2: reconcile.
  for (const ScanEntry& entry : entries) {
    if (auto watched = key_by_pid_.find(entry.pid); watched != key_by_pid_.end()) {
      WatchedProcess& process = processes_.at(watched->second);
      // A different start time means the PID was recycled; the watched process's own
      // pidfd reports its end, after which the newcomer is discovered.
      if (process.start_time_ticks != entry.stat.start_time_ticks) continue;
      if (process.state == State::kRunning &&
          (process.comm != entry.stat.comm || process.config_generation != config_generation_)) {
        Rematch(process, entry.stat);
      }
      continue;
    }
    if (auto unmatched = unmatched_.find(entry.pid); unmatched != unmatched_.end()) {
      UnmatchedProcess& known = unmatched->second;
      known.last_seen_scan = scan_number_;
      // Matched nothing before: look again only when something the matchers read changed
      // (a fork that exec'd or renamed itself, a pidfile that now names it, a new config).
      if (known.start_time_ticks == entry.stat.start_time_ticks && known.comm == entry.stat.comm &&
          known.pidfile_generation == pidfile_generation_ && known.config_generation == config_generation_) {
        continue;
      }
      unmatched_.erase(unmatched);
    }
    Discover(entry, parent_of);
  }
  std::erase_if(unmatched_, [this](const auto& item) { return item.second.last_seen_scan != scan_number_; });

  // Kernels before 6.9 report no EPOLLHUP at the reap: look at each zombie's pidfd here.
  if (!options_.features.reap_events) {
    std::vector<uint64_t> reaped;
    for (auto& [key, process] : processes_) {
      if (process.state == State::kZombie && process.pidfd.IsReaped()) reaped.push_back(key);
    }
    for (uint64_t key : reaped) HandleReap(processes_.at(key), MonotonicNanoseconds());
  }

  metrics_->ScanDuration(static_cast<double>(MonotonicNanoseconds() - started) / 1e9);
  PublishWatchedCount();
  if (!first_scan_done_.exchange(true, std::memory_order_acq_rel)) {
    LogInfo("First scan done",
            {{"processes", std::to_string(entries.size())}, {"watched", std::to_string(processes_.size())}});
  }
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
    unmatched_[entry.pid] = UnmatchedProcess{entry.stat.start_time_ticks, entry.stat.comm,
                                             pidfile_generation_, config_generation_, scan_number_};
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
  auto verified = verify_text ? ParseStat(*verify_text) : std::nullopt;
  if (!verified || verified->start_time_ticks != entry.stat.start_time_ticks) return;

  uint64_t key = options_.features.pidfs_identity ? pidfd.Inode() : 0;
  if (key == 0) key = next_synthetic_key_++;
  key &= ~(1ull << 63);
  if (processes_.count(key)) return;  // already watched (the same process under its inode)

  WatchedProcess process;
  process.key = key;
  process.pid = entry.pid;
  process.start_time_ticks = entry.stat.start_time_ticks;
  process.comm = entry.stat.comm;
  process.set_index = match->set_index;
  process.set_has_children = match->children;
  process.joined_via_ancestor = via_ancestor;
  process.config_generation = config_generation_;
  process.set_slot = metrics_->SetSlot(match->name);
  process.pidfd = std::move(pidfd);

  // EPOLLET: the first report is the exit (EPOLLIN), a later one with EPOLLHUP the reap;
  // level-triggered EPOLLIN would spin for as long as the process stays a zombie.
  if (!loop_->AddKeyed(process.pidfd.fd(), EPOLLIN | EPOLLET, key, &error)) {
    metrics_->CountError(error == ENOMEM || error == ENOSPC ? "epoll_limit" : "epoll_ctl");
    return;
  }
  metrics_->ProcessJoined(process.set_slot);
  auto [inserted, ignored] = processes_.emplace(key, std::move(process));
  WatchedProcess& watched = inserted->second;
  key_by_pid_[watched.pid] = key;

  if (IsZombie(entry.stat)) {
    // Already a zombie when first seen: its exit time is unknown. It counts as a zombie
    // (age from first sight, a lower bound) but yields no reap latency and no lifetime.
    watched.state = State::kZombie;
    watched.exit_time_known = false;
    watched.exit_unix_seconds = ClockSeconds(CLOCK_REALTIME);
    ReadZombieDetails(watched, &*verified);
    metrics_->ZombieAdded(watched.set_slot, watched.parent_label, watched.exit_unix_seconds);
    BoardAdd(watched);
  }
}

void Tracker::Rematch(WatchedProcess& process, const ProcessStat& stat) {
  const std::string pid_name = std::to_string(process.pid);
  UniqueFd directory(openat(procfs_.get(), pid_name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!directory) return;
  ProcessAttributes attributes;
  if (!ReadAttributes(directory.get(), stat, &attributes)) return;
  process.comm = stat.comm;
  process.config_generation = config_generation_;
  std::optional<MatchResult> match = sets_->Match(attributes);
  bool via_ancestor = false;
  if (!match && process.joined_via_ancestor) {
    // Descendants keep the membership they inherited, under the name they get now.
    match = MatchResult{process.set_index, sets_->NameForDescendant(process.set_index, attributes),
                        process.set_has_children};
    via_ancestor = true;
  }
  if (!match) {
    const int pid = process.pid;
    StopWatching(process);
    unmatched_[pid] = UnmatchedProcess{stat.start_time_ticks, stat.comm, pidfile_generation_,
                                       config_generation_, scan_number_};
    return;
  }
  const size_t new_slot = metrics_->SetSlot(match->name);
  process.set_index = match->set_index;
  process.set_has_children = match->children;
  process.joined_via_ancestor = via_ancestor;
  if (new_slot != process.set_slot) {
    // It became something else (exec, rename): it leaves the old set and joins the new
    // one, where its exit will be counted.
    metrics_->ProcessLeft(process.set_slot);
    process.set_slot = new_slot;
    metrics_->ProcessJoined(new_slot);
  }
}

void Tracker::StopWatching(WatchedProcess& process) {
  metrics_->ProcessLeft(process.set_slot);
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
  WatchedProcess& process = found->second;
  const int64_t now = MonotonicNanoseconds();
  // Deduplicate by state, never count events: EPOLLIN alone also arrives again when a
  // zombie is re-parented, and exit and reap can arrive in one event.
  if (events & (EPOLLHUP | EPOLLERR)) {
    if (process.state == State::kRunning) {
      HandleExit(process, now, ClockSeconds(CLOCK_BOOTTIME), ClockSeconds(CLOCK_REALTIME));
    }
    HandleReap(process, now);
    return;
  }
  if (events & EPOLLIN) {
    if (process.state == State::kRunning) {
      HandleExit(process, now, ClockSeconds(CLOCK_BOOTTIME), ClockSeconds(CLOCK_REALTIME));
    } else {
      HandleReparent(process);
    }
  }
}

void Tracker::HandleExit(WatchedProcess& process, int64_t monotonic_ns, double boot_seconds,
                         double unix_seconds) {
  process.state = State::kZombie;
  process.exit_time_known = true;
  process.exit_monotonic_ns = monotonic_ns;
  process.exit_boot_seconds = boot_seconds;
  process.exit_unix_seconds = unix_seconds;
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

void Tracker::HandleReap(WatchedProcess& process, int64_t monotonic_ns) {
  if (process.exit_time_known) {
    metrics_->ReapLatencyObserved(process.set_slot,
                                  static_cast<double>(monotonic_ns - process.exit_monotonic_ns) / 1e9);
    const double lifetime = process.exit_boot_seconds - static_cast<double>(process.start_time_ticks) /
                                                            static_cast<double>(ClockTicksPerSecond());
    metrics_->LifetimeObserved(process.set_slot, lifetime);
  }
  std::optional<int> wait_status;
  if (options_.features.exit_status) {
    if (auto info = process.pidfd.GetInfo(Pidfd::kInfoExit); info && info->has_exit)
      wait_status = info->exit_status;
  }
  if (!wait_status) wait_status = process.wait_status;
  if (wait_status) {
    const ExitReason reason = DescribeWaitStatus(*wait_status);
    metrics_->ExitCounted(process.set_slot, reason.reason, reason.code, ClockSeconds(CLOCK_REALTIME));
  } else {
    metrics_->ExitCounted(process.set_slot, "unknown", "", ClockSeconds(CLOCK_REALTIME));
  }
  metrics_->ZombieRemoved(process.set_slot, process.parent_label, process.exit_unix_seconds);
  BoardRemove(process);
  metrics_->ProcessLeft(process.set_slot);
  Forget(process.key);
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
