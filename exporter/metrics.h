// Metrics: the prometheus-cpp registry and every pidfd_* family with its help text, the
// per-set series, the zombie gauges (count, by parent, oldest exit), and the text
// serialization for /metrics. Series are created and updated by the event-loop thread
// only; HTTP threads only call Serialize() and StatusSets(), which read prometheus-cpp's
// atomics and the set table under its mutex (the loop thread adds and removes series under
// it too). The families with series per set are written from that table by one writer
// (exposition_writer.h) with label blocks escaped once per series; the few others go through
// prometheus-cpp. Label values from /proc pass through SanitizeLabelValue first, so no
// process can make /metrics invalid.
//
// Sets come and go: a templated set with no member, no zombie and no event for
// limits.idle_set_timeout is removed with its series by ExpireIdleSets(), and its table entry
// is reused for a later name. A slot is therefore a handle, not an index: the low 32 bits
// index the table, the high 32 bits hold the entry's generation, bumped when the set is
// removed. A handle kept past its set's removal (a bug in the caller) matches no set any
// more: every call with it is ignored and counted as errors_total{op="stale_set_slot"},
// never applied to the set that reused the entry. Expiry itself only removes a set whose
// member and zombie counts (ProcessJoined/Left, ZombieAdded/Removed) are 0, so a caller that
// holds handles of members only never holds an expired one.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config.h"
#include "pidfd.h"
#include "status_page.h"

namespace pidfd_exporter {

// Valid UTF-8 (each invalid byte becomes U+FFFD), C0 controls and DEL become U+FFFD, at
// most `max_bytes` bytes (cut on a character boundary). Empty input becomes "unknown".
std::string SanitizeLabelValue(std::string_view raw, size_t max_bytes = 128);

// The name used when more than limits.max_sets distinct set names appear.
inline constexpr char kOverflowSetName[] = "_other";

class Metrics {
 public:
  explicit Metrics(const Config& config);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // --- HTTP threads ---
  std::string Serialize() const;
  // The same registries through prometheus-cpp's own collection and TextSerializer alone: the
  // reference the fast writer is tested against (tests/unit/metrics_test.cc), and the
  // benchmark's baseline.
  std::string SerializeWithPrometheusCpp() const;
  // Per-set rows for the status page (watched, zombies, exits, reap latency buckets).
  std::vector<StatusSet> StatusSets(double now_unix_seconds) const;

  // --- event-loop thread ---
  // The slot (a handle, see above) of a set name (raw bytes from a template): sanitized,
  // created with all its series on first use, "_other" while limits.max_sets other sets are
  // live (each such name logged and counted once, in pidfd_exporter_set_overflows_total).
  // `origin` is the config entry's name template that produced the name: a reload keeps
  // the sets whose origin is still configured.
  size_t SetSlot(std::string_view raw_name, const std::string& origin);
  const std::string& SetName(size_t slot) const;
  // Creates the series of every fixed set name up front (they read 0, never absent). These
  // are the fixed sets of the running config: they never expire; any other set may.
  void CreateFixedSets(const std::vector<std::string>& names);

  // After a reload: removes every series of the sets whose origin is not among
  // `configured_origins` ("_other" stays), unless they have members or zombies or are marked
  // `in_use` (indexed by slot; kept for callers that track membership themselves).
  void RemoveSets(const std::set<std::string>& configured_origins, const std::vector<bool>& in_use);
  // Size of the set table (live and free entries): slots of sets never removed are below it.
  size_t SetCount() const { return sets_.size(); }
  void SetMaxSets(size_t max_sets) { max_sets_ = max_sets; }
  // limits.idle_set_timeout of the running config; nullopt: templated sets never expire.
  void SetIdleSetTimeout(std::optional<std::chrono::milliseconds> timeout) { idle_set_timeout_ = timeout; }
  // Removes the sets that are not fixed, have no member and no zombie, and saw no event since
  // a call at least idle_set_timeout before `now`. Call it periodically (main.cc: a timer
  // every IdleSweepInterval()); a set goes between idle_set_timeout and that plus two
  // intervals after its last event. Returns the names removed.
  std::vector<std::string> ExpireIdleSets(std::chrono::steady_clock::time_point now);
  // How often to call ExpireIdleSets: a tenth of the timeout, within [100ms, 60s].
  static std::chrono::milliseconds IdleSweepInterval(std::optional<std::chrono::milliseconds> timeout);

