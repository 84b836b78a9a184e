#include "metrics.h"

#include <fcntl.h>
#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "build_info.h"
#include "exposition_writer.h"
#include "log.h"
#include "procfs.h"
#include "utf8.h"

namespace pidfd_exporter {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Handles put the entry's generation above the index (see metrics.h).
static_assert(sizeof(size_t) >= 8, "set slot handles need 64-bit size_t");
constexpr int kGenerationShift = 32;
constexpr size_t kIndexMask = (size_t{1} << kGenerationShift) - 1;
// Bounds the memory of the once-per-name overflow log (metrics.h, overflowed_names_).
constexpr size_t kMaxRememberedOverflows = 4096;

// The exporter's own process_* metrics (client library conventions): read from
// /proc/self at scrape time, on the HTTP thread that scrapes.
class ProcessCollector final : public prometheus::Collectable {
 public:
  explicit ProcessCollector(std::shared_ptr<std::atomic<long>> open_fds) : open_fds_(std::move(open_fds)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families;
    const auto stat_text = ReadRecordAt(AT_FDCWD, "/proc/self/stat", 4096);
    const auto stat = stat_text ? ParseStat(*stat_text) : std::nullopt;
    const double ticks = static_cast<double>(ClockTicksPerSecond());
    if (stat_text) {
      // utime and stime are fields 14 and 15; ParseStat keeps only what the tracker needs.
      const size_t close_paren = stat_text->rfind(')');
      unsigned long long utime = 0, stime = 0, rss_pages = 0;
      if (close_paren != std::string::npos &&
          sscanf(stat_text->c_str() + close_paren + 2,
                 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %*u %*u %llu",
                 &utime, &stime, &rss_pages) == 3) {
        families.push_back(
            Single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                   prometheus::MetricType::Counter, static_cast<double>(utime + stime) / ticks));
        families.push_back(Single(
            "process_resident_memory_bytes", "Resident memory size in bytes.", prometheus::MetricType::Gauge,
            static_cast<double>(rss_pages) * static_cast<double>(sysconf(_SC_PAGESIZE))));
      }
    }
    if (stat) {
      timespec boot_relative{}, now{};
      clock_gettime(CLOCK_BOOTTIME, &boot_relative);
      clock_gettime(CLOCK_REALTIME, &now);
      const double boot_unix =
          static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9 -
          (static_cast<double>(boot_relative.tv_sec) + static_cast<double>(boot_relative.tv_nsec) / 1e9);
      families.push_back(Single("process_start_time_seconds",
                                "Start time of the process since unix epoch in seconds.",
                                prometheus::MetricType::Gauge,
                                std::floor(boot_unix + static_cast<double>(stat->start_time_ticks) / ticks)));
    }
    // Before Linux 6.2 counting means listing the directory: the event loop does that after
    // scans (Metrics::RefreshOpenFds) and the scrape reports its last count.
    const long open_fds = CountOpenDescriptorsFromSize().value_or(open_fds_->load());
    families.push_back(Single("process_open_fds",
                              "Number of open file descriptors (before Linux 6.2: as counted after a scan).",
                              prometheus::MetricType::Gauge, static_cast<double>(open_fds)));
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      families.push_back(Single("process_max_fds", "Maximum number of open file descriptors.",
                                prometheus::MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
    }
    return families;
  }

 private:
  static prometheus::MetricFamily Single(const char* name, const char* help, prometheus::MetricType type,
                                         double value) {
    prometheus::MetricFamily family{name, help, type, {}};
    prometheus::ClientMetric metric;
    if (type == prometheus::MetricType::Counter)
      metric.counter.value = value;
    else
      metric.gauge.value = value;
    family.metric.push_back(std::move(metric));
    return family;
  }
  std::shared_ptr<std::atomic<long>> open_fds_;
};

}  // namespace

std::string SanitizeLabelValue(std::string_view raw, size_t max_bytes) {
  std::string out;
  out.reserve(raw.size());
  size_t i = 0;
  while (i < raw.size()) {
    const size_t length = ValidUtf8SequenceLength(raw.substr(i));
    const auto byte = static_cast<unsigned char>(raw[i]);
    // Invalid bytes and control characters (a newline in a comm) both become U+FFFD.
    const bool replace = length == 0 || (length == 1 && (byte < 0x20 || byte == 0x7F));
    const size_t piece = replace ? kReplacementCharacter.size() : length;
    if (out.size() + piece > max_bytes) break;  // cut on a character boundary
    if (replace) {
      out.append(kReplacementCharacter);
      i += length == 0 ? 1 : length;
    } else {
      out.append(raw.substr(i, length));
      i += length;
    }
  }
  if (out.empty()) out = "unknown";
  return out;
}

