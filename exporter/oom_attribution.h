// oom_attribution: whether a watched process's SIGKILL came from the OOM killer. Two sources,
// each where it works (docs/architecture.md, "OOM kills"):
//   the kernel log (exporter/kernel_log.h) names each victim by PID and name: exact;
//   the victim's memory cgroup counter (exporter/cgroup_oom_counter.h) rises with each kill in
//   that cgroup, without naming the victim: it attributes a SIGKILL exit only when the rise
//   covers every SIGKILL exit seen in that cgroup around it.
// A false positive is worse than a miss: a kill -9 must never count as an OOM kill, so anything
// ambiguous is "killed". OomCorrelator is the pure decision (tested on its own); OomAttribution
// owns the sources, the /dev/kmsg registration on the event loop, the periodic listing of cgroup
// counters and the brief holds (at most kHoldNs) of exits whose evidence may still come.
// Event-loop thread only. It never writes metrics: the caller counts the exit with its verdict.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cgroup_oom_counter.h"
#include "event_loop.h"
#include "kernel_log.h"

namespace pidfd_exporter {

// The memory cgroup of a process (read while a zombie, or noted when it joined its set) and that
// cgroup's OOM kill count read while it was a zombie.
struct CgroupOomReading {
  std::string cgroup;
  uint64_t oom_kills = 0;
};

// What the tracker knows of one SIGKILL exit of a watched process. Times in CLOCK_MONOTONIC.
struct SigkillExit {
  int pid = 0;
  std::string comm;
  int64_t watched_since_ns = 0;  // a victim logged before this cannot be this process
  int64_t exit_ns = 0;
  std::optional<CgroupOomReading> reading;
};

enum class OomVerdict { kOomKilled, kKilled, kWait };

class OomCorrelator {
 public:
  // Log records and cgroup exits are forgotten after this.
  static constexpr int64_t kMemoryNs = 10'000'000'000;
  // SIGKILL exits of one cgroup this close together share one rise of its counter.
  static constexpr int64_t kSameCgroupWindowNs = 1'000'000'000;
  // The longest a victim takes from the counter's rise to its exit (teardown of a large address
  // space included) that the correlator allows for.
  static constexpr int64_t kVictimExitDelayNs = 2'000'000'000;

  // A victim named by the kernel log, read at `read_ns`.
  void VictimLogged(const OomKill& kill, int64_t read_ns);
  // Records were overwritten unread: for kMemoryNs the log cannot prove a kill was no OOM kill.
  void LogLost(int64_t now_ns) { last_loss_ns_ = now_ns; }
  // Whether the log (open: `log_open`) names every victim now.
  bool LogComplete(bool log_open, int64_t now_ns) const;
  // A listing of every memory cgroup's count (CgroupOomCounter::ListAll). `complete`: nothing was
  // left out, so a cgroup missing from it was created after it (its count started at 0 then).
  // A rise that stayed unexplained for a whole listing period (a victim we do not watch) is
  // accounted for, so it cannot be given to a later kill -9; so is a rise a listing showed more
  // than kVictimExitDelayNs before an exit (a victim exits right after its kill).
  void CountersListed(const std::map<std::string, uint64_t>& counts, bool complete, int64_t now_ns);
  // A SIGKILL exit with a cgroup reading happened (called once per exit, before Decide).
  void CgroupExitSeen(const SigkillExit& exit);
  // The verdict now. `final`: no more waiting (the hold ended), so kWait is never returned.
  // kOomKilled consumes the evidence (the log line, or one kill of the cgroup's count).
  OomVerdict Decide(const SigkillExit& exit, int64_t now_ns, bool log_open, bool final);
  // Drops log victims and cgroup exits older than kMemoryNs.
  void Expire(int64_t now_ns);

  size_t VictimsHeld() const { return victims_.size(); }

 private:
  struct Victim {
    std::string comm;
    int64_t read_ns = 0;
  };
  struct CgroupState {
    uint64_t accounted = 0;                 // kills explained so far
    uint64_t last_listed = 0;               // the count at the last listing
    std::vector<int64_t> sigkill_exits_ns;  // recent SIGKILL exits of watched processes here
  };
  bool LoggedVictim(const SigkillExit& exit);
  std::optional<bool> CgroupVerdict(const SigkillExit& exit);

  std::unordered_map<int, Victim> victims_;  // by PID, the latest
  std::map<std::string, CgroupState> cgroups_;
  bool listed_complete_ = false;
  std::optional<int64_t> listed_ns_;  // when the last listing was taken
  std::optional<int64_t> last_loss_ns_;
};

class OomAttribution {
 public:
  // Either source may be missing (null / nullopt); with neither, every verdict is "killed".
  OomAttribution(EventLoop* loop, std::unique_ptr<KernelLog> log, std::optional<CgroupOomCounter> counter,
                 std::function<void(const std::string& operation)> count_error);
  ~OomAttribution();
  OomAttribution(const OomAttribution&) = delete;
  OomAttribution& operator=(const OomAttribution&) = delete;

  bool HasLog() const { return log_ != nullptr; }
  bool HasCounter() const { return counter_.has_value(); }

  // Whether the tracker must note each member's memory cgroup while it runs: the counter is the
  // only source, and on cgroup v1 a zombie already shows the root cgroup in /proc/PID/cgroup.
  bool WantsCgroupsOfMembers() const { return counter_ && !log_; }
  // The memory cgroup of `pid` (the caller confirms the PID afterwards); nullopt without the
  // counter source or when unreadable.
  std::optional<std::string> MemoryCgroupOf(int pid) const;
  // The OOM kill count of `cgroup` now.
  std::optional<CgroupOomReading> ReadCounter(std::string cgroup) const;
  // Decides `exit` and calls `count(oom_killed)` once: at once when the evidence is in, else
  // within kHoldNs (when the log line or other SIGKILL exits of the cgroup may still come).
  void Attribute(SigkillExit exit, std::function<void(bool oom_killed)> count);
  // Exits still held, for tests.
  size_t HeldCount() const { return held_.size(); }

  static constexpr int64_t kHoldNs = 50'000'000;
  static constexpr std::chrono::milliseconds kListInterval{10'000};

 private:
  struct Held {
    SigkillExit exit;
    int64_t deadline_ns = 0;
    std::function<void(bool)> count;
  };
  void ReadLog();
  void ListCounters();
  void ResolveHeld(bool all_due);
  void ArmHoldTimer();

  EventLoop* loop_;
  std::unique_ptr<KernelLog> log_;
  std::optional<CgroupOomCounter> counter_;
  std::function<void(const std::string&)> count_error_;
  OomCorrelator correlator_;
  std::vector<Held> held_;
  int hold_timer_ = -1;
  int list_timer_ = -1;
};

}  // namespace pidfd_exporter