  void ProcessJoined(size_t slot);
  void ProcessLeft(size_t slot);
  // Zombie gauges: written by ExitAccounting only (exporter/exit_accounting.h), which owns
  // which zombies exist and when each exited.
  void ZombieAdded(size_t slot, const std::string& parent_label);
  void ZombieRemoved(size_t slot, const std::string& parent_label);
  // The set's oldest current zombie's exit time; nullopt removes the series (no zombies).
  void SetOldestZombie(size_t slot, std::optional<double> exit_unix_seconds);
  void ZombieParentChanged(size_t slot, const std::string& old_parent_label,
                           const std::string& new_parent_label);
  void ExitCounted(size_t slot, const char* reason, const std::string& code, double now_unix_seconds);
  // What an exited process used (taskstats records): written by ExitAccounting only.
  void ExitResourcesObserved(size_t slot, double user_seconds, double system_seconds, uint64_t peak_rss_bytes,
                             uint64_t read_bytes, uint64_t write_bytes);
  // CPU of an exited process counted after its resources (exporter/final_runtime_probe.h), at its
  // reap: the set's CPU series exist already; a set removed since gets nothing.
  void ExitCpuAdded(size_t slot, double user_seconds, double system_seconds);
  void ReapLatencyObserved(size_t slot, double seconds);
  void LifetimeObserved(size_t slot, double seconds);
  void MissedExit(size_t slot);
  void UnattributedExit();
  void CountError(const std::string& operation, uint64_t count = 1);
  void SetKernelFeatures(const KernelFeatures& features);
  void SetWatchedPidfds(int64_t count);
  // One round of reap checks (kernels before 6.9): `checks` made, `delayed` when the cap left
  // due checks for later (reap latencies then less precise than max(1 ms, 2 %)).
  void ReapChecksMade(size_t checks, bool delayed);
  void ScanDuration(double seconds);
  // Messages the proc connector delivered (events and acknowledgements), after the kernel-side
  // filter (exporter/proc_connector.h, ConnectorFilterProgram).
  void ConnectorMessagesReceived(size_t count);
  void ConfigReloaded(bool successful, double now_unix_seconds);
  // Counts the exporter's open descriptors for process_open_fds where the kernel cannot
  // tell the count in one stat() (before Linux 6.2; from 6.2 each scrape asks). Listing
  // /proc/self/fd costs ~1 us per descriptor (10 ms at 10k pidfds), too much for every
  // scrape: the event loop refreshes it after scans instead.
  void RefreshOpenFds();

 private:
  struct SetSeries {
    std::string name;
    std::string origin;
    bool removed = false;
    uint32_t generation = 0;  // of this table entry; bumped when its set is removed
    bool fixed = false;       // a fixed set of the running config: never expires
    int64_t members = 0;      // ProcessJoined - ProcessLeft
    int64_t zombie_count = 0;
    // Idle tracking without a clock read per update: every update bumps `events`; a sweep
    // that sees it changed stamps `last_active` with its own time.
    uint64_t events = 1;  // creation is an event
    uint64_t events_seen = 0;
    std::chrono::steady_clock::time_point last_active;
    prometheus::Gauge* processes = nullptr;
    prometheus::Counter* starts = nullptr;
    prometheus::Histogram* reap_latency = nullptr;
    prometheus::Histogram* lifetime = nullptr;
    prometheus::Gauge* zombies = nullptr;
    prometheus::Counter* missed_exits = nullptr;
    prometheus::Gauge* oldest_zombie = nullptr;  // present only while the set has zombies
    std::string labels;                          // set="name", escaped once for every scrape
    struct ParentSeries {
      prometheus::Gauge* gauge = nullptr;
      int64_t count = 0;
      std::string labels;  // parent="label", escaped
    };
    // The maps and `resources` change shape (an entry added or removed) under sets_mutex_
    // only: scrapes walk them under it.
    std::map<std::string, ParentSeries> zombies_by_parent;
    struct ExitSeries {
      prometheus::Counter* counter = nullptr;
      std::string labels;  // code="...",reason="...", escaped
    };
    std::map<std::pair<std::string, std::string>, ExitSeries> exits;  // by (reason, code)
    // Created at the set's first exit with resources: absent where no exit records are read.
    struct ResourceSeries {
      prometheus::Counter* cpu_user = nullptr;
      prometheus::Counter* cpu_system = nullptr;
      prometheus::Histogram* peak_rss = nullptr;
      prometheus::Counter* io_read = nullptr;
      prometheus::Counter* io_write = nullptr;
    };
    std::optional<ResourceSeries> resources;
    // For the status page: exits per minute over the last few minutes, and the total.
    std::atomic<uint64_t> exits_total{0};
    static constexpr int kRecentMinutes = 6;
    std::atomic<int64_t> recent_minute[kRecentMinutes] = {};
    std::atomic<uint64_t> recent_count[kRecentMinutes] = {};
  };
  // The index of the new set's entry (a freed one when there is one).
  size_t CreateSet(const std::string& sanitized_name, const std::string& origin);
  void RemoveSet(size_t index);  // caller holds sets_mutex_
  void ResetSet(SetSeries& set);
  static size_t Handle(size_t index, uint32_t generation);
  // The live set of a handle; nullptr (counted as an error) for a stale or invalid one.
  SetSeries* Live(size_t slot);
  // The set `slot` names, or nullptr when it was removed since; counts nothing.
  SetSeries* Find(size_t slot);
  size_t OverflowSlot(const std::string& sanitized_name);
  void AddParentZombie(SetSeries& set, const std::string& parent_label);
  void DropParentZombie(SetSeries& set, const std::string& parent_label);
  // The per-set families (set_registry_), written straight from the set table under
  // sets_mutex_ (exposition_writer.h); the rest goes through prometheus-cpp.
  void WriteSetFamilies(std::string& out) const;
  void WriteZombieFamilies(std::string& out) const;    // caller holds sets_mutex_
  void WriteResourceFamilies(std::string& out) const;  // caller holds sets_mutex_
  void RemoveResourceSeries(SetSeries& set);
  // The one place the CPU series of exited processes are incremented.
  static void AddCpu(SetSeries::ResourceSeries& series, double user_seconds, double system_seconds);