namespace {

// A family's name and help text (docs: README, "Metrics").
struct FamilySpec {
  const char* name;
  const char* help;
};

template <typename Metric>
prometheus::Family<Metric>& Register(prometheus::Registry& registry, const FamilySpec& spec) {
  return prometheus::detail::Builder<Metric>().Name(spec.name).Help(spec.help).Register(registry);
}

// Name and help of each family, in the order of the members they initialize (metrics.h).
constexpr FamilySpec kProcessesFamily{"pidfd_processes",
                                      "Processes of the set watched now (running or zombie)."};
constexpr FamilySpec kStartsFamily{"pidfd_process_starts_total", "Processes that joined the set."};
constexpr FamilySpec kExitsFamily{
    "pidfd_process_exits_total",
    "Processes of the set that ended, by reason (exited, killed, oom_killed, dumped, "
    "unknown) and code (exit status or signal name)."};
constexpr FamilySpec kReapLatencyFamily{"pidfd_reap_latency_seconds",
                                        "Time from a process's exit to its parent's wait() collecting it."};
constexpr FamilySpec kLifetimeFamily{"pidfd_process_lifetime_seconds",
                                     "Time from a process's start to its exit."};
constexpr FamilySpec kCpuSecondsFamily{
    "pidfd_process_cpu_seconds_total",
    "CPU time of the set's processes that exited, counted at the exit, by mode "
    "(user, system); from taskstats exit records, and the rest of each exit at its reap "
    "where the eBPF probe runs (kernel_feature final_runtime)."};
constexpr FamilySpec kPeakRssFamily{
    "pidfd_process_peak_rss_bytes",
    "Peak resident memory (hiwater_rss) of each process of the set that exited; "
    "from taskstats exit records."};
constexpr FamilySpec kIoBytesFamily{
    "pidfd_process_io_bytes_total",
    "Storage I/O of the set's processes that exited, by direction (read, write), "
    "counted at the exit; from taskstats exit records (1 KiB granularity)."};
constexpr FamilySpec kZombiesFamily{
    "pidfd_zombies", "Processes of the set that exited and are not yet reaped by their parent."};
constexpr FamilySpec kZombiesByParentFamily{
    "pidfd_zombies_by_parent",
    "Zombies of the set by the command name of the parent that must reap them; present while non-zero."};
constexpr FamilySpec kOldestZombieFamily{
    "pidfd_oldest_zombie_exit_timestamp_seconds",
    "Unix time of the exit of the set's oldest current zombie; absent when there is none."};
constexpr FamilySpec kBuildInfoFamily{"pidfd_exporter_build_info",
                                      "Version and git revision of the running exporter; always 1."};
constexpr FamilySpec kKernelFeatureFamily{
    "pidfd_exporter_kernel_feature",
    "Whether the running kernel (and the exporter's privileges) provide a feature: 1 yes, 0 no."};
constexpr FamilySpec kWatchedPidfdsFamily{"pidfd_exporter_watched_pidfds",
                                          "Pidfds the exporter holds open and watches."};
constexpr FamilySpec kMissedExitsFamily{"pidfd_exporter_missed_exits_total",
                                        "Exits of set members seen only by the proc connector, without a "
                                        "pidfd in time (no reap latency for them)."};
constexpr FamilySpec kUnattributedExitsFamily{
    "pidfd_exporter_unattributed_exits_total",
    "Exits of processes that vanished before their identity could be read, so no set could be given."};
constexpr FamilySpec kErrorsFamily{"pidfd_exporter_errors_total", "Failed operations by kind."};
constexpr FamilySpec kScanDurationFamily{"pidfd_exporter_scan_duration_seconds",
                                         "Duration of full /proc reconciliation scans."};
constexpr FamilySpec kReloadSuccessfulFamily{"pidfd_exporter_config_last_reload_successful",
                                             "Whether the last configuration load or reload succeeded."};
constexpr FamilySpec kReloadTimestampFamily{"pidfd_exporter_config_last_reload_success_timestamp_seconds",
                                            "Unix time of the last successful configuration load or reload."};
constexpr FamilySpec kSetOverflowsFamily{"pidfd_exporter_set_overflows_total",
                                         "Set names counted under set=\"_other\" because limits.max_sets "
                                         "other sets were live; each name once while \"_other\" lives."};
constexpr FamilySpec kSetsExpiredFamily{
    "pidfd_exporter_sets_expired_total",
    "Templated sets removed with their series after limits.idle_set_timeout without member or event."};
constexpr FamilySpec kSetsFamily{"pidfd_exporter_sets",
                                 "Sets live now, \"_other\" not included (at most limits.max_sets)."};
constexpr FamilySpec kReapChecksFamily{
    "pidfd_exporter_reap_checks_total",
    "Checks of zombies for their reap on kernels without pidfd reap events (before 6.9); 0 on 6.9+."};
constexpr FamilySpec kReapChecksDelayedFamily{
    "pidfd_exporter_reap_checks_delayed_total",
    "Rounds of reap checks that the cap of 20,000 checks/s delayed: reap latencies of that time are "
    "less precise than max(1 ms, 2 %)."};
constexpr FamilySpec kConnectorMessagesFamily{
    "pidfd_exporter_connector_messages_total",
    "Proc connector messages received, after the kernel dropped thread events and event types the "
    "exporter never uses."};

}  // namespace

