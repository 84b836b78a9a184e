// Tracker: the process table and every state change of a watched process:
// discovered (/proc scan, or the proc connector's fork/exec/comm events) → matched to a
// set → pidfd opened and verified → watched → exited (zombie) → reaped; and the safety net
// for exits seen only by the connector. It turns those changes into metric updates and keeps the
// board of current zombies for the status page. Everything runs on the event-loop thread
// except Zombies() and FirstScanDone(), which HTTP threads may call. It never blocks:
// /proc reads are small files, and a process that vanishes mid-read is simply dropped
// ("PIDs can vanish between getting the list and getting stats").
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.h"
#include "event_loop.h"
#include "metrics.h"
#include "pidfd.h"
#include "proc_connector.h"
#include "process_set.h"
#include "procfs.h"
#include "status_page.h"
#include "taskstats.h"
#include "unique_fd.h"

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
  // from /proc is still placed in its set, when every matcher looks at the name alone.
  void AttachTaskstats(std::unique_ptr<TaskstatsListener> listener);
  // Whether exit records can name a process under the current config: every matcher and set
  // name must need the name alone (comm:, {{.Comm}}); exe, cmdline, user, cgroup and
  // {{.ExeBase}} (the default name) need /proc.
  bool ExitRecordsCanName() const;
  // Swaps in a new, already validated config at once: new matchers; every watched
  // process is matched again now (moving between sets, or no longer watched), the series
  // of sets the config no longer produces disappear, counters of the others are kept, and
  // processes that matched nothing are looked at again by a scan scheduled at once.
  void ApplyConfig(const Config& config);

  // --- any thread ---
  bool FirstScanDone() const { return first_scan_done_.load(std::memory_order_acquire); }
  // The current zombies, oldest first.
  std::vector<StatusZombie> Zombies() const;

 private:
  Tracker(EventLoop* loop, Metrics* metrics, const Config& config, TrackerOptions options, UniqueFd procfs);

  enum class State { kRunning, kZombie };
  struct WatchedProcess {
    uint64_t key = 0;  // pidfs inode, or a counter on kernels without pidfs
    int pid = 0;
    Pidfd pidfd;
    uint64_t start_time_ticks = 0;     // 0 until read (processes adopted from a fork event)
    int64_t start_monotonic_ns = 0;    // the connector's fork timestamp, when adopted from one
    int64_t adopted_monotonic_ns = 0;  // when its pidfd started being watched
    std::string comm;                  // raw bytes, as read
    // A member counts in its set. A provisional process (member = false) was forked while
    // the connector watched and matched nothing yet: its pidfd is held until it execs or
    // renames into a set, exits, or the next scan finds it still unmatched.
    bool member = true;
    ProcessAttributes attributes;  // the latest read (provisional processes re-match on it)
    bool identity_lost = false;    // exec'd, and gone before the new name could be read
    bool fresh_fork = false;       // being adopted at its own fork event (has no children yet)
    uint64_t discovered_scan = 0;
    size_t set_slot = 0;   // Metrics slot (members only)
    size_t set_index = 0;  // index into the config's process_sets
    bool set_has_children = false;
    bool joined_via_ancestor = false;
    uint64_t config_generation = 0;
    State state = State::kRunning;
    bool exit_time_known = false;
    int64_t exit_monotonic_ns = 0;
    double exit_boot_seconds = 0;
    double exit_unix_seconds = 0;   // exit time, or first sight for zombies found as zombies
    int64_t connector_exit_ns = 0;  // the connector's in-kernel exit timestamp, 0 when not seen
    std::optional<int> connector_wait_status;
    int connector_parent_pid = 0;  // the parent named by the connector's exit event
    bool reaped_at_exit = false;   // the exit event named no parent: released at exit
    int parent_pid = 0;
    std::string parent_label;        // sanitized comm of the parent
    std::optional<int> wait_status;  // from /proc/PID/stat field 52 while a zombie
  };
  // A process the connector reported whose pidfd could not be opened in time (reaped
  // already): what is known of it, so that its exit event can still be counted.
  struct Ghost {
    int parent_pid = 0;
    // Inherited from the parent at fork, or from a comm event; after an exec, from the exit record.
    std::string comm;
    bool exec_seen = false;  // exec'd since: the comm above is no longer its name
    // A descendant of a children: true member: that set, and the parent's attributes for the
    // set's name (given at the exit, under the name the ghost has then).
    std::optional<size_t> inherited_set_index;
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
  };
  struct ScanEntry {
    int pid = 0;
    ProcessStat stat;
  };
  // A scan in progress: it runs in chunks posted to the loop (see ScanStep).
  struct ScanState {
    bool active = false;
    bool rescan_requested = false;
    bool sorted = false;
    int64_t started = 0;
    std::vector<int> pids;
    size_t next_pid = 0;
    std::vector<ScanEntry> entries;
    std::unordered_map<int, int> parent_of;
    size_t next_entry = 0;
  };
  void ScanStep();
  void ReconcileEntry(const ScanEntry& entry);
  void FinishScan();

  // Scan path: reads what the matchers need through a pinned /proc directory, matches,
  // opens and verifies the pidfd, and starts watching. `ancestors` maps pid → parent pid
  // for this scan (for children: true).
  void Discover(const ScanEntry& entry, const std::unordered_map<int, int>& ancestors);
  // Connector path: pidfd first, then /proc, trusted while the pidfd is not reaped.
  // `provisional_allowed`: keep the pidfd even when nothing matches (fresh forks).
  void DiscoverPid(int pid, bool provisional_allowed);
  // Starts watching: epoll registration, metrics, zombie-at-first-sight handling.
  WatchedProcess* Adopt(Pidfd pidfd, const ProcessStat& stat, ProcessAttributes attributes,
                        const std::optional<MatchResult>& match, bool via_ancestor, bool zombie_exit_unknown,
                        bool fresh_fork = false);
  std::optional<MatchResult> MatchAncestors(int parent_pid, const std::unordered_map<int, int>& ancestors,
                                            const ProcessAttributes& attributes) const;
  bool ReadAttributes(int directory_fd, const ProcessStat& stat, ProcessAttributes* attributes);
  // Matches again after a change (scan saw a new comm, exec or comm event, reload) and
  // moves the process between sets, promotes or demotes it.
  void Reconsider(WatchedProcess& process);
  void SetMembership(WatchedProcess& process, const std::optional<MatchResult>& match, bool via_ancestor);
  // Reads the running process's stat and what the matchers need now (never a caller's older
  // read: events may have renamed it since) and matches again; false when it is gone or
  // unreadable (nothing changed then). May forget it (no connector, matched nothing).
  bool Rematch(WatchedProcess& process);
  void StopWatching(WatchedProcess& process);
  void HandleExit(WatchedProcess& process, int64_t monotonic_ns, double boot_seconds, double unix_seconds);
  void HandleReparent(WatchedProcess& process);
  void HandleReap(WatchedProcess& process, int64_t monotonic_ns, bool exit_and_reap_together);
  // A provisional process exited: promote it if its last known identity matches; false
  // when it was dropped (forgotten or unattributed).
  bool ResolveProvisionalExit(WatchedProcess& process);
  void Forget(uint64_t key);
  // Parent pid and (when needed) the zombie's wait status, read while it is a zombie.
  void ReadZombieDetails(WatchedProcess& process, const ProcessStat* known_stat);
  std::string ParentLabel(int parent_pid) const;
  bool ParentIgnoresChildren(const WatchedProcess& process);
  std::string RawComm(int pid) const;
  const std::string& Username(uint32_t uid);
  void BoardAdd(const WatchedProcess& process);
  void BoardRemove(const WatchedProcess& process);
  void PublishWatchedCount();
  void ScheduleRescan();
  // Connector events.
  // `record`: the exit record of an exit event's task, when taskstats delivered it.
  void OnConnectorEvent(const ProcEvent& event, const TaskExitRecord* record);
  void OnFork(int child_pid, int parent_pid, uint64_t timestamp_ns);
  // Remembers a process that matched nothing (no pidfd held): cheap to look at again.
  void RememberUnmatched(int pid, const ProcessStat& stat);
  // The comm a fresh fork inherits: its parent's, from our tables or /proc.
  std::string InheritedComm(int parent_pid) const;
  void OnExecOrComm(int pid, const std::string* new_comm);
  void OnConnectorExit(const ProcEvent& event, const TaskExitRecord* record);
  // An exit event not yet paired with its exit record.
  struct UnpairedExit {
    int pid = 0;
    int tgid = 0;
    int parent_tgid = 0;
    uint32_t exit_code = 0;
  };
  // Exit records: read everything queued, keyed by task id in arrival order.
  void DrainExitRecords();
  // Reads the queued records and pairs every noted exit event with its own (dropping both);
  // then drops leftovers older than kExitRecordMaxAgeNs.
  void PairExitRecords();
  void DropExitRecords();
  // The record of the exit `event` reports when the tracker needs it (an exec'd process whose
  // new name is unknown); otherwise notes the event for later pairing and returns null.
  std::optional<TaskExitRecord> RecordForExit(const ProcEvent& event);
  // The record of `event`, removed from the queue: every task exit has one record, queued
  // before its exit event. Null when none fits (lost to an overflow).
  std::optional<TaskExitRecord> TakeExitRecord(const UnpairedExit& event);
  // The record of `process`'s exit before its exit event was handled (the pidfd woke first);
  // left queued for the event. Null when there is none.
  const TaskExitRecord* PeekExitRecord(const WatchedProcess& process);
  // An exec'd process whose new name could not be read: the name from its exit record places
  // it (comm-only matchers: the name is all they need). False when the record cannot help.
  bool RecoverIdentity(WatchedProcess& process, const TaskExitRecord& record);
  // A PID is about to be reused: the process we still hold under it must be reaped.
  bool SettleStale(int pid);

  EventLoop* loop_;
  Metrics* metrics_;
  TrackerOptions options_;
  UniqueFd procfs_;
  std::unique_ptr<ProcessSets> sets_;
  std::vector<std::string> set_templates_;  // name template of each config entry (a set's origin)
  uint64_t config_generation_ = 1;
  uint64_t pidfile_generation_ = 1;
  uint64_t scan_number_ = 0;
  uint64_t lineage_generation_ = 1;
  uint64_t next_synthetic_key_ = 1;
  std::unique_ptr<ProcConnector> connector_;
  ConnectorBatch connector_batch_;
  bool draining_connector_ = false;
  bool rescan_pending_ = false;
  std::unordered_map<int, Ghost> ghosts_;
  std::unique_ptr<TaskstatsListener> taskstats_;
  TaskstatsBatch taskstats_batch_;
  // Records not yet matched to their exit event, by task id, oldest first. Records whose events
  // were lost stay behind until PairExitRecords() expires them.
  std::unordered_map<int, std::vector<TaskExitRecord>> exit_records_;
  std::vector<UnpairedExit> unpaired_exits_;  // exit events since the records were last read
  ScanState scan_;
  std::unordered_map<int, bool> parent_ignores_children_;   // by parent pid, until the next scan
  std::unordered_map<uint64_t, WatchedProcess> processes_;  // by key
  std::unordered_map<int, uint64_t> key_by_pid_;
  std::unordered_map<int, UnmatchedProcess> unmatched_;
  std::unordered_map<uint32_t, std::string> usernames_;
  std::atomic<bool> first_scan_done_{false};

  mutable std::mutex board_mutex_;
  std::map<uint64_t, StatusZombie> board_;  // by key; guarded by board_mutex_
};

}  // namespace pidfd_exporter