  std::shared_ptr<prometheus::Registry> registry_;
  // Families with series per set: not collected by prometheus-cpp at scrape (WriteSetFamilies).
  std::shared_ptr<prometheus::Registry> set_registry_;
  prometheus::Family<prometheus::Gauge>& processes_family_;
  prometheus::Family<prometheus::Counter>& starts_family_;
  prometheus::Family<prometheus::Counter>& exits_family_;
  prometheus::Family<prometheus::Histogram>& reap_latency_family_;
  prometheus::Family<prometheus::Histogram>& lifetime_family_;
  prometheus::Family<prometheus::Counter>& cpu_seconds_family_;
  prometheus::Family<prometheus::Histogram>& peak_rss_family_;
  prometheus::Family<prometheus::Counter>& io_bytes_family_;
  prometheus::Family<prometheus::Gauge>& zombies_family_;
  prometheus::Family<prometheus::Gauge>& zombies_by_parent_family_;
  prometheus::Family<prometheus::Gauge>& oldest_zombie_family_;
  prometheus::Family<prometheus::Gauge>& build_info_family_;
  prometheus::Family<prometheus::Gauge>& kernel_feature_family_;
  prometheus::Family<prometheus::Gauge>& watched_pidfds_family_;
  prometheus::Family<prometheus::Counter>& missed_exits_family_;
  prometheus::Family<prometheus::Counter>& unattributed_exits_family_;
  prometheus::Family<prometheus::Counter>& errors_family_;
  prometheus::Family<prometheus::Histogram>& scan_duration_family_;
  prometheus::Family<prometheus::Gauge>& reload_successful_family_;
  prometheus::Family<prometheus::Gauge>& reload_timestamp_family_;
  prometheus::Family<prometheus::Counter>& set_overflows_family_;
  prometheus::Family<prometheus::Counter>& sets_expired_family_;
  prometheus::Family<prometheus::Gauge>& sets_family_;
  prometheus::Family<prometheus::Counter>& reap_checks_family_;
  prometheus::Family<prometheus::Counter>& reap_checks_delayed_family_;
  prometheus::Family<prometheus::Counter>& connector_messages_family_;
  prometheus::Gauge& watched_pidfds_;
  prometheus::Counter& unattributed_exits_;
  prometheus::Histogram& scan_duration_;
  prometheus::Gauge& reload_successful_;
  prometheus::Gauge& reload_timestamp_;
  prometheus::Counter& set_overflows_;
  prometheus::Counter& sets_expired_;
  prometheus::Gauge& live_sets_gauge_;
  prometheus::Counter& reap_checks_;
  prometheus::Counter& reap_checks_delayed_;
  prometheus::Counter& connector_messages_;
  std::map<std::string, prometheus::Counter*> errors_;

  std::vector<double> reap_latency_buckets_;
  std::vector<double> lifetime_buckets_;
  std::vector<double> peak_rss_buckets_;
  // le="..." per bucket of each layout, for the scrape writer.
  std::vector<std::string> reap_latency_bound_labels_;
  std::vector<std::string> lifetime_bound_labels_;
  std::vector<std::string> peak_rss_bound_labels_;
  // The last scrape's size: the next one reserves it up front.
  mutable std::atomic<size_t> last_scrape_bytes_{0};
  size_t max_sets_;
  std::optional<std::chrono::milliseconds> idle_set_timeout_;
  // The set table: appended by the loop thread, read by HTTP threads (StatusSets) under
  // the mutex. A deque keeps element addresses stable while it grows.
  mutable std::mutex sets_mutex_;
  std::deque<SetSeries> sets_;
  std::unordered_map<std::string, size_t> slot_by_name_;  // index by name; loop thread only
  std::vector<size_t> free_indexes_;                      // entries of removed sets, for reuse
  size_t live_sets_ = 0;  // sets not removed, "_other" not included: what max_sets limits
  // Names that went to "_other" since it was created (logged and counted once each). Cleared
  // when "_other" expires, and when it holds kMaxRememberedOverflows names (bounded memory).
  std::unordered_set<std::string> overflowed_names_;
  // Declared before the collector, which shares it.
  std::shared_ptr<std::atomic<long>> open_fds_ = std::make_shared<std::atomic<long>>(0);
  std::shared_ptr<prometheus::Collectable> process_collector_;
};

}  // namespace pidfd_exporter
