// Tracker: the table of watched processes and the routing of what happens to them. Scan
// results (tracker_scan.cc), connector events (tracker_connector.cc) and pidfd readiness
// (tracker.cc) arrive here and are handed to the units that decide:
//   ProcessReader   — what /proc says about a PID, confirmed against its pidfd;
//   SetAssigner     — which set a process belongs to (an optional Membership);
//   ExitRecordBook  — taskstats exit records waiting for their exit events;
//   ExitAccounting  — the only writer of exits, reap latency, lifetime and zombies.
// The tracker itself writes only membership (pidfd_processes, starts) and the watched count.
// A process's life: discovered → assigned → pidfd opened and confirmed → watched → exited
// (zombie) → reaped (docs/architecture.md). Everything runs on the event-loop thread except
// Zombies() and FirstScanDone(), which HTTP threads may call. It never blocks: /proc reads are
// small files, and a process that vanishes mid-read is simply dropped.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.h"
#include "event_loop.h"
#include "exit_accounting.h"
#include "exit_record_book.h"
#include "exit_resources.h"
#include "final_runtime_probe.h"
#include "metrics.h"
#include "oom_attribution.h"
#include "pidfd.h"
#include "proc_connector.h"
#include "process_reader.h"
#include "reap_watch.h"
#include "set_assigner.h"
#include "status_page.h"
#include "taskstats.h"

namespace pidfd_exporter {

struct TrackerOptions {
  std::string procfs_root = "/proc";
  KernelFeatures features;
  // Whether /proc/PID/stat field 52 (exit status of a zombie) is readable for every
  // process: root or CAP_SYS_PTRACE. Without it the field reads 0 for other users.
  bool can_read_other_exit_codes = false;
};

class Tracker {
 public:
  // `loop` and `metrics` must outlive the tracker. Fails (nullptr, *error) when the
  // procfs root cannot be opened.
  static std::unique_ptr<Tracker> Create(EventLoop* loop, Metrics* metrics, const Config& config,
                                         TrackerOptions options, std::string* error);
  ~Tracker();

  // --- event-loop thread ---
  // Full /proc reconciliation: discovers new processes, re-matches changed ones.
  void Scan();
  // Readiness of the pidfd registered under `key`.
  void OnPidfdEvent(uint64_t key, uint32_t events);
  // Takes the subscribed proc connector: from now on forks, execs, renames and exits are
  // seen as they happen, and the scan only reconciles.
  void AttachConnector(std::unique_ptr<ProcConnector> connector);
  // Reads and handles everything the connector has queued.
  void DrainConnector();
  // Takes the registered taskstats listener (after AttachConnector): each exit record names the
  // task as it died, so a process that exec'd and was reaped before its new name could be read
  // is still placed in its set, when every matcher looks at the name alone.
  void AttachTaskstats(std::unique_ptr<TaskstatsListener> listener);
  // Takes the loaded eBPF probe (after AttachTaskstats): the CPU each process used after its
  // exit record is counted once the kernel frees it. False (the probe is dropped) without exit
  // resources.
  bool AttachFinalRuntimeProbe(std::unique_ptr<FinalRuntimeProbe> probe);
  // Takes the OOM attribution sources (tracker_exit_counts.cc): SIGKILL exits are then counted as
  // oom_killed when the OOM killer sent the signal.
  void AttachOomAttribution(std::unique_ptr<OomAttribution> oom) { oom_ = std::move(oom); }
  // Whether exit records can name a process under the current config (SetAssigner::NameAlonePlaces).
  bool ExitRecordsCanName() const { return assigner_.NameAlonePlaces(); }
  // Swaps in a new, already validated config at once: every watched process is assigned
  // again (moving between sets, or no longer watched; lineage kept while its set exists),
  // the series of sets the config no longer produces disappear, counters of the others are
  // kept, and processes that matched nothing are looked at again by a scan scheduled at once.
  void ApplyConfig(const Config& config);

  // --- any thread ---
  bool FirstScanDone() const { return first_scan_done_.load(std::memory_order_acquire); }
  // The current zombies, oldest first.
  std::vector<StatusZombie> Zombies() const { return accounting_.Zombies(); }

