#include "tracker.h"

#include <sys/epoll.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>

#include "log.h"

namespace pidfd_exporter {
namespace {

bool IsGoneError(int error) {
  return error == ESRCH || error == ENOENT || error == EINVAL;
}

}  // namespace

std::unique_ptr<Tracker> Tracker::Create(EventLoop* loop, Metrics* metrics, const Config& config,
                                         TrackerOptions options, std::string* error) {
  auto reader = ProcessReader::Open(
      options.procfs_root,
      [metrics](std::string_view operation) { metrics->CountError(std::string(operation)); }, error);
  if (!reader) return nullptr;
  return std::unique_ptr<Tracker>(new Tracker(loop, metrics, config, std::move(options), std::move(reader)));
}

Tracker::Tracker(EventLoop* loop, Metrics* metrics, const Config& config, TrackerOptions options,
                 std::unique_ptr<ProcessReader> reader)
    : loop_(loop),
      metrics_(metrics),
      options_(std::move(options)),
      reader_(std::move(reader)),
      assigner_(config),
      accounting_(metrics) {
  metrics_->CreateFixedSets(assigner_.FixedNames());
  loop_->SetKeyedHandler([this](uint64_t key, uint32_t events) { OnPidfdEvent(key, events); });
  if (!options_.features.reap_events) reap_timer_id_ = loop_->AddDeadlineTimer([this] { OnReapTimer(); });
  PublishWatchedCount();
}

void Tracker::ArmReapTimer() {
  if (reap_timer_id_ < 0) return;
  if (auto next = reap_watch_.NextDeadline())
    loop_->ArmTimerAt(reap_timer_id_, *next);
  else
    loop_->DisarmTimer(reap_timer_id_);
}

// One round of reap checks: each due zombie is either rescheduled or reaped at the midpoint
// between its last zombie check and now (ReapWatch::FoundReaped).
void Tracker::OnReapTimer() {
  const int64_t now = MonotonicNanoseconds();
  const uint64_t delayed_before = reap_watch_.cap_reached();
  reap_watch_.TakeDue(now, &reap_due_);
  metrics_->ReapChecksMade(reap_due_.size(), reap_watch_.cap_reached() != delayed_before);
  // Keep the due keys found reaped; the others stay zombies.
  std::erase_if(reap_due_, [&](uint64_t key) {
    auto found = processes_.find(key);
    if (found == processes_.end()) return true;
    if (found->second.pidfd.IsReaped()) return false;
    reap_watch_.CheckedStillZombie(key, now);
    return true;
  });
  if (!reap_due_.empty()) DrainBeforeFoundReaps();
  for (uint64_t key : reap_due_) {
    auto found = processes_.find(key);
    if (found == processes_.end()) continue;  // settled by an event the drain handled
    const auto reap = reap_watch_.FoundReaped(key, now);
    HandleReap(found->second, reap ? reap->reap_ns : now, false);
  }
  ArmReapTimer();
}

void Tracker::DrainBeforeFoundReaps() {
  // Before 6.9 a reap is found by looking, and the connector may still hold events of the
  // process queued before its reap: its fork (a scan adopted it first), its rename. Handled
  // after its entry is forgotten, they would file its PID as a new process and a ghost would
  // count its exit a second time; handled first, they reach its entry.
  DrainConnector();
}

Tracker::~Tracker() = default;

void Tracker::ApplyConfig(const Config& config) {
  // Their slots may be removed below: count them now, with what is known.
  FlushParkedExits(INT64_MAX);
  assigner_.Apply(config);
  metrics_->SetMaxSets(config.max_sets);
  metrics_->CreateFixedSets(assigner_.FixedNames());
  // Parents before their children, so that descendants see their ancestors' new membership.
  // Processes adopted at their fork event have no start time read yet: they are the newest.
  std::vector<std::pair<std::pair<uint64_t, int64_t>, uint64_t>> order;
  order.reserve(processes_.size());
  for (const auto& [key, process] : processes_) {
    const uint64_t start = process.attributes.start_time_ticks;
    order.push_back({{start == 0 ? UINT64_MAX : start, process.adopted_monotonic_ns}, key});
  }
  std::sort(order.begin(), order.end());
  for (const auto& [position, key] : order) {
    auto found = processes_.find(key);
    if (found == processes_.end()) continue;
    WatchedProcess& process = found->second;
    // Read again: the new matchers may need attributes the old ones did not.
    if (!process.zombie && Reread(process)) continue;
    // A zombie (or a process gone mid-reload) is judged on what was last read of it.
    Reassign(process);
    if (!process.member) Forget(key);
  }
  // Metrics keeps every set that still has members or zombies (it counts them itself).
  const auto& origins = assigner_.Origins();
  metrics_->RemoveSets(std::set<std::string>(origins.begin(), origins.end()), {});
  ScheduleRescan();
}

Pidfd Tracker::OpenPidfd(int pid) {
  int error = 0;
  Pidfd pidfd = Pidfd::Open(pid, &error);
  if (pidfd.valid() || IsGoneError(error)) return pidfd;
  // Out of descriptors: counted, and the next scan or event tries again once some free up.
  metrics_->CountError(error == EMFILE || error == ENFILE ? "emfile" : "pidfd_open");
  LogDebug("pidfd_open failed", {{"pid", std::to_string(pid)}, {"err", strerror(error)}});
  return pidfd;
}

Tracker::WatchedProcess* Tracker::Adopt(Pidfd pidfd, ProcessAttributes attributes,
                                        const std::optional<Membership>& membership, bool fresh_fork) {
  uint64_t key = options_.features.pidfs_identity ? pidfd.Inode() : 0;
  if (key == 0) key = next_synthetic_key_++;
  key &= ~(1ull << 63);
  if (processes_.count(key)) return nullptr;  // already watched (the same process under its inode)

  // EPOLLET: the first report is the exit (EPOLLIN), a later one with EPOLLHUP the reap;
  // level-triggered EPOLLIN would spin for as long as the process stays a zombie.
  int error = 0;
  if (!loop_->AddKeyed(pidfd.fd(), EPOLLIN | EPOLLET, key, &error)) {
    metrics_->CountError(error == ENOMEM || error == ENOSPC ? "epoll_limit" : "epoll_ctl");
    return nullptr;
  }
  WatchedProcess process;
  process.key = key;
  process.pidfd = std::move(pidfd);
  process.attributes = std::move(attributes);
  process.discovered_scan = scan_number_;
  process.adopted_monotonic_ns = MonotonicNanoseconds();
  process.config_generation = assigner_.ConfigGeneration();
  WatchedProcess& watched = processes_.emplace(key, std::move(process)).first->second;
  key_by_pid_[watched.attributes.pid] = key;
  // It has a pidfd now: its exit is counted through it, never again from a ghost.
  ghosts_.erase(watched.attributes.pid);
  SetMembership(watched, membership, /*may_have_children=*/!fresh_fork);
  PublishWatchedCount();
  return &watched;
}

void Tracker::AdoptedAsZombie(WatchedProcess& process, const ProcessStat& stat) {
  // Its exit time is unknown: it counts as a zombie (age from first sight, a lower bound)
  // but yields no reap latency and no lifetime.
  process.zombie = Zombie{ExitStamp{MonotonicNanoseconds(), /*observed=*/false}, std::nullopt, std::nullopt};
  ReadZombieDetails(process, &stat);
  PublishZombie(process);
}

std::optional<Lineage> Tracker::LineageOf(int parent_pid,
                                          const std::unordered_map<int, int>& ancestors) const {
  // Walk up the parent chain (bounded: PID loops cannot happen, but a corrupt read could).
  int pid = parent_pid;
  for (int depth = 0; depth < 128 && pid > 1; ++depth) {
    if (auto watched = key_by_pid_.find(pid); watched != key_by_pid_.end()) {
      const WatchedProcess& ancestor = processes_.at(watched->second);
      if (ancestor.member) {
        if (auto lineage = SetAssigner::LineageOf(ancestor.member->membership)) return lineage;
      }
      pid = ancestor.attributes.parent_pid;
      continue;
    }
    auto parent = ancestors.find(pid);
    if (parent == ancestors.end()) break;
    pid = parent->second;
  }
  return std::nullopt;
}

void Tracker::Reassign(WatchedProcess& process) {
  process.config_generation = assigner_.ConfigGeneration();
  std::optional<Membership> previous;
  if (process.member) previous = process.member->membership;
  SetMembership(process,
                assigner_.Assign(process.attributes, LineageOf(process.attributes.parent_pid, {}), previous));
}

void Tracker::SetMembership(WatchedProcess& process, std::optional<Membership> membership,
                            bool may_have_children) {
  if (!membership) {
    if (process.member) {
      accounting_.ZombieGone(process.key);
      metrics_->ProcessLeft(process.member->slot);
      process.member.reset();
    }
    return;
  }
  const size_t slot = metrics_->SetSlot(membership->name, membership->origin);
  const bool had_children = process.member && process.member->membership.children;
  const bool joined = !process.member || process.member->slot != slot;
  if (joined) {
    // New here, or it became something else (exec, rename): it leaves the old set and joins
    // the new one, where its exit will be counted.
    if (process.member) metrics_->ProcessLeft(process.member->slot);
    metrics_->ProcessJoined(slot);
    if (oom_ && !process.zombie) NoteMemoryCgroup(process);
  }
  const bool gains_children = membership->children && !had_children;
  process.member = Member{std::move(*membership), slot};
  if (joined) PublishZombie(process);
  if (!gains_children) return;
  // Descendants forked before this process matched now belong to its set too: the next scan
  // looks at the unmatched ones again, and those held provisionally join now.
  assigner_.LineageGrew();
  // A process adopted at its own fork has no children yet: no walk on that hot path.
  if (may_have_children) JoinDescendantsOf(process);
}

void Tracker::JoinDescendantsOf(const WatchedProcess& process) {
  // Provisional processes (forked moments ago, no rename or exec yet) are not on the
  // unmatched list the scan re-examines, and a scan that finds them unmatched would file them
  // under the new lineage generation: they join here.
  const int pid = process.attributes.pid;
  const std::optional<Lineage> lineage = SetAssigner::LineageOf(process.member->membership);
  if (!lineage) return;
  for (auto& [key, other] : processes_) {
    if (other.member || other.zombie || other.attributes.parent_pid != pid) continue;
    SetMembership(other, assigner_.Descend(*lineage, other.attributes));
  }
}

bool Tracker::Reread(WatchedProcess& process) {
  const int pid = process.attributes.pid;
  auto read = reader_->Read(pid, assigner_.NeededAttributes(), process.attributes.start_time_ticks);
  if (!read || !reader_->Confirm(*read, process.pidfd, PidfdOpened::kBeforeRead)) return false;
  process.attributes = std::move(read->attributes);
  process.name_unknown = false;
  Reassign(process);
  if (!process.member && !connector_) {
    // Without the connector nothing needs a provisional pidfd.
    RememberUnmatched(pid, read->stat);
    Forget(process.key);
  }
  return true;
}

void Tracker::Forget(uint64_t key) {
  auto found = processes_.find(key);
  if (found == processes_.end()) return;
  reap_watch_.Remove(key);
  WatchedProcess& process = found->second;
  SetMembership(process, std::nullopt);
  loop_->Remove(process.pidfd.fd());
  if (auto by_pid = key_by_pid_.find(process.attributes.pid);
      by_pid != key_by_pid_.end() && by_pid->second == key)
    key_by_pid_.erase(by_pid);
  processes_.erase(found);
  PublishWatchedCount();
}

void Tracker::PublishWatchedCount() {
  metrics_->SetWatchedPidfds(static_cast<int64_t>(processes_.size()));
}

void Tracker::OnPidfdEvent(uint64_t key, uint32_t events) {
  auto found = processes_.find(key);
  if (found == processes_.end()) return;
  if (connector_ && !found->second.zombie && !found->second.connector_exit) {
    // The kernel queues the connector's exit event right after waking the pidfd: read it
    // first, so the exit time is the kernel's stamp rather than our wake-up.
    DrainConnector();
    found = processes_.find(key);
    if (found == processes_.end()) return;
  }
  if (!found->second.member) {
    // A provisional process ended. Its rename or exec, if any, was queued on the connector
    // before it exited: handle those first, then decide on its last identity.
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
  // Under load the parent may have reaped it between epoll_wait and now: its parent and
  // /proc entry are gone, and the EPOLLHUP is still to come. Settle both at once.
  if ((events & EPOLLIN) && !(events & EPOLLHUP) && process.pidfd.IsReaped()) events |= EPOLLHUP;
  // Deduplicate by state, never count events: EPOLLIN alone also arrives again when a
  // zombie is re-parented, and exit and reap can arrive in one event.
  if (events & (EPOLLHUP | EPOLLERR)) {
    HandleExitAndReap(process, now);
  } else if (events & EPOLLIN) {
    if (!process.zombie)
      HandleExit(process, now, /*reaped=*/false);
    else
      HandleReparent(process);
  }
}

bool Tracker::ResolveProvisionalExit(WatchedProcess& process) {
  // The pidfd woke before the exit event was handled: the exit record is queued already.
  if (process.name_unknown) {
    if (const TaskExitRecord* record = PeekExitRecord(process)) RecoverIdentity(process, *record);
  }
  if (process.name_unknown) {
    // It exec'd and was gone before its new name could be read: never guess a set.
    accounting_.UnattributedExit();
    Forget(process.key);
    return false;
  }
  Reassign(process);
  if (process.member) return true;
  Forget(process.key);
  return false;
}

void Tracker::HandleExit(WatchedProcess& process, int64_t monotonic_ns, bool reaped) {
  Zombie zombie;
  zombie.exit.monotonic_ns = monotonic_ns;
  // The connector stamped the exit in the kernel: more precise than our wake-up.
  if (process.connector_exit && process.connector_exit->timestamp_ns < monotonic_ns)
    zombie.exit.monotonic_ns = process.connector_exit->timestamp_ns;
  process.zombie = zombie;
  // Reaped already (exit and reap seen at once): neither the pidfd nor /proc has anything left
  // to say of it, and asking costs two failing system calls per process in a storm.
  if (!reaped) ReadZombieDetails(process, nullptr);
  if (oom_) ReadOomEvidence(process);
  PublishZombie(process);
  if (reap_timer_id_ >= 0) {
    // Seen unreaped at monotonic_ns (OnPidfdEvent checked IsReaped() before calling us).
    reap_watch_.Add(process.key, zombie.exit.monotonic_ns, monotonic_ns);
    ArmReapTimer();
  }
}

void Tracker::HandleExitAndReap(WatchedProcess& process, int64_t monotonic_ns) {
  const bool together = !process.zombie;
  if (together) HandleExit(process, monotonic_ns, /*reaped=*/true);
  HandleReap(process, ReapStamp(process, monotonic_ns, together), together);
}

int64_t Tracker::ReapStamp(const WatchedProcess& process, int64_t now, bool first_sight) {
  // With EPOLLHUP (6.9+) the wake-up is the reap. Without, a reap is only found by looking:
  // it happened after the last sight of the zombie (its exit, if it was never seen as one)
  // and before now, and the midpoint halves the worst error (ReapWatch::ReportedLatency).
  // That matters when the loop wakes late: a busy machine, a starved VM.
  if (reap_timer_id_ < 0 || !process.zombie || !process.zombie->exit.observed) return now;
  const int64_t exit_ns = process.zombie->exit.monotonic_ns;
  if (first_sight) return exit_ns + ReapWatch::ReportedLatency(exit_ns, exit_ns, now);
  const auto reap = reap_watch_.FoundReaped(process.key, now);
  return reap ? reap->reap_ns : now;
}

void Tracker::ReadZombieDetails(WatchedProcess& process, const ProcessStat* known_stat) {
  int parent_pid = -1;
  // 6.13+: the parent straight from the pidfd, no /proc read and no PID-reuse question.
  if (options_.features.get_info) {
    if (auto info = process.pidfd.GetInfo(Pidfd::kInfoPid); info && info->has_pid)
      parent_pid = info->parent_pid;
  }
  const bool status_from_proc = !options_.features.exit_status && options_.can_read_other_exit_codes;
  if (parent_pid < 0 || status_from_proc) {
    std::optional<ProcessStat> stat;
    if (known_stat)
      stat = *known_stat;
    else
      stat = reader_->ReadConfirmedStat(process.attributes.pid, process.attributes.start_time_ticks,
                                        process.pidfd);
    if (stat) {
      if (parent_pid < 0) parent_pid = stat->parent_pid;
      if (status_from_proc && stat->has_exit_code && stat->state == 'Z')
        process.zombie->proc_wait_status = static_cast<uint32_t>(stat->exit_code);
    }
  }
  if (parent_pid >= 0) process.attributes.parent_pid = parent_pid;
}

void Tracker::PublishZombie(const WatchedProcess& process) {
  if (!process.member || !process.zombie) return;
  ZombieView view;
  view.slot = process.member->slot;
  view.pid = process.attributes.pid;
  view.comm = process.attributes.comm;
  view.parent_pid = process.attributes.parent_pid;
  view.parent_label = ParentLabel(view.parent_pid);
  view.exit = process.zombie->exit;
  accounting_.ZombieAppeared(process.key, std::move(view));
}

std::string Tracker::ParentLabel(int parent_pid) const {
  if (parent_pid <= 0) return "unknown";
  if (connector_) {
    // A watched parent's name is kept current by exec and rename events: no /proc read (one
    // open, read and close per exit otherwise, 7% of the exporter's CPU in a fork storm).
    if (auto parent = key_by_pid_.find(parent_pid); parent != key_by_pid_.end()) {
      const WatchedProcess& watched = processes_.at(parent->second);
      // A reaped parent's PID may already be another process's (its pidfd event is pending).
      if (!watched.zombie && !watched.name_unknown && !watched.pidfd.IsReaped())
        return SanitizeLabelValue(watched.attributes.comm);
    }
    // So is an unmatched parent's (ForkedComm reads it there too): its entry follows its
    // renames and execs, and goes at its exit event and at its PID's next fork. A shell or
    // supervisor in no set that starts the set's processes costs no read per exit.
    if (auto parent = unmatched_.find(parent_pid); parent != unmatched_.end() && !parent->second.comm.empty())
      return SanitizeLabelValue(parent->second.comm);
  }
  auto comm = reader_->ReadComm(parent_pid);
  return comm ? SanitizeLabelValue(*comm) : "unknown";
}

void Tracker::HandleReparent(WatchedProcess& process) {
  ReadZombieDetails(process, nullptr);
  const int parent_pid = process.attributes.parent_pid;
  accounting_.ZombieReparented(process.key, parent_pid, ParentLabel(parent_pid));
}

std::optional<uint32_t> Tracker::WaitStatus(const WatchedProcess& process) const {
  ExitStatusSources sources;
  if (options_.features.exit_status) {
    if (auto info = process.pidfd.GetInfo(Pidfd::kInfoExit); info && info->has_exit)
      sources.pidfd_info = static_cast<uint32_t>(info->exit_status);
  }
  if (process.connector_exit) sources.connector = process.connector_exit->wait_status;
  if (process.zombie) sources.proc_stat = process.zombie->proc_wait_status;
  return DecideWaitStatus(sources);
}

void Tracker::HandleReap(WatchedProcess& process, int64_t monotonic_ns, bool exit_and_reap_together) {
  if (process.name_unknown) {
    if (const TaskExitRecord* record = PeekExitRecord(process)) RecoverIdentity(process, *record);
  }
  if (process.name_unknown || !process.member) {
    // It exec'd and was gone before its new name could be read: whatever it became, it is
    // no longer what joined this set. Never count it in a guessed set. (Named by its record
    // as a program no set wants, it left its set at the exec: nothing to count.)
    if (process.name_unknown) accounting_.UnattributedExit();
    Forget(process.key);
    return;
  }
  std::optional<ReapFacts> reap;
  if (process.zombie && process.zombie->exit.observed) {
    ReapFacts facts;
    facts.slot = process.member->slot;
    facts.exit = process.zombie->exit;
    facts.reaped_monotonic_ns = monotonic_ns;
    facts.exit_and_reap_seen_together = exit_and_reap_together;
    facts.exit_stamped_by_kernel =
        process.connector_exit && process.connector_exit->timestamp_ns <= monotonic_ns;
    facts.released_at_exit = process.connector_exit && process.connector_exit->parent_pid == 0;
    facts.fork_monotonic_ns = process.fork_monotonic_ns;
    facts.start_time_ticks = process.attributes.start_time_ticks;
    // Only when nothing else already says "released at the exit": a /proc read per parent.
    if (!facts.released_at_exit && !(exit_and_reap_together && !facts.exit_stamped_by_kernel)) {
      const int parent = process.connector_exit && process.connector_exit->parent_pid > 0
                             ? process.connector_exit->parent_pid
                             : process.attributes.parent_pid;
      facts.parent_ignores_children = reader_->IgnoresChildren(parent);
    }
    reap = facts;
  }
  const std::optional<uint32_t> status = WaitStatus(process);
  if (!status && connector_) {
    ParkExit(process.attributes.pid, ParkedExit{process.member->slot, IdentityOf(process, monotonic_ns), reap,
                                                MonotonicNanoseconds(), std::nullopt});
  } else {
    if (reap) accounting_.Reaped(*reap);
    CountExit(process.member->slot, status, IdentityOf(process, monotonic_ns));
  }
  Forget(process.key);
}

void Tracker::ParkExit(int pid, ParkedExit parked) {
  // One parked exit per PID: an older one under the same PID waited long enough.
  if (auto older = parked_exits_.find(pid); older != parked_exits_.end()) {
    if (older->second.reap) accounting_.Reaped(*older->second.reap);
    CountExit(older->second.slot, std::nullopt, std::move(older->second.identity));
    parked_exits_.erase(older);
  }
  parked_exits_.emplace(pid, std::move(parked));
}

bool Tracker::CompleteParkedExit(const ProcEvent& event) {
  auto found = parked_exits_.find(event.pid);
  if (found == parked_exits_.end()) return false;
  ParkedExit& parked = found->second;
  if (!EventOfParkedExit(parked, event)) return false;
  const auto stamp = static_cast<int64_t>(event.timestamp_ns);
  if (parked.reap) {
    ReapFacts& reap = *parked.reap;
    if (stamp < reap.exit.monotonic_ns) reap.exit.monotonic_ns = stamp;
    // Stamped after the reap (6.1 sends the event after waking the parent): not an exit time.
    reap.exit_stamped_by_kernel = stamp <= reap.reaped_monotonic_ns;
    reap.released_at_exit = event.parent_tgid == 0;
    accounting_.Reaped(reap);
  }
  CountExit(parked.slot, event.exit_code, std::move(parked.identity));
  parked_exits_.erase(found);
  return true;
}

bool Tracker::EventOfParkedExit(const ParkedExit& parked, const ProcEvent& event) const {
  // The stamp alone cannot say: before 6.15 do_exit() queues the exit event after
  // exit_notify() woke the parent, so the event can be stamped after the reap we saw. What can
  // take the event is the PID's next process, and its fork event is queued before its exit
  // event (proc_fork_connector() runs before the child can run): without such a fork since
  // parking, the event is the parked process's (docs/architecture.md, "PID reuse").
  if (!parked.successor_forked_ns) return true;
  const auto stamp = static_cast<int64_t>(event.timestamp_ns);
  if (stamp < *parked.successor_forked_ns) return true;  // the next process did not exist yet
  // Both may have exited. Only a next process we watch, still running, rules itself out;
  // otherwise the parked exit stays unknown rather than take another process's status.
  auto successor = key_by_pid_.find(event.pid);
  return successor != key_by_pid_.end() && !processes_.at(successor->second).pidfd.HasExited();
}

void Tracker::FlushParkedExits(int64_t parked_before) {
  for (auto parked = parked_exits_.begin(); parked != parked_exits_.end();) {
    if (parked->second.parked_ns >= parked_before) {
      ++parked;
      continue;
    }
    if (parked->second.reap) accounting_.Reaped(*parked->second.reap);
    CountExit(parked->second.slot, std::nullopt, std::move(parked->second.identity));
    parked = parked_exits_.erase(parked);
  }
}

const TaskExitRecord* Tracker::PeekExitRecord(const WatchedProcess& process) {
  if (!exit_records_) return nullptr;
  return exit_records_->Peek(process.attributes.pid, WaitStatus(process));
}

bool Tracker::RecoverIdentity(WatchedProcess& process, const TaskExitRecord& record) {
  // The record names the program; matchers that read more (exe, cmdline, user, cgroup) cannot
  // be answered from it.
  if (!assigner_.NameAlonePlaces()) return false;
  process.name_unknown = false;
  process.attributes.comm = record.comm;
  Reassign(process);                   // a zombie moves with its membership
  if (LogEnabled(LogLevel::kDebug)) {  // one per exec'd process in a storm: no strings unless shown
    LogDebug("Exec'd process named by its exit record",
             {{"pid", std::to_string(process.attributes.pid)}, {"member", process.member ? "yes" : "no"}});
  }
  return true;
}

}  // namespace pidfd_exporter