Metrics::Metrics(const Config& config)
    : registry_(std::make_shared<prometheus::Registry>()),
      set_registry_(std::make_shared<prometheus::Registry>()),
      processes_family_(Register<prometheus::Gauge>(*set_registry_, kProcessesFamily)),
      starts_family_(Register<prometheus::Counter>(*set_registry_, kStartsFamily)),
      exits_family_(Register<prometheus::Counter>(*set_registry_, kExitsFamily)),
      reap_latency_family_(Register<prometheus::Histogram>(*set_registry_, kReapLatencyFamily)),
      lifetime_family_(Register<prometheus::Histogram>(*set_registry_, kLifetimeFamily)),
      cpu_seconds_family_(Register<prometheus::Counter>(*set_registry_, kCpuSecondsFamily)),
      peak_rss_family_(Register<prometheus::Histogram>(*set_registry_, kPeakRssFamily)),
      io_bytes_family_(Register<prometheus::Counter>(*set_registry_, kIoBytesFamily)),
      zombies_family_(Register<prometheus::Gauge>(*set_registry_, kZombiesFamily)),
      zombies_by_parent_family_(Register<prometheus::Gauge>(*set_registry_, kZombiesByParentFamily)),
      oldest_zombie_family_(Register<prometheus::Gauge>(*set_registry_, kOldestZombieFamily)),
      build_info_family_(Register<prometheus::Gauge>(*registry_, kBuildInfoFamily)),
      kernel_feature_family_(Register<prometheus::Gauge>(*registry_, kKernelFeatureFamily)),
      watched_pidfds_family_(Register<prometheus::Gauge>(*registry_, kWatchedPidfdsFamily)),
      missed_exits_family_(Register<prometheus::Counter>(*set_registry_, kMissedExitsFamily)),
      unattributed_exits_family_(Register<prometheus::Counter>(*registry_, kUnattributedExitsFamily)),
      errors_family_(Register<prometheus::Counter>(*registry_, kErrorsFamily)),
      scan_duration_family_(Register<prometheus::Histogram>(*registry_, kScanDurationFamily)),
      reload_successful_family_(Register<prometheus::Gauge>(*registry_, kReloadSuccessfulFamily)),
      reload_timestamp_family_(Register<prometheus::Gauge>(*registry_, kReloadTimestampFamily)),
      set_overflows_family_(Register<prometheus::Counter>(*registry_, kSetOverflowsFamily)),
      sets_expired_family_(Register<prometheus::Counter>(*registry_, kSetsExpiredFamily)),
      sets_family_(Register<prometheus::Gauge>(*registry_, kSetsFamily)),
      reap_checks_family_(Register<prometheus::Counter>(*registry_, kReapChecksFamily)),
      reap_checks_delayed_family_(Register<prometheus::Counter>(*registry_, kReapChecksDelayedFamily)),
      connector_messages_family_(Register<prometheus::Counter>(*registry_, kConnectorMessagesFamily)),
      watched_pidfds_(watched_pidfds_family_.Add({})),
      unattributed_exits_(unattributed_exits_family_.Add({})),
      scan_duration_(scan_duration_family_.Add(
          {}, prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                      1, 2.5})),
      reload_successful_(reload_successful_family_.Add({})),
      reload_timestamp_(reload_timestamp_family_.Add({})),
      set_overflows_(set_overflows_family_.Add({})),
      sets_expired_(sets_expired_family_.Add({})),
      live_sets_gauge_(sets_family_.Add({})),
      reap_checks_(reap_checks_family_.Add({})),
      reap_checks_delayed_(reap_checks_delayed_family_.Add({})),
      connector_messages_(connector_messages_family_.Add({})),
      reap_latency_buckets_(config.reap_latency_buckets),
      lifetime_buckets_(config.lifetime_buckets),
      peak_rss_buckets_(config.peak_rss_buckets),
      reap_latency_bound_labels_(ExpositionWriter::BoundLabels(config.reap_latency_buckets)),
      lifetime_bound_labels_(ExpositionWriter::BoundLabels(config.lifetime_buckets)),
      peak_rss_bound_labels_(ExpositionWriter::BoundLabels(config.peak_rss_buckets)),
      max_sets_(config.max_sets),
      idle_set_timeout_(config.idle_set_timeout),
      process_collector_(std::make_shared<ProcessCollector>(open_fds_)) {
  RefreshOpenFds();
  build_info_family_.Add({{"version", kVersion}, {"revision", kRevision}}).Set(1);
  // The common error kinds exist from start-up at 0, so rate() works from the first error on.
  for (const char* operation :
       {"pidfd_open", "emfile", "proc_read", "epoll_ctl", "epoll_limit", "connector_overflow",
        "connector_receive", "taskstats_overflow", "taskstats_receive", "pid_reused_before_pidfd_open"}) {
    errors_.emplace(operation, &errors_family_.Add({{"op", operation}}));
  }
}