 private:
  // The connector's exit event of a watched process.
  struct ConnectorExit {
    int64_t timestamp_ns = 0;  // in-kernel CLOCK_MONOTONIC stamp
    uint32_t wait_status = 0;
    int parent_pid = 0;  // 0: the kernel had released it already (auto-reaping parent)
  };
  struct Zombie {
    ExitStamp exit;
    std::optional<uint32_t> proc_wait_status;  // /proc stat field 52, read while a zombie
    // Its memory cgroup's OOM kill count, read while a zombie after a SIGKILL (the cgroup is
    // unreadable after the reap).
    std::optional<CgroupOomReading> oom_cgroup;
  };
  struct Member {
    Membership membership;
    size_t slot = 0;  // its set's Metrics slot
  };
  struct WatchedProcess {
    uint64_t key = 0;  // pidfs inode, or a counter on kernels without pidfs
    Pidfd pidfd;
    // The latest read: pid, parent (the zombie's current parent once it exited), start time
    // (0 until read, for processes adopted at a fork event) and comm, plus what matchers need.
    ProcessAttributes attributes;
    std::optional<int64_t> fork_monotonic_ns;  // the connector's fork stamp, when adopted at it
    // Found by a /proc scan, which may have run before the connector's event of its fork was
    // handled (FoundBeforeItsForkEvent).
    bool adopted_by_scan = false;
    int64_t adopted_monotonic_ns = 0;
    uint64_t discovered_scan = 0;
    uint64_t config_generation = 0;
    // nullopt: provisional. It was forked while the connector watched and matched nothing yet:
    // its pidfd is held until it execs or renames into a set, exits, or a scan finds it unmatched.
    std::optional<Member> member;
    bool name_unknown = false;  // exec'd, and gone before its new name could be read
    std::optional<ConnectorExit> connector_exit;
    // An exit event of its PID that came while its pidfd said "running": a leader thread that
    // exited before its process, or the exit of the process we meant when this pidfd is its
    // PID's next process (SettleMistakenIdentity tells them apart).
    std::optional<ConnectorExit> exit_event_while_running;
    std::optional<Zombie> zombie;  // nullopt while it runs
    // Its memory cgroup when it joined a set, where OomAttribution::WantsCgroupsOfMembers().
    std::optional<std::string> memory_cgroup;
  };
  // A process the connector reported whose pidfd could not be opened in time (reaped
  // already): what is known of it, so that its exit event can still be counted.
  struct Ghost {
    int parent_pid = 0;
    // Inherited from the parent at fork, or from a comm event; after an exec, from the exit record.
    std::string comm;
    bool exec_seen = false;  // exec'd since: the comm above is no longer its name
    // The lineage its parent hands down, and the parent's attributes (the set's name is
    // rendered at the exit, under the name the ghost has then).
    std::optional<Lineage> lineage;
    ProcessAttributes inherited_attributes;
    uint64_t created_scan = 0;
  };
  struct UnmatchedProcess {
    uint64_t start_time_ticks = 0;
    std::string comm;
    uint64_t pidfile_generation = 0;
    uint64_t config_generation = 0;
    uint64_t lineage_generation = 0;
    uint64_t last_seen_scan = 0;
    int parent_pid = 0;
    // The connector's stamp of its fork, when it was filed at that event (FileForkAsUnmatched)
    // and no scan has read it since: its rename can then adopt it from the event alone.
    std::optional<int64_t> forked_ns;
  };
  struct ScanEntry {
    int pid = 0;
    ProcessStat stat;
  };
  // A scan in progress: it runs in chunks posted to the loop (see ScanStep).
  struct ScanState {
    bool active = false;
    // Reads every PID's stat. Otherwise (the connector on, no event lost since the last full
    // scan) PIDs the tables know are skipped: their pidfds, or the events that keep the
    // unmatched list current, say what changed (docs/architecture.md, "Discovery").
    bool full = true;
    bool rescan_requested = false;
    bool sorted = false;
    int64_t started = 0;
    std::vector<int> pids;
    size_t next_pid = 0;
    std::vector<ScanEntry> entries;
    std::unordered_map<int, int> parent_of;
    size_t next_entry = 0;
  };

  Tracker(EventLoop* loop, Metrics* metrics, const Config& config, TrackerOptions options,
          std::unique_ptr<ProcessReader> reader);

