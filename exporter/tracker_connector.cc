// The connector path of the Tracker (tracker.h): forks, execs, renames and exits as the proc
// connector reports them, and the taskstats exit records that name exec'd processes that
// vanished (docs/architecture.md, "Proc connector" and "Exit records").
#include <poll.h>
#include <sys/epoll.h>
#include <time.h>

#include <algorithm>

#include "log.h"
#include "procfs.h"
#include "tracker.h"

namespace pidfd_exporter {
namespace {

// Whether a process /proc says started at `start_time_ticks` (boot time, truncated to clock
// ticks) started before a fork the connector stamped at `forked_ns` (CLOCK_MONOTONIC, which
// lags boot time by the time spent suspended). A millisecond covers reading the two clocks.
bool StartedBeforeFork(uint64_t start_time_ticks, int64_t forked_ns) {
  if (start_time_ticks == 0) return false;  // not read
  timespec boot{};
  clock_gettime(CLOCK_BOOTTIME, &boot);
  const int64_t boot_ns = static_cast<int64_t>(boot.tv_sec) * 1000000000 + boot.tv_nsec;
  const int64_t fork_boot_ns = forked_ns + (boot_ns - MonotonicNanoseconds());
  const int64_t tick_ns = 1000000000 / ClockTicksPerSecond();
  const int64_t latest_start_ns = (static_cast<int64_t>(start_time_ticks) + 1) * tick_ns;
  constexpr int64_t kClockReadingSlackNs = 1000000;
  return latest_start_ns + kClockReadingSlackNs < fork_boot_ns;
}

}  // namespace

void Tracker::AttachConnector(std::unique_ptr<ProcConnector> connector) {
  connector_ = std::move(connector);
  loop_->AddFd(connector_->fd(), EPOLLIN, [this](uint32_t) { DrainConnector(); });
}

void Tracker::AttachTaskstats(std::unique_ptr<TaskstatsListener> listener) {
  // Not on epoll: records matter only next to their exit events, so they are read when the
  // connector's events ask for them (no second wake-up per exit on the host).
  if (options_.features.exit_resources) {
    exit_resources_ = std::make_unique<ExitResources>([this](size_t slot, const ProcessResources& resources) {
      accounting_.ExitResourcesCounted(slot, resources);
    });
    resources_timer_id_ = loop_->AddDeadlineTimer([this] { OnResourcesTimer(); });
  }
  exit_records_ = std::make_unique<ExitRecordBook>(
      std::move(listener),
      [this](std::string_view operation) { metrics_->CountError(std::string(operation)); },
      [this](const TaskExitRecord& record, int64_t now_ns) {
        if (exit_resources_) exit_resources_->RecordRead(record, now_ns);
      });
}

bool Tracker::AttachFinalRuntimeProbe(std::unique_ptr<FinalRuntimeProbe> probe) {
  if (!exit_resources_) return false;
  final_runtime_probe_ = std::move(probe);
  exit_resources_->ExpectFinalRuntimes(
      [this](size_t slot, const FinalCpu& cpu) { accounting_.ExitFinalCpuCounted(slot, cpu); });
  return true;
}

void Tracker::DrainConnector() {
  if (!connector_ || draining_connector_) return;
  draining_connector_ = true;
  // Every exit on the host comes through here: reading the probe's ring with them keeps it from
  // filling (it wakes nobody by itself), and costs no system call.
  if (final_runtime_probe_) DrainFinalRuntimes();
  // Bounded rounds: under a fork storm the loop must still get to pidfds and scrapes;
  // the socket stays readable and epoll calls back.
  for (int round = 0; round < 16; ++round) {
    connector_batch_.Clear();
    std::string error;
    const ProcConnector::ReceiveStatus status = connector_->Receive(&connector_batch_, &error);
    metrics_->ConnectorMessagesReceived(connector_batch_.events.size() + connector_batch_.acks.size());
    for (const ProcEvent& event : connector_batch_.events) {
      // A task's exit record is queued before its exit event is even sent: whenever records
      // are read, every exit event received so far finds its record among them.
      std::optional<TaskExitRecord> record;
      if (exit_records_ && event.kind == ProcEvent::Kind::kExit) record = RecordForExit(event);
      OnConnectorEvent(event, record ? &*record : nullptr);
    }
    if (connector_batch_.lost || status == ProcConnector::ReceiveStatus::kOverflow) {
      // Events were dropped: only a full /proc scan can tell what was missed.
      metrics_->CountError("connector_overflow");
      next_scan_full_ = true;
      ScheduleRescan();
      FlushParkedExits(INT64_MAX);  // their events may be among the lost
      if (exit_records_) exit_records_->DropAll();
    }
    if (connector_batch_.drained_after_loss) {
      // Losses late in the overflow raised no ENOBUFS of their own (ProcConnector::Receive).
      next_scan_full_ = true;
      ScheduleRescan();
    }
    if (status == ProcConnector::ReceiveStatus::kError) {
      metrics_->CountError("connector_receive");
      LogWarn("Proc connector receive failed", {{"err", error}});
      break;
    }
    if (status == ProcConnector::ReceiveStatus::kWouldBlock ||
        status == ProcConnector::ReceiveStatus::kDrained) {
      if (exit_records_) exit_records_->PairIfBacklogged();
      // Read empty well after they were parked: their exit events are not coming.
      if (!parked_exits_.empty()) FlushParkedExits(MonotonicNanoseconds() - kParkedExitWaitNs);
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

bool Tracker::SettleStale(int pid, int64_t forked_ns) {
  auto stale = key_by_pid_.find(pid);
  if (stale == key_by_pid_.end()) return true;
  WatchedProcess& old = processes_.at(stale->second);
  // Meant as the process of an earlier fork of this PID, which was reaped before this fork:
  // a pidfd opened after this fork (both on CLOCK_MONOTONIC), or one still unreaped now (a
  // PID is free only once reaped), is this fork's process.
  const bool meant_earlier = old.fork_monotonic_ns && *old.fork_monotonic_ns < forked_ns;
  const bool reaped = old.pidfd.IsReaped();
  if (meant_earlier && (old.adopted_monotonic_ns > forked_ns || !reaped)) {
    SettleMistakenIdentity(old, forked_ns);
    return true;
  }
  if (!reaped || FoundBeforeItsForkEvent(old, forked_ns)) {
    // This fork's own process, which a scan found first: its pidfd reports its end. A later
    // fork of this PID is another process's.
    old.adopted_by_scan = false;
    return false;
  }
  // The PID was handed out again, so the process we hold under it was reaped; its pidfd
  // event may still be queued behind this connector event: settle it now.
  if (!old.member) {
    Forget(old.key);
    return true;
  }
  // It was reaped before this fork could take its PID: no later than the fork's stamp.
  HandleExitAndReap(old, std::min(MonotonicNanoseconds(), forked_ns));
  return true;
}

bool Tracker::FoundBeforeItsForkEvent(const WatchedProcess& held, int64_t forked_ns) {
  // A scan reads a fresh child while the event of its fork is still queued; by the time that
  // event is handled, the child may have exited and been reaped. Taken for an earlier process
  // of its PID, it was counted here and its fork remembered as a ghost, whose exit event
  // counted it again. An earlier process shows itself: adopted at a fork event or an exec of
  // its own, its exit event already handled (a fork's event is queued before its child runs,
  // so the child's exit event comes after it), or started before this fork.
  if (!held.adopted_by_scan || held.connector_exit || held.exit_event_while_running) return false;
  return !StartedBeforeFork(held.attributes.start_time_ticks, forked_ns);
}

void Tracker::SettleMistakenIdentity(WatchedProcess& held, int64_t forked_ns) {
  // We opened it at the fork event of the process we meant, after that one was reaped and a
  // sibling got its PID (the parent check of PIDFD_GET_INFO cannot tell siblings apart).
  // Whatever the events of the process we meant did to this entry (its rename, its set) was
  // right for it. Its exit event came while "its" pidfd ran (set aside), or after this pidfd's
  // process exited too (taken as the entry's), or (6.1 sends it after the reap) is to come.
  metrics_->CountError("pid_reused_before_pidfd_open");
  if (held.member) {
    const size_t slot = held.member->slot;
    const std::optional<ConnectorExit>& exit_event =
        held.exit_event_while_running ? held.exit_event_while_running : held.connector_exit;
    if (exit_event) {
      ClaimExitResources(held.attributes.pid, exit_event->wait_status, slot);
      accounting_.ExitWithoutPidfd(slot, exit_event->wait_status);
    } else {
      ParkExit(held.attributes.pid, ParkedExit{slot, IdentityOf(held, MonotonicNanoseconds()), std::nullopt,
                                               MonotonicNanoseconds(), forked_ns});
    }
  }
  // Its next process is the fork being handled: adopted afresh from it.
  Forget(held.key);
}

std::optional<std::string> Tracker::ForkedComm(int parent_pid) {
  // Our tables hold user-space processes only, kept current by comm and exec events.
  if (auto parent = key_by_pid_.find(parent_pid); parent != key_by_pid_.end())
    return processes_.at(parent->second).attributes.comm;
  if (auto parent = unmatched_.find(parent_pid); parent != unmatched_.end()) return parent->second.comm;
  return reader_->NameForkedFrom(parent_pid);
}

void Tracker::OnFork(int child_pid, int parent_pid, uint64_t timestamp_ns) {
  unmatched_.erase(child_pid);
  ghosts_.erase(child_pid);
  const bool settled = SettleStale(child_pid, static_cast<int64_t>(timestamp_ns));
  // After SettleStale, which may have parked the exit it settled: this fork gave that PID to
  // its next process. The first such fork is the one that counts (EventOfParkedExit).
  if (auto parked = parked_exits_.find(child_pid);
      parked != parked_exits_.end() && !parked->second.successor_forked_ns)
    parked->second.successor_forked_ns = static_cast<int64_t>(timestamp_ns);
  if (!settled) return;
  if (FileForkAsUnmatched(child_pid, parent_pid, static_cast<int64_t>(timestamp_ns))) return;
  // A kernel thread (kthreadd's fork) is never watched, nor remembered as a ghost.
  std::optional<std::string> comm = ForkedComm(parent_pid);
  if (!comm) return;
  const size_t watched_before = processes_.size();
  if (assigner_.NameAlonePlaces() && options_.features.get_info)
    AdoptFromEvents(child_pid, parent_pid, *comm, static_cast<int64_t>(timestamp_ns), /*fresh_fork=*/true);
  else
    DiscoverPid(child_pid, /*provisional_allowed=*/true);
  if (processes_.size() > watched_before || key_by_pid_.count(child_pid)) return;
  // Reaped before we could open it (or out of descriptors): remember what a fork inherits,
  // its parent's name, so that its exit event can still be counted.
  RememberGhost(child_pid, parent_pid, std::move(*comm));
}

bool Tracker::FileForkAsUnmatched(int child_pid, int parent_pid, int64_t forked_ns) {
  if (!assigner_.ForkMatchesAsItsParent()) return false;
  auto parent = unmatched_.find(parent_pid);
  if (parent == unmatched_.end()) return false;
  const UnmatchedProcess& verdict = parent->second;
  // Judged under the running config, pidfiles and lineage: an unmatched parent has no
  // children: true ancestor, so its fork inherits no set either.
  if (verdict.config_generation != assigner_.ConfigGeneration() ||
      verdict.pidfile_generation != assigner_.PidfileGeneration() ||
      verdict.lineage_generation != assigner_.LineageGeneration())
    return false;
  UnmatchedProcess child = verdict;
  child.start_time_ticks = 0;  // not read: a full scan reads it
  child.parent_pid = parent_pid;
  child.last_seen_scan = scan_number_;
  child.forked_ns = forked_ns;
  unmatched_[child_pid] = std::move(child);
  return true;
}

Tracker::Adoption Tracker::AdoptFromEvents(int pid, int parent_pid, const std::string& comm,
                                           int64_t forked_ns, bool fresh_fork) {
  // The matchers look at the comm alone; a fork has its parent's comm, and a later exec or
  // rename arrives as its own event: the name needs no /proc read on these hot paths.
  const int64_t before_open = MonotonicNanoseconds();
  Pidfd pidfd = OpenPidfd(pid);
  if (!pidfd.valid()) return Adoption::kNotOpened;
  // The parent the kernel names must be the one of the events, else the PID was reaped and
  // handed out again before we opened it: trust nothing then. A sibling that took the PID is
  // told apart when its own fork event comes (SettleStale, with the stamps below).
  if (ParentBehind(pid, pidfd) != parent_pid) return Adoption::kRefused;
  ProcessAttributes attributes;
  attributes.pid = pid;
  attributes.parent_pid = parent_pid;
  attributes.comm = comm;
  std::optional<Membership> membership = assigner_.Assign(attributes, LineageOf(parent_pid, {}));
  WatchedProcess* adopted = Adopt(std::move(pidfd), std::move(attributes), membership, fresh_fork);
  if (!adopted) return Adoption::kRefused;
  adopted->fork_monotonic_ns = forked_ns;
  // When the pidfd was opened, at the latest: SettleStale compares it with later forks.
  adopted->adopted_monotonic_ns = before_open;
  return Adoption::kAdopted;
}

std::optional<int> Tracker::ParentBehind(int pid, const Pidfd& pidfd) {
  if (options_.features.get_info) {
    auto info = pidfd.GetInfo(Pidfd::kInfoPid);
    if (!info || !info->has_pid) return std::nullopt;
    return info->parent_pid;
  }
  // Before 6.13: the stat of the PID, read after the pidfd was opened and confirmed by it.
  auto read = reader_->Read(pid, assigner_.NeededAttributes(), std::nullopt);
  if (!read || !reader_->Confirm(*read, pidfd, PidfdOpened::kBeforeRead)) return std::nullopt;
  return read->stat.parent_pid;
}

void Tracker::DiscoverPid(int pid, bool provisional_allowed) {
  Pidfd pidfd = OpenPidfd(pid);
  if (!pidfd.valid()) return;
  auto read = reader_->Read(pid, assigner_.NeededAttributes(), std::nullopt);
  // Read by PID after pidfd_open: ours only if the pidfd was still not reaped afterwards.
  if (!read || !reader_->Confirm(*read, pidfd, PidfdOpened::kBeforeRead)) return;
  std::optional<Membership> membership =
      assigner_.Assign(read->attributes, LineageOf(read->stat.parent_pid, {}));
  if (!membership && !provisional_allowed) {
    RememberUnmatched(pid, read->stat);
    return;
  }
  // A zombie found here exited moments ago: its pidfd reports the exit right after the
  // registration and the connector's exit event gives the exact time.
  Adopt(std::move(pidfd), std::move(read->attributes), membership, /*fresh_fork=*/provisional_allowed);
}

void Tracker::RememberGhost(int child_pid, int parent_pid, std::string comm) {
  Ghost ghost;
  ghost.parent_pid = parent_pid;
  ghost.created_scan = scan_number_;
  ghost.comm = std::move(comm);
  if (auto parent = key_by_pid_.find(parent_pid); parent != key_by_pid_.end()) {
    const WatchedProcess& watched_parent = processes_.at(parent->second);
    if (watched_parent.member) ghost.lineage = SetAssigner::LineageOf(watched_parent.member->membership);
    if (ghost.lineage) ghost.inherited_attributes = watched_parent.attributes;
  }
  ghosts_[child_pid] = std::move(ghost);
}

void Tracker::OnExecOrComm(int pid, const std::string* new_comm) {
  if (auto ghost = ghosts_.find(pid); ghost != ghosts_.end()) {
    if (new_comm) ghost->second.comm = *new_comm;
    ghost->second.exec_seen = new_comm == nullptr;
    return;
  }
  auto watched = key_by_pid_.find(pid);
  if (watched == key_by_pid_.end()) {
    OnUnwatchedExecOrComm(pid, new_comm);
    return;
  }
  WatchedProcess& process = processes_.at(watched->second);
  if (process.zombie) return;
  if (assigner_.NameAlonePlaces()) {
    // Only the name matters: a rename carries it, an exec needs one small read.
    std::optional<std::string> comm;
    if (new_comm) {
      comm = *new_comm;
    } else {
      comm = reader_->ReadComm(pid);
      if (comm && process.pidfd.IsReaped()) comm.reset();  // read from a recycled PID
    }
    process.name_unknown = !comm;
    if (!comm) return;
    process.attributes.comm = *comm;
    Reassign(process);
    return;
  }
  auto read = reader_->Read(pid, assigner_.NeededAttributes(), process.attributes.start_time_ticks);
  if (read && reader_->Confirm(*read, process.pidfd, PidfdOpened::kBeforeRead)) {
    process.attributes = std::move(read->attributes);
  } else if (new_comm) {
    process.attributes.comm = *new_comm;  // gone already, but the event carries the new name
  } else {
    process.name_unknown = true;
    return;
  }
  process.name_unknown = false;
  Reassign(process);
}

void Tracker::OnUnwatchedExecOrComm(int pid, const std::string* new_comm) {
  // Not watched: it matched nothing so far. Something it is matched on changed.
  const bool name_alone = assigner_.NameAlonePlaces();
  auto known = unmatched_.find(pid);
  const int parent_pid = known != unmatched_.end() ? known->second.parent_pid : 0;
  if (name_alone && known != unmatched_.end()) {
    // Comm-only matchers: decide from the rename's name, or the exec'd program's comm (one
    // small read), and open a pidfd only when the new name places it. Unreadable (gone
    // already): the path below files its exit.
    std::optional<std::string> comm;
    if (new_comm)
      comm = *new_comm;
    else
      comm = reader_->ReadComm(pid);
    ProcessAttributes attributes;
    attributes.pid = pid;
    attributes.parent_pid = parent_pid;
    if (comm) attributes.comm = *comm;
    if (comm && !assigner_.Assign(attributes, LineageOf(parent_pid, {}))) {
      known->second.comm = *comm;
      return;
    }
    // A child filed unmatched at its fork renamed itself into a set: the event has all the
    // matchers need, and the entry keeps the fork's stamp, by which SettleStale tells a
    // sibling that took the PID since apart (before 6.13 too, where the parent check reads
    // /proc). It may have forked since, so it may have children (fresh_fork false).
    const std::optional<int64_t> forked_ns = known->second.forked_ns;
    if (new_comm && forked_ns) {
      unmatched_.erase(known);
      const Adoption adoption = AdoptFromEvents(pid, parent_pid, *new_comm, *forked_ns, /*fresh_fork=*/false);
      if (adoption == Adoption::kAdopted) return;
      // Reaped (or out of descriptors): DiscoverPid could not open it either. Its exit event,
      // queued behind this one, is counted under the rename's name.
      if (adoption == Adoption::kNotOpened) {
        RememberRenamerAsGhost(pid, parent_pid, new_comm);
        return;
      }
    }
  }
  unmatched_.erase(pid);
  DiscoverPid(pid, /*provisional_allowed=*/false);
  // A ghost holds a name alone: it can stand for a process only where the name is all the
  // matchers need (and, after an exec, an exit record will give that name).
  if (key_by_pid_.count(pid) || !name_alone || (!new_comm && !exit_records_)) return;
  // Read unmatched under another name than the one this rename placed: not the process that
  // renamed, but the PID's next one (the renamer was reaped and its PID handed out before this
  // event was handled; forks of unmatched processes hold no pidfd to pin it). The renamer's exit
  // event is still to come: the ghost counts it.
  if (auto read = unmatched_.find(pid);
      read != unmatched_.end() && (!new_comm || read->second.comm == *new_comm))
    return;
  RememberRenamerAsGhost(pid, parent_pid, new_comm);
}

void Tracker::RememberRenamerAsGhost(int pid, int parent_pid, const std::string* new_comm) {
  // Gone before its pidfd could be opened (or out of descriptors: then it lives on, and the
  // ghost expires after the next scan, which watches it). Its exit event, queued behind this
  // one when it is gone, counts it: under a rename's name, or under the name its exit record
  // gives after an exec.
  Ghost ghost;
  ghost.parent_pid = parent_pid;
  ghost.created_scan = scan_number_;
  if (new_comm) ghost.comm = *new_comm;
  ghost.exec_seen = new_comm == nullptr;
  ghosts_[pid] = std::move(ghost);
}

void Tracker::OnConnectorExit(const ProcEvent& event, const TaskExitRecord* record) {
  if (!parked_exits_.empty() && CompleteParkedExit(event)) return;
  auto watched = key_by_pid_.find(event.pid);
  if (watched == key_by_pid_.end()) {
    // Gone, or (a leader thread's own exit) unknown to us from now on: a scan reads it then.
    unmatched_.erase(event.pid);
    OnGhostExit(event.pid, event, record);
    return;
  }
  WatchedProcess& process = processes_.at(watched->second);
  if (!process.zombie) {
    // The leader thread's own exit is reported with pid == tgid, also when other threads
    // still run (it exited first, or another thread's execve replaced it): the process lives
    // on, and its pidfd is not readable yet. Such an event says nothing about the process's
    // exit (docs/architecture.md, "Thread leaders"); the process's real end, when a non-leader
    // thread is the last, comes only as a thread event and through the pidfd. Kept aside: when
    // this pidfd turns out to be the PID's next process, it was the exit of the one we meant.
    if (!process.pidfd.HasExited()) {
      process.exit_event_while_running =
          ConnectorExit{static_cast<int64_t>(event.timestamp_ns), event.exit_code, event.parent_tgid};
      return;
    }
  }
  NoteConnectorExit(process, event);
  // It exec'd and its new name was gone before we could read it: the record has it.
  if (process.name_unknown && record) RecoverIdentity(process, *record);
}

void Tracker::NoteConnectorExit(WatchedProcess& process, const ProcEvent& event) {
  const auto stamp = static_cast<int64_t>(event.timestamp_ns);
  // The kernel names no parent when the task was already released when it reported the exit:
  // the parent had it auto-reaped (SIGCHLD ignored, SA_NOCLDWAIT).
  process.connector_exit = ConnectorExit{stamp, event.exit_code, event.parent_tgid};
  if (!process.zombie) return;
  ExitStamp& exit = process.zombie->exit;
  if (exit.observed && stamp < exit.monotonic_ns) {
    // The pidfd woke us first; the connector's in-kernel stamp is the true exit time.
    exit.monotonic_ns = stamp;
    PublishZombie(process);
  } else if (!exit.observed && stamp <= process.adopted_monotonic_ns) {
    // A scan found it already a zombie (exit time unknown) while its exit event was still
    // queued. An exit stamped before the adoption is this process's (its PID could not be
    // reused while we held it as a zombie): the kernel's stamp is its exit time.
    exit = ExitStamp{stamp, /*observed=*/true};
    PublishZombie(process);
  }
}

void Tracker::OnGhostExit(int pid, const ProcEvent& event, const TaskExitRecord* record) {
  auto found = ghosts_.find(pid);
  if (found == ghosts_.end()) return;
  Ghost ghost = std::move(found->second);
  ghosts_.erase(found);
  if (ghost.exec_seen && record && assigner_.NameAlonePlaces()) {
    // The name it died with, after an exec whose new name nobody read.
    ghost.comm = record->comm;
    ghost.exec_seen = false;
  }
  if (ghost.exec_seen) {
    accounting_.UnattributedExit();
    return;
  }
  ProcessAttributes attributes;
  attributes.pid = pid;
  attributes.parent_pid = ghost.parent_pid;
  attributes.comm = ghost.comm;
  std::optional<Membership> membership = assigner_.Assign(attributes, std::nullopt);
  if (!membership && ghost.lineage) {
    // A descendant by lineage keeps its set, under the name it has now.
    ProcessAttributes named = std::move(ghost.inherited_attributes);
    named.pid = pid;
    named.parent_pid = ghost.parent_pid;
    named.comm = ghost.comm;
    membership = assigner_.Descend(*ghost.lineage, named);
  }
  if (!membership) return;
  // A member that ended before any pidfd could be opened: its exit counts (reason and code
  // from the event), without a reap latency.
  const size_t slot = metrics_->SetSlot(membership->name, membership->origin);
  metrics_->ProcessJoined(slot);
  metrics_->ProcessLeft(slot);
  ClaimExitResources(pid, event.exit_code, slot);
  accounting_.ExitWithoutPidfd(slot, event.exit_code);
}

std::optional<TaskExitRecord> Tracker::RecordForExit(const ProcEvent& event) {
  const ExitEventKey exit{event.pid, event.tgid, event.parent_tgid, event.exit_code};
  // A record is needed only to name an exec'd process that vanished; every other exit event
  // is noted, and paired with its record later, in a batch, off the path of fresh forks.
  bool needed = false;
  if (!event.IsThreadEvent() && assigner_.NameAlonePlaces()) {
    if (auto watched = key_by_pid_.find(event.pid); watched != key_by_pid_.end())
      needed = processes_.at(watched->second).name_unknown;
    else if (auto ghost = ghosts_.find(event.pid); ghost != ghosts_.end())
      needed = ghost->second.exec_seen;
  }
  if (!needed) {
    exit_records_->Note(exit);
    return std::nullopt;
  }
  return exit_records_->Take(exit);
}

}  // namespace pidfd_exporter