namespace {

using Type = ExpositionWriter::Type;

// One family of the set table: its header and what `write_set` appends for each live set. A
// family without any series is left out, as prometheus-cpp leaves it out.
template <typename Sets, typename WriteSet>
void WriteFamily(std::string& out, const FamilySpec& spec, Type type, const Sets& sets, WriteSet write_set) {
  const size_t header_at = out.size();
  ExpositionWriter writer(out);
  writer.Family(spec.name, spec.help, type);
  const size_t samples_at = out.size();
  for (const auto& set : sets) {
    if (!set.removed) write_set(writer, set);
  }
  if (out.size() == samples_at) out.resize(header_at);
}

// A prometheus-cpp histogram's buckets, sum and count (taken together under its own mutex).
void WriteHistogram(ExpositionWriter& writer, const char* name, const std::string& labels,
                    const prometheus::Histogram& histogram, const std::vector<std::string>& bound_labels) {
  const prometheus::ClientMetric metric = histogram.Collect();
  std::vector<uint64_t> counts;
  counts.reserve(metric.histogram.bucket.size());
  for (const auto& bucket : metric.histogram.bucket) counts.push_back(bucket.cumulative_count);
  writer.Histogram(name, labels, bound_labels, counts, metric.histogram.sample_sum);
}

}  // namespace

std::string Metrics::Serialize() const {
  std::string out;
  out.reserve(last_scrape_bytes_.load(std::memory_order_relaxed) + 4096);
  WriteSetFamilies(out);
  auto families = registry_->Collect();
  auto own = process_collector_->Collect();
  families.insert(families.end(), std::make_move_iterator(own.begin()), std::make_move_iterator(own.end()));
  out += prometheus::TextSerializer().Serialize(families);
  last_scrape_bytes_.store(out.size(), std::memory_order_relaxed);
  return out;
}