  // --- tracker_scan.cc ---
  void ScanStep();
  // Incremental scans: true when `pid` needs no read (it is known and events keep it current).
  bool KnownAndCurrent(int pid);
  void ReconcileEntry(const ScanEntry& entry);
  void ReconcileWatched(WatchedProcess& process, const ScanEntry& entry);
  void FinishScan();
  void CheckZombiesForReaps();
  // Scan path: reads what the matchers need, assigns, then opens and confirms the pidfd.
  void Discover(const ScanEntry& entry);
  void RememberUnmatched(int pid, const ProcessStat& stat);
  void ScheduleRescan();

  // --- tracker.cc: the table ---
  // Opens a pidfd, counting failures other than "gone". Invalid on failure.
  Pidfd OpenPidfd(int pid);
  // Starts watching a confirmed process: epoll registration, membership. Null when it is
  // watched already or cannot be registered.
  // `fresh_fork`: adopted at its own fork event, so it has no children yet.
  WatchedProcess* Adopt(Pidfd pidfd, ProcessAttributes attributes,
                        const std::optional<Membership>& membership, bool fresh_fork);
  // Adopted as a zombie whose exit we never saw (a scan found it so).
  void AdoptedAsZombie(WatchedProcess& process, const ProcessStat& stat);
  // The lineage handed down by the nearest watched member among the ancestors from
  // `parent_pid` up. `ancestors` maps pid → parent for PIDs not watched (the scan's parent
  // map; empty elsewhere).
  std::optional<Lineage> LineageOf(int parent_pid, const std::unordered_map<int, int>& ancestors) const;
  // Assigns again after a change (exec, rename, reload, exit record) and moves the process
  // between sets, promotes or demotes it.
  void Reassign(WatchedProcess& process);
  // The one place membership changes: metrics join/leave, a zombie moves with it, and a new
  // children: true member takes in its provisional children (unless it can have none yet).
  void SetMembership(WatchedProcess& process, std::optional<Membership> membership,
                     bool may_have_children = true);
  void JoinDescendantsOf(const WatchedProcess& process);
  // Reads the running process anew (never a caller's older read: events may have renamed it
  // since) and assigns again; false when it is gone or unreadable (nothing changed then).
  bool Reread(WatchedProcess& process);
  void Forget(uint64_t key);
  void PublishWatchedCount();

  // --- tracker.cc: exits and reaps ---
  // Before handling reaps found by looking (before 6.9): events queued before them first.
  void DrainBeforeFoundReaps();
  // `reaped`: exit and reap were seen at once, so there is no zombie left to read.
  void HandleExit(WatchedProcess& process, int64_t monotonic_ns, bool reaped);
  void HandleReparent(WatchedProcess& process);
  void HandleReap(WatchedProcess& process, int64_t monotonic_ns, bool exit_and_reap_together);
  // Exit then reap of a process whose pidfd reported both (or that we settle at once).
  void HandleExitAndReap(WatchedProcess& process, int64_t monotonic_ns);
  // When to say the reap seen at `now` happened (`first_sight`: its exit was seen at once too).
  int64_t ReapStamp(const WatchedProcess& process, int64_t now, bool first_sight);
  // A provisional process exited: promote it if its last known identity matches; false
  // when it was dropped (forgotten or unattributed).
  bool ResolveProvisionalExit(WatchedProcess& process);
  // The zombie's current parent (6.13+: from the pidfd) and, when /proc is its only source,
  // its wait status. `known_stat`: a stat the caller read and confirmed.
  void ReadZombieDetails(WatchedProcess& process, const ProcessStat* known_stat);
  void PublishZombie(const WatchedProcess& process);
  std::optional<uint32_t> WaitStatus(const WatchedProcess& process) const;
  std::string ParentLabel(int parent_pid) const;
  // An exec'd process whose new name could not be read: the name from its exit record places
  // it (comm-only matchers: the name is all they need). False when the record cannot help.
  bool RecoverIdentity(WatchedProcess& process, const TaskExitRecord& record);
  // The exit record of `process`, when records are kept and its name is unknown.
  const TaskExitRecord* PeekExitRecord(const WatchedProcess& process);

