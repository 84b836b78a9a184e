// ReapWatch: when to check each watched zombie for its reap on kernels without reap events
// (Linux < 6.9 has no EPOLLHUP on a pidfd when the parent reaps), and what reap latency to
// report once a check finds it reaped. Pure scheduling logic over uint64 keys and
// CLOCK_MONOTONIC nanoseconds: it makes no system call and knows nothing of processes; the
// caller does the checks (pidfd_send_signal(pidfd, 0) or /proc/self/fdinfo) and arms a timer
// at NextDeadline(). Not thread-safe: owned by the event-loop thread.
//
// Accuracy. A zombie of age a (time since its exit) is checked again after
//   interval(a) = max(min_interval, age_fraction * a)      (defaults: 1 ms, 2 %)
// so it is checked every 1 ms while younger than 50 ms and then backs off in proportion to its
// age; 10,000 zombies lingering for hours cost ~50 checks each per e-fold of age. The reap
// happened somewhere between the last check that still saw a zombie and the check that found
// it reaped; ReportedLatency() reports the midpoint of that gap, so the error is at most half
// the gap: <= max(0.5 ms, 1 % of the true latency) when checks run on time, and still within
// max(1 ms, 2 %) when a check runs up to one interval late (a busy loop, the cap below).
//
// Cost. At most max_checks_per_second checks are handed out per second (a token bucket that
// holds at most burst_checks): TakeDue() returns due keys earliest deadline first and leaves
// the rest due for later, so past the cap every zombie's checks slow down alike and the
// error grows; cap_reached() counts how often that happened.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

namespace pidfd_exporter {

struct ReapWatchOptions {
  int64_t min_interval_ns = 1'000'000;  // checks of a young zombie: every 1 ms
  double age_fraction = 0.02;           // then every 2 % of its age
  // Global cap: 20,000 checks/s of ~1-5 µs each is at most ~10 % of one core. 0 = no cap.
  int64_t max_checks_per_second = 20'000;
  int64_t burst_checks = 200;  // checks that may run back to back after a quiet time (10 ms at the cap)
};

class ReapWatch {
 public:
  explicit ReapWatch(ReapWatchOptions options = {});

  // Starts watching a zombie that exited at exit_ns and that the caller saw unreaped at
  // now_ns; its first check is due one interval later. Adding a watched key again restarts it.
  void Add(uint64_t key, int64_t exit_ns, int64_t now_ns);
  // Stops watching (reap seen another way, process forgotten). Unknown keys are ignored.
  void Remove(uint64_t key);
  bool Contains(uint64_t key) const { return entries_.count(key) != 0; }
  size_t size() const { return entries_.size(); }

  // When the next check is due (absolute ns): the earliest deadline, or later when the cap's
  // budget is spent. nullopt when nothing is watched.
  std::optional<int64_t> NextDeadline() const;
  // Fills *due (cleared first) with the keys whose check is due at now_ns, earliest first,
  // at most as many as the cap allows. Each returned key must then be answered with
  // CheckedStillZombie() or FoundReaped() (or Remove()); until then it has no deadline.
  void TakeDue(int64_t now_ns, std::vector<uint64_t>* due);
  // The check at now_ns saw a zombie: schedules the next one. False for an unknown key.
  bool CheckedStillZombie(uint64_t key, int64_t now_ns);
  // The check at now_ns found the process reaped: stops watching it and returns when the
  // reap most likely happened (the midpoint, see ReportedLatency) and the latency from the
  // exit given to Add(). nullopt for an unknown key.
  struct Reap {
    int64_t reap_ns;     // pass this to whatever stamps the reap (it is at most now_ns)
    int64_t latency_ns;  // reap_ns - exit_ns, never negative
  };
  std::optional<Reap> FoundReaped(uint64_t key, int64_t now_ns);

  // The reap happened in (last_zombie_ns, reaped_seen_ns]: report the midpoint, which halves
  // the worst error, measured from exit_ns; never negative.
  static int64_t ReportedLatency(int64_t exit_ns, int64_t last_zombie_ns, int64_t reaped_seen_ns);
  // The next check of a zombie of this age comes this much later.
  int64_t Interval(int64_t age_ns) const;

  uint64_t checks_handed_out() const { return checks_handed_out_; }
  // TakeDue() calls that left due checks behind because the cap's budget was spent.
  uint64_t cap_reached() const { return cap_reached_; }

 private:
  struct Entry {
    int64_t exit_ns;
    int64_t last_zombie_ns;
    std::optional<int64_t> deadline_ns;  // nullopt while handed out by TakeDue()
    uint64_t generation;                 // matches the one live heap item
  };
  struct HeapItem {
    int64_t deadline_ns;
    uint64_t key;
    uint64_t generation;
    bool operator>(const HeapItem& other) const { return deadline_ns > other.deadline_ns; }
  };

  void Schedule(uint64_t key, Entry& entry, int64_t now_ns);
  bool IsLive(const HeapItem& item) const;
  // Pops stale items off the top; every mutating call ends with it, so the top is live.
  void DropStaleTop();
  void Refill(int64_t now_ns);
  void CompactIfMostlyStale();

  ReapWatchOptions options_;
  std::unordered_map<uint64_t, Entry> entries_;
  std::vector<HeapItem> heap_;  // min-heap on deadline, with stale items skipped lazily
  uint64_t next_generation_ = 1;
  double tokens_;               // checks the cap allows right now
  int64_t refilled_at_ns_ = 0;  // when tokens_ was last brought up to date
  uint64_t checks_handed_out_ = 0;
  uint64_t cap_reached_ = 0;
};

}  // namespace pidfd_exporter