std::string Metrics::SerializeWithPrometheusCpp() const {
  auto families = set_registry_->Collect();
  const prometheus::Collectable* others[] = {registry_.get(), process_collector_.get()};
  for (const prometheus::Collectable* collectable : others) {
    auto more = collectable->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

void Metrics::WriteSetFamilies(std::string& out) const {
  std::lock_guard<std::mutex> lock(sets_mutex_);
  WriteFamily(out, kProcessesFamily, Type::kGauge, sets_, [](ExpositionWriter& writer, const SetSeries& set) {
    writer.Sample(kProcessesFamily.name, {}, set.labels, set.processes->Value());
  });
  WriteFamily(out, kStartsFamily, Type::kCounter, sets_, [](ExpositionWriter& writer, const SetSeries& set) {
    writer.Sample(kStartsFamily.name, {}, set.labels, set.starts->Value());
  });
  WriteFamily(out, kExitsFamily, Type::kCounter, sets_, [](ExpositionWriter& writer, const SetSeries& set) {
    for (const auto& [key, exit] : set.exits)
      writer.Sample(kExitsFamily.name, exit.labels, set.labels, exit.counter->Value());
  });
  WriteFamily(out, kReapLatencyFamily, Type::kHistogram, sets_,
              [this](ExpositionWriter& writer, const SetSeries& set) {
                WriteHistogram(writer, kReapLatencyFamily.name, set.labels, *set.reap_latency,
                               reap_latency_bound_labels_);
              });
  WriteFamily(
      out, kLifetimeFamily, Type::kHistogram, sets_, [this](ExpositionWriter& writer, const SetSeries& set) {
        WriteHistogram(writer, kLifetimeFamily.name, set.labels, *set.lifetime, lifetime_bound_labels_);
      });
  WriteResourceFamilies(out);
  WriteZombieFamilies(out);
  WriteFamily(out, kMissedExitsFamily, Type::kCounter, sets_,
              [](ExpositionWriter& writer, const SetSeries& set) {
                writer.Sample(kMissedExitsFamily.name, {}, set.labels, set.missed_exits->Value());
              });
}

void Metrics::WriteResourceFamilies(std::string& out) const {
  WriteFamily(
      out, kCpuSecondsFamily, Type::kCounter, sets_, [](ExpositionWriter& writer, const SetSeries& set) {
        if (!set.resources) return;
        writer.Sample(kCpuSecondsFamily.name, "mode=\"user\"", set.labels, set.resources->cpu_user->Value());
        writer.Sample(kCpuSecondsFamily.name, "mode=\"system\"", set.labels,
                      set.resources->cpu_system->Value());
      });
  WriteFamily(out, kPeakRssFamily, Type::kHistogram, sets_,
              [this](ExpositionWriter& writer, const SetSeries& set) {
                if (set.resources)
                  WriteHistogram(writer, kPeakRssFamily.name, set.labels, *set.resources->peak_rss,
                                 peak_rss_bound_labels_);
              });
  WriteFamily(out, kIoBytesFamily, Type::kCounter, sets_, [](ExpositionWriter& writer, const SetSeries& set) {
    if (!set.resources) return;
    writer.Sample(kIoBytesFamily.name, "direction=\"read\"", set.labels, set.resources->io_read->Value());
    writer.Sample(kIoBytesFamily.name, "direction=\"write\"", set.labels, set.resources->io_write->Value());
  });
}

void Metrics::WriteZombieFamilies(std::string& out) const {
  WriteFamily(out, kZombiesFamily, Type::kGauge, sets_, [](ExpositionWriter& writer, const SetSeries& set) {
    writer.Sample(kZombiesFamily.name, {}, set.labels, set.zombies->Value());
  });
  WriteFamily(
      out, kZombiesByParentFamily, Type::kGauge, sets_, [](ExpositionWriter& writer, const SetSeries& set) {
        for (const auto& [label, parent] : set.zombies_by_parent)
          writer.Sample(kZombiesByParentFamily.name, parent.labels, set.labels, parent.gauge->Value());
      });
  WriteFamily(out, kOldestZombieFamily, Type::kGauge, sets_,
              [](ExpositionWriter& writer, const SetSeries& set) {
                if (set.oldest_zombie)
                  writer.Sample(kOldestZombieFamily.name, {}, set.labels, set.oldest_zombie->Value());
              });
}

size_t Metrics::Handle(size_t index, uint32_t generation) {
  return index | (static_cast<size_t>(generation) << kGenerationShift);
}

Metrics::SetSeries* Metrics::Live(size_t slot) {
  SetSeries* set = Find(slot);
  if (!set) {
    CountError("stale_set_slot");
    return nullptr;
  }
  ++set->events;
  return set;
}

Metrics::SetSeries* Metrics::Find(size_t slot) {
  const size_t index = slot & kIndexMask;
  if (index >= sets_.size()) return nullptr;
  SetSeries& set = sets_[index];
  if (set.removed || set.generation != static_cast<uint32_t>(slot >> kGenerationShift)) return nullptr;
  return &set;
}

void Metrics::ResetSet(SetSeries& set) {
  set.removed = false;
  set.fixed = false;
  set.members = 0;
  set.zombie_count = 0;
  set.events = 1;
  set.events_seen = 0;
  set.exits_total.store(0, std::memory_order_relaxed);
  for (int i = 0; i < SetSeries::kRecentMinutes; ++i) {
    set.recent_minute[i].store(0, std::memory_order_relaxed);
    set.recent_count[i].store(0, std::memory_order_relaxed);
  }
}

size_t Metrics::CreateSet(const std::string& sanitized_name, const std::string& origin) {
  const prometheus::Labels labels{{"set", sanitized_name}};
  std::lock_guard<std::mutex> lock(sets_mutex_);
  size_t index = sets_.size();
  if (free_indexes_.empty()) {
    sets_.emplace_back();
  } else {
    index = free_indexes_.back();
    free_indexes_.pop_back();
    ResetSet(sets_[index]);
  }
  SetSeries& set = sets_[index];
  set.name = sanitized_name;
  set.origin = origin;
  set.labels = "set=\"" + EscapeLabelValue(sanitized_name) + "\"";
  set.processes = &processes_family_.Add(labels);
  set.starts = &starts_family_.Add(labels);
  set.reap_latency = &reap_latency_family_.Add(labels, reap_latency_buckets_);
  set.lifetime = &lifetime_family_.Add(labels, lifetime_buckets_);
  set.zombies = &zombies_family_.Add(labels);
  set.missed_exits = &missed_exits_family_.Add(labels);
  slot_by_name_[sanitized_name] = index;
  if (sanitized_name != kOverflowSetName) ++live_sets_;
  live_sets_gauge_.Set(static_cast<double>(live_sets_));
  return index;
}

size_t Metrics::SetSlot(std::string_view raw_name, const std::string& origin) {
  const std::string name = SanitizeLabelValue(raw_name);
  if (auto found = slot_by_name_.find(name); found != slot_by_name_.end()) {
    SetSeries& set = sets_[found->second];
    set.origin = origin;
    return Handle(found->second, set.generation);
  }
  if (live_sets_ >= max_sets_) return OverflowSlot(name);
  const size_t index = CreateSet(name, origin);
  return Handle(index, sets_[index].generation);
}

size_t Metrics::OverflowSlot(const std::string& sanitized_name) {
  if (overflowed_names_.size() >= kMaxRememberedOverflows) overflowed_names_.clear();
  if (overflowed_names_.insert(sanitized_name).second) {
    set_overflows_.Increment();
    LogWarn(
        "More than limits.max_sets sets live at once: this set's processes are counted under set=\"_other\"",
        {{"set", sanitized_name}, {"max_sets", std::to_string(max_sets_)}});
  }
  auto other = slot_by_name_.find(kOverflowSetName);
  const size_t index =
      other != slot_by_name_.end() ? other->second : CreateSet(kOverflowSetName, kOverflowSetName);
  return Handle(index, sets_[index].generation);
}

void Metrics::RemoveSet(size_t index) {
  SetSeries& set = sets_[index];
  processes_family_.Remove(set.processes);
  starts_family_.Remove(set.starts);
  reap_latency_family_.Remove(set.reap_latency);
  lifetime_family_.Remove(set.lifetime);
  zombies_family_.Remove(set.zombies);
  missed_exits_family_.Remove(set.missed_exits);
  if (set.oldest_zombie) oldest_zombie_family_.Remove(set.oldest_zombie);
  for (auto& [parent, series] : set.zombies_by_parent) zombies_by_parent_family_.Remove(series.gauge);
  for (auto& [key, series] : set.exits) exits_family_.Remove(series.counter);
  RemoveResourceSeries(set);
  set.zombies_by_parent.clear();
  set.exits.clear();
  set.oldest_zombie = nullptr;
  set.removed = true;
  ++set.generation;  // every handle to it is stale from now on
  slot_by_name_.erase(set.name);
  if (set.name == kOverflowSetName) {
    overflowed_names_.clear();  // an overflow from now on is a new episode, logged again
  } else {
    --live_sets_;
  }
  live_sets_gauge_.Set(static_cast<double>(live_sets_));
  free_indexes_.push_back(index);
}

void Metrics::RemoveSets(const std::set<std::string>& configured_origins, const std::vector<bool>& in_use) {
  std::lock_guard<std::mutex> lock(sets_mutex_);
  for (size_t index = 0; index < sets_.size(); ++index) {
    SetSeries& set = sets_[index];
    if (set.removed || set.name == kOverflowSetName) continue;
    if ((index < in_use.size() && in_use[index]) || configured_origins.count(set.origin)) continue;
    if (set.members > 0 || set.zombie_count > 0) continue;  // someone still holds its handle
    RemoveSet(index);
  }
}

std::vector<std::string> Metrics::ExpireIdleSets(std::chrono::steady_clock::time_point now) {
  std::vector<std::string> expired;
  // Activity is stamped without a timeout too: a reload that sets one counts from there.
  for (size_t index = 0; index < sets_.size(); ++index) {
    SetSeries& set = sets_[index];
    if (set.removed || set.fixed) continue;
    if (set.events != set.events_seen) {
      set.events_seen = set.events;
      set.last_active = now;
      continue;
    }
    if (!idle_set_timeout_ || set.members > 0 || set.zombie_count > 0) continue;
    if (now - set.last_active < *idle_set_timeout_) continue;
    expired.push_back(set.name);
    std::lock_guard<std::mutex> lock(sets_mutex_);
    RemoveSet(index);
    sets_expired_.Increment();
  }
  if (!expired.empty()) LogDebug("Idle sets removed", {{"count", std::to_string(expired.size())}});
  return expired;
}

std::chrono::milliseconds Metrics::IdleSweepInterval(std::optional<std::chrono::milliseconds> timeout) {
  using std::chrono::milliseconds;
  if (!timeout) return milliseconds(60000);
  return std::clamp(*timeout / 10, milliseconds(100), milliseconds(60000));
}

const std::string& Metrics::SetName(size_t slot) const {
  static const std::string kStale = "unknown";
  const size_t index = slot & kIndexMask;
  if (index >= sets_.size()) return kStale;
  const SetSeries& set = sets_[index];
  if (set.removed || set.generation != static_cast<uint32_t>(slot >> kGenerationShift)) return kStale;
  return set.name;
}

void Metrics::CreateFixedSets(const std::vector<std::string>& names) {
  for (SetSeries& set : sets_) set.fixed = false;
  for (const auto& name : names) {
    const size_t slot = SetSlot(name, name);
    SetSeries& set = sets_[slot & kIndexMask];
    // Past max_sets a fixed name lands in "_other", which stays expirable.
    if (set.name == SanitizeLabelValue(name)) set.fixed = true;
  }
}

void Metrics::ProcessJoined(size_t slot) {
  SetSeries* set = Live(slot);
  if (!set) return;
  ++set->members;
  set->processes->Increment();
  set->starts->Increment();
}

void Metrics::ProcessLeft(size_t slot) {
  SetSeries* set = Live(slot);
  if (!set) return;
  --set->members;
  set->processes->Decrement();
}

void Metrics::SetOldestZombie(size_t slot, std::optional<double> exit_unix_seconds) {
  SetSeries* live = Live(slot);
  if (!live) return;
  SetSeries& set = *live;
  if (!exit_unix_seconds) {
    if (set.oldest_zombie) {
      std::lock_guard<std::mutex> lock(sets_mutex_);
      oldest_zombie_family_.Remove(set.oldest_zombie);
      set.oldest_zombie = nullptr;
    }
    return;
  }
  // Created with its value: a scrape between Add() and Set() would see a timestamp of 0.
  if (!set.oldest_zombie) {
    prometheus::Gauge* gauge = &oldest_zombie_family_.Add({{"set", set.name}}, *exit_unix_seconds);
    std::lock_guard<std::mutex> lock(sets_mutex_);
    set.oldest_zombie = gauge;
  }
  set.oldest_zombie->Set(*exit_unix_seconds);
}

void Metrics::ZombieAdded(size_t slot, const std::string& parent_label) {
  SetSeries* live = Live(slot);
  if (!live) return;
  SetSeries& set = *live;
  ++set.zombie_count;
  set.zombies->Increment();
  AddParentZombie(set, parent_label);
}

void Metrics::ZombieRemoved(size_t slot, const std::string& parent_label) {
  SetSeries* live = Live(slot);
  if (!live) return;
  SetSeries& set = *live;
  --set.zombie_count;
  set.zombies->Decrement();
  DropParentZombie(set, parent_label);
}

void Metrics::ZombieParentChanged(size_t slot, const std::string& old_parent_label,
                                  const std::string& new_parent_label) {
  if (old_parent_label == new_parent_label) return;
  SetSeries* live = Live(slot);
  if (!live) return;
  DropParentZombie(*live, old_parent_label);
  AddParentZombie(*live, new_parent_label);
}

void Metrics::AddParentZombie(SetSeries& set, const std::string& parent_label) {
  auto parent = set.zombies_by_parent.find(parent_label);
  if (parent == set.zombies_by_parent.end()) {
    // Created with its value: a scrape between Add() and Set() would see 0.
    SetSeries::ParentSeries series{
        &zombies_by_parent_family_.Add({{"set", set.name}, {"parent", parent_label}}, 1.0), 1,
        "parent=\"" + EscapeLabelValue(parent_label) + "\""};
    std::lock_guard<std::mutex> lock(sets_mutex_);
    set.zombies_by_parent.emplace(parent_label, std::move(series));
    return;
  }
  parent->second.gauge->Set(static_cast<double>(++parent->second.count));
}

void Metrics::DropParentZombie(SetSeries& set, const std::string& parent_label) {
  auto parent = set.zombies_by_parent.find(parent_label);
  if (parent == set.zombies_by_parent.end()) return;
  if (--parent->second.count > 0) {
    parent->second.gauge->Set(static_cast<double>(parent->second.count));
    return;
  }
  std::lock_guard<std::mutex> lock(sets_mutex_);
  zombies_by_parent_family_.Remove(parent->second.gauge);
  set.zombies_by_parent.erase(parent);
}

void Metrics::ExitCounted(size_t slot, const char* reason, const std::string& code, double now_unix_seconds) {
  SetSeries* live = Live(slot);
  if (!live) return;
  SetSeries& set = *live;
  auto key = std::make_pair(std::string(reason), code);
  auto found = set.exits.find(key);
  if (found == set.exits.end()) {
    SetSeries::ExitSeries series{
        &exits_family_.Add({{"set", set.name}, {"reason", reason}, {"code", code}}),
        "code=\"" + EscapeLabelValue(code) + "\",reason=\"" + EscapeLabelValue(reason) + "\""};
    std::lock_guard<std::mutex> lock(sets_mutex_);
    found = set.exits.emplace(std::move(key), std::move(series)).first;
  }
  found->second.counter->Increment();
  set.exits_total.fetch_add(1, std::memory_order_relaxed);
  const auto minute = static_cast<int64_t>(now_unix_seconds / 60);
  const int bucket = static_cast<int>(minute % SetSeries::kRecentMinutes);
  if (set.recent_minute[bucket].load(std::memory_order_relaxed) != minute) {
    set.recent_count[bucket].store(0, std::memory_order_relaxed);
    set.recent_minute[bucket].store(minute, std::memory_order_relaxed);
  }
  set.recent_count[bucket].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::ExitResourcesObserved(size_t slot, double user_seconds, double system_seconds,
                                    uint64_t peak_rss_bytes, uint64_t read_bytes, uint64_t write_bytes) {
  SetSeries* set = Live(slot);
  if (!set) return;
  if (!set->resources) {
    const std::string& name = set->name;
    const SetSeries::ResourceSeries series{&cpu_seconds_family_.Add({{"set", name}, {"mode", "user"}}),
                                           &cpu_seconds_family_.Add({{"set", name}, {"mode", "system"}}),
                                           &peak_rss_family_.Add({{"set", name}}, peak_rss_buckets_),
                                           &io_bytes_family_.Add({{"set", name}, {"direction", "read"}}),
                                           &io_bytes_family_.Add({{"set", name}, {"direction", "write"}})};
    std::lock_guard<std::mutex> lock(sets_mutex_);
    set->resources = series;
  }
  SetSeries::ResourceSeries& series = *set->resources;
  AddCpu(series, user_seconds, system_seconds);
  series.peak_rss->Observe(static_cast<double>(peak_rss_bytes));
  series.io_read->Increment(static_cast<double>(read_bytes));
  series.io_write->Increment(static_cast<double>(write_bytes));
}

void Metrics::ExitCpuAdded(size_t slot, double user_seconds, double system_seconds) {
  // Up to a minute after the exit (at the reap): a reload may have removed the set since, which
  // is no bug (Live() would count stale_set_slot).
  SetSeries* set = Find(slot);
  if (set && set->resources) AddCpu(*set->resources, user_seconds, system_seconds);
}

void Metrics::AddCpu(SetSeries::ResourceSeries& series, double user_seconds, double system_seconds) {
  if (std::isfinite(user_seconds) && user_seconds > 0) series.cpu_user->Increment(user_seconds);
  if (std::isfinite(system_seconds) && system_seconds > 0) series.cpu_system->Increment(system_seconds);
}

void Metrics::RemoveResourceSeries(SetSeries& set) {
  if (!set.resources) return;
  cpu_seconds_family_.Remove(set.resources->cpu_user);
  cpu_seconds_family_.Remove(set.resources->cpu_system);
  peak_rss_family_.Remove(set.resources->peak_rss);
  io_bytes_family_.Remove(set.resources->io_read);
  io_bytes_family_.Remove(set.resources->io_write);
  set.resources.reset();
}

void Metrics::ReapLatencyObserved(size_t slot, double seconds) {
  SetSeries* set = Live(slot);
  if (set && std::isfinite(seconds)) set->reap_latency->Observe(seconds < 0 ? 0 : seconds);
}

void Metrics::LifetimeObserved(size_t slot, double seconds) {
  SetSeries* set = Live(slot);
  if (set && std::isfinite(seconds)) set->lifetime->Observe(seconds < 0 ? 0 : seconds);
}

void Metrics::MissedExit(size_t slot) {
  if (SetSeries* set = Live(slot)) set->missed_exits->Increment();
}

void Metrics::UnattributedExit() {
  unattributed_exits_.Increment();
}

void Metrics::CountError(const std::string& operation, uint64_t count) {
  auto found = errors_.find(operation);
  if (found == errors_.end())
    found = errors_.emplace(operation, &errors_family_.Add({{"op", operation}})).first;
  found->second->Increment(static_cast<double>(count));
}

void Metrics::SetKernelFeatures(const KernelFeatures& features) {
  const std::pair<const char*, bool> values[] = {
      {"reap_events", features.reap_events},
      {"exit_status", features.exit_status},
      {"proc_connector", features.proc_connector},
      {"taskstats", features.taskstats},
      {"pidfs_identity", features.pidfs_identity},
      {"get_info", features.get_info},
      {"oom_attribution", features.oom_kernel_log || features.oom_cgroup_counter},
      {"oom_kernel_log", features.oom_kernel_log},
      {"oom_cgroup_counter", features.oom_cgroup_counter},
      {"exit_resources", features.exit_resources},
      {"final_runtime", features.final_runtime}};
  for (const auto& [name, present] : values)
    kernel_feature_family_.Add({{"feature", name}}).Set(present ? 1 : 0);
}

void Metrics::ReapChecksMade(size_t checks, bool delayed) {
  reap_checks_.Increment(static_cast<double>(checks));
  if (delayed) reap_checks_delayed_.Increment();
}

void Metrics::SetWatchedPidfds(int64_t count) {
  watched_pidfds_.Set(static_cast<double>(count));
}

void Metrics::ScanDuration(double seconds) {
  scan_duration_.Observe(seconds);
}

void Metrics::ConnectorMessagesReceived(size_t count) {
  connector_messages_.Increment(static_cast<double>(count));
}

void Metrics::ConfigReloaded(bool successful, double now_unix_seconds) {
  reload_successful_.Set(successful ? 1 : 0);
  if (successful) reload_timestamp_.Set(now_unix_seconds);
}

void Metrics::RefreshOpenFds() {
  if (CountOpenDescriptorsFromSize()) return;  // counted at each scrape instead
  // Out of descriptors: keep the last count rather than report 0.
  if (const std::optional<long> count = CountOpenDescriptorsByListing()) open_fds_->store(*count);
}

std::vector<StatusSet> Metrics::StatusSets(double now_unix_seconds) const {
  std::vector<StatusSet> rows;
  const auto current_minute = static_cast<int64_t>(now_unix_seconds / 60);
  std::lock_guard<std::mutex> lock(sets_mutex_);
  rows.reserve(sets_.size());
  for (const SetSeries& set : sets_) {
    if (set.removed) continue;
    StatusSet row;
    row.name = set.name;
    row.watched = static_cast<int64_t>(set.processes->Value());
    row.zombies = static_cast<int64_t>(set.zombies->Value());
    row.exits_total = set.exits_total.load(std::memory_order_relaxed);
    for (int i = 0; i < SetSeries::kRecentMinutes; ++i) {
      // The last five whole minutes plus the current one.
      if (current_minute - set.recent_minute[i].load(std::memory_order_relaxed) < 5) {
        row.exits_recent += set.recent_count[i].load(std::memory_order_relaxed);
      }
    }
    const auto histogram = set.reap_latency->Collect().histogram;
    for (const auto& bucket : histogram.bucket) {
      if (std::isfinite(bucket.upper_bound)) row.reap_latency_bounds.push_back(bucket.upper_bound);
      row.reap_latency_cumulative_counts.push_back(bucket.cumulative_count);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace pidfd_exporter