  // --- tracker_exit_counts.cc: counting an exit with its OOM verdict and resources ---
  // Who ended, for the OOM verdict and the resources claim.
  struct ExitIdentity {
    int pid = 0;
    uint64_t start_time_ticks = 0;  // 0: not read
    std::string comm;
    int64_t watched_since_ns = 0;
    int64_t exit_ns = 0;
    std::optional<CgroupOomReading> oom_cgroup;
    std::optional<std::string> memory_cgroup;  // noted at the join, for a count read at the exit
  };
  ExitIdentity IdentityOf(const WatchedProcess& process, int64_t now_ns) const;
  // The one place a watched member's exit is counted: reason (oom_killed when the OOM killer's,
  // which may take up to OomAttribution::kHoldNs to tell) and what it used.
  void CountExit(size_t slot, std::optional<uint32_t> wait_status, ExitIdentity identity);
  // After a SIGKILL the zombie's memory cgroup and its OOM kill count, for the verdict.
  void ReadOomEvidence(WatchedProcess& process);
  // A member joined a set: its memory cgroup, while /proc still shows it.
  void NoteMemoryCgroup(WatchedProcess& process);
  // The resources of process `pid`, counted in `slot` once its records are read.
  void ClaimExitResources(int pid, std::optional<uint32_t> wait_status, size_t slot,
                          uint64_t start_time_ticks = 0);
  void OnResourcesTimer();
  void ArmResourcesTimer(int64_t now_ns);
  // Reads the tasks the kernel freed since the last call into exit_resources_ (only with the probe).
  void DrainFinalRuntimes();
  std::unique_ptr<ExitResources> exit_resources_;           // with taskstats only
  std::unique_ptr<FinalRuntimeProbe> final_runtime_probe_;  // with exit_resources_ only
  uint64_t final_runtimes_dropped_ = 0;                     // the probe's count when last read
  std::unique_ptr<OomAttribution> oom_;
  int resources_timer_id_ = -1;
  std::optional<int64_t> resources_timer_due_;  // when the armed timer fires; nullopt: disarmed
  // Records of a counted exit are queued already; reading them this long after the claim
  // batches the reads of a burst of exits (one system call per batch, not per exit).
  static constexpr int64_t kResourcesReadDelayNs = 10'000'000;
  // While counted processes wait for their final run time (their parent reaps them, then RCU
  // frees them), the ring is read this often besides at every connector read: a zombie left
  // for a minute costs 60 wake-ups, and its CPU is counted at most a second after its reap.
  static constexpr int64_t kFinalRuntimePollNs = 1'000'000'000;

  // --- tracker_connector.cc ---
  void OnConnectorEvent(const ProcEvent& event, const TaskExitRecord* record);
  void OnFork(int child_pid, int parent_pid, uint64_t timestamp_ns);
  // A fork of a process that matched nothing (and whose verdict is current) matches nothing
  // either: filed as unmatched from the event alone, no pidfd and no /proc read. False when
  // the child may match (then it is looked at as before).
  bool FileForkAsUnmatched(int child_pid, int parent_pid, int64_t forked_ns);
  // Adopts a process under `comm` from the connector's events (comm-only matchers): a fresh
  // fork under its parent's name (with PIDFD_GET_INFO only, no /proc read), or a child filed
  // unmatched at its fork that renamed itself into a set (before 6.13 its stat is read for
  // the parent check). `forked_ns` is the stamp of its fork event, which SettleStale compares
  // with later forks of the PID.
  enum class Adoption {
    kAdopted,
    kNotOpened,  // no pidfd: reaped already, or out of descriptors
    kRefused,    // opened, but another parent's process (the PID was reused) or not adoptable
  };
  Adoption AdoptFromEvents(int pid, int parent_pid, const std::string& comm, int64_t forked_ns,
                           bool fresh_fork);
  // The parent the kernel names for the process behind `pidfd`: PIDFD_GET_INFO (6.13+), else
  // its /proc stat confirmed by the pidfd. nullopt when gone or unreadable.
  std::optional<int> ParentBehind(int pid, const Pidfd& pidfd);
  // Connector path: pidfd first, then /proc, confirmed while the pidfd is not reaped.
  // `provisional_allowed`: keep the pidfd even when nothing matches (fresh forks).
  void DiscoverPid(int pid, bool provisional_allowed);
  void RememberGhost(int child_pid, int parent_pid, std::string comm);
  // A process that exec'd or renamed (`new_comm`, null for an exec) and was gone before its
  // pidfd could be opened: its exit event is counted under that name.
  void RememberRenamerAsGhost(int pid, int parent_pid, const std::string* new_comm);
  // The comm a fresh fork inherits (its parent's, from our tables or /proc); nullopt when the
  // fork is a kernel thread (ProcessReader::NameForkedFrom).
  std::optional<std::string> ForkedComm(int parent_pid);
  void OnExecOrComm(int pid, const std::string* new_comm);
  void OnUnwatchedExecOrComm(int pid, const std::string* new_comm);
  void OnConnectorExit(const ProcEvent& event, const TaskExitRecord* record);
  void NoteConnectorExit(WatchedProcess& process, const ProcEvent& event);
  void OnGhostExit(int pid, const ProcEvent& event, const TaskExitRecord* record);
  // The record of an exit event when the tracker needs it now (an exec'd process whose new
  // name is unknown); otherwise the event is noted for later pairing and this returns null.
  std::optional<TaskExitRecord> RecordForExit(const ProcEvent& event);
  // A fork (stamped `forked_ns`) of `pid`: settles the process we still hold under it. False
  // when what we hold is this fork's own process already (a scan found it first).
  bool SettleStale(int pid, int64_t forked_ns);
  // The pidfd we hold for a process adopted at an earlier fork of `pid` is this fork's: it was
  // opened after the process we meant was reaped and its PID handed out again
  // (docs/architecture.md, "PID reuse"). Counts the one we meant from its exit event and
  // forgets the pidfd.
  void SettleMistakenIdentity(WatchedProcess& held, int64_t forked_ns);
  // Whether `held`, reaped by now, is the process of the fork stamped `forked_ns` although that
  // fork's event comes only now: a scan adopted it first.
  static bool FoundBeforeItsForkEvent(const WatchedProcess& held, int64_t forked_ns);

  EventLoop* loop_;
  Metrics* metrics_;
  TrackerOptions options_;
  std::unique_ptr<ProcessReader> reader_;
  SetAssigner assigner_;
  ExitAccounting accounting_;
  std::unique_ptr<ProcConnector> connector_;
  ConnectorBatch connector_batch_;
  bool draining_connector_ = false;
  std::unique_ptr<ExitRecordBook> exit_records_;  // with taskstats only
  uint64_t scan_number_ = 0;
  uint64_t next_synthetic_key_ = 1;
  bool rescan_pending_ = false;
  // The next scan reads everything: the first one, and the one after the connector lost events.
  bool next_scan_full_ = true;
  static constexpr int64_t kOpenFdsRefreshNs = 30'000'000'000;
  std::optional<int64_t> open_fds_refreshed_ns_;  // when process_open_fds was last counted
  ScanState scan_;
  std::unordered_map<uint64_t, WatchedProcess> processes_;  // by key
  std::unordered_map<int, uint64_t> key_by_pid_;
  std::unordered_map<int, UnmatchedProcess> unmatched_;
  std::unordered_map<int, Ghost> ghosts_;
  std::atomic<bool> first_scan_done_{false};

  // Kernels < 6.9 (no reap event): each zombie is checked on ReapWatch's schedule
  // (exporter/reap_watch.h) from one deadline timer.
  ReapWatch reap_watch_;
  int reap_timer_id_ = -1;
  std::vector<uint64_t> reap_due_;
  void OnReapTimer();
  void ArmReapTimer();

  // A reaped member whose exit status no source had yet. Before 6.15 the status of a reaped
  // process is readable only from the connector's exit event, and exit_notify() wakes the
  // pidfd and the parent before that event is even queued: a parent that reaps at once (and
  // may fork the PID's next process) leaves us a reap without a status. Its exit is counted when
  // the event comes (matched by PID: EventOfParkedExit), or as unknown once the connector's
  // queue was read empty kParkedExitWaitNs after it.
  struct ParkedExit {
    size_t slot = 0;
    ExitIdentity identity;
    std::optional<ReapFacts> reap;  // nullopt: no latency to observe (exit never observed)
    int64_t parked_ns = 0;
    // The connector's stamp of the fork that gave the PID to its next process, once seen.
    std::optional<int64_t> successor_forked_ns;
  };
  static constexpr int64_t kParkedExitWaitNs = 20'000'000;
  void ParkExit(int pid, ParkedExit parked);
  // The exit event of a parked exit: counts it. False when `event` is no parked exit's.
  bool CompleteParkedExit(const ProcEvent& event);
  bool EventOfParkedExit(const ParkedExit& parked, const ProcEvent& event) const;
  // Counts parked exits parked before `parked_before` as unknown.
  void FlushParkedExits(int64_t parked_before);
  std::unordered_map<int, ParkedExit> parked_exits_;  // by pid
};

}  // namespace pidfd_exporter
