#include "metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmath>

#include "build_info.h"
#include "procfs.h"
#include "utf8.h"

namespace pidfd_exporter {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// The exporter's own process_* metrics (client library conventions): read from
// /proc/self at scrape time, on the HTTP thread that scrapes.
class ProcessCollector final : public prometheus::Collectable {
 public:
  explicit ProcessCollector(std::shared_ptr<std::atomic<long>> open_fds) : open_fds_(std::move(open_fds)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families;
    const auto stat_text = ReadFileAt(AT_FDCWD, "/proc/self/stat");
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
    families.push_back(Single("process_open_fds",
                              "Number of open file descriptors (counted after each scan).",
                              prometheus::MetricType::Gauge, static_cast<double>(open_fds_->load())));
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

Metrics::Metrics(const Config& config)
    : registry_(std::make_shared<prometheus::Registry>()),
      processes_family_(BuildGauge()
                            .Name("pidfd_processes")
                            .Help("Processes of the set watched now (running or zombie).")
                            .Register(*registry_)),
      starts_family_(BuildCounter()
                         .Name("pidfd_process_starts_total")
                         .Help("Processes that joined the set.")
                         .Register(*registry_)),
      exits_family_(
          BuildCounter()
              .Name("pidfd_process_exits_total")
              .Help("Processes of the set that ended, by reason (exited, killed, dumped, unknown) and "
                    "code (exit status or signal name).")
              .Register(*registry_)),
      reap_latency_family_(BuildHistogram()
                               .Name("pidfd_reap_latency_seconds")
                               .Help("Time from a process's exit to its parent's wait() collecting it.")
                               .Register(*registry_)),
      lifetime_family_(BuildHistogram()
                           .Name("pidfd_process_lifetime_seconds")
                           .Help("Time from a process's start to its exit.")
                           .Register(*registry_)),
      zombies_family_(BuildGauge()
                          .Name("pidfd_zombies")
                          .Help("Processes of the set that exited and are not yet reaped by their parent.")
                          .Register(*registry_)),
      zombies_by_parent_family_(
          BuildGauge()
              .Name("pidfd_zombies_by_parent")
              .Help("Zombies of the set by the command name of the parent that must reap "
                    "them; present while non-zero.")
              .Register(*registry_)),
      oldest_zombie_family_(BuildGauge()
                                .Name("pidfd_oldest_zombie_exit_timestamp_seconds")
                                .Help("Unix time of the exit of the set's oldest current zombie; absent when "
                                      "there is none.")
                                .Register(*registry_)),
      build_info_family_(BuildGauge()
                             .Name("pidfd_exporter_build_info")
                             .Help("Version and git revision of the running exporter; always 1.")
                             .Register(*registry_)),
      kernel_feature_family_(BuildGauge()
                                 .Name("pidfd_exporter_kernel_feature")
                                 .Help("Whether the running kernel (and the exporter's privileges) provide a "
                                       "feature: 1 yes, 0 no.")
                                 .Register(*registry_)),
      watched_pidfds_family_(BuildGauge()
                                 .Name("pidfd_exporter_watched_pidfds")
                                 .Help("Pidfds the exporter holds open and watches.")
                                 .Register(*registry_)),
      missed_exits_family_(BuildCounter()
                               .Name("pidfd_exporter_missed_exits_total")
                               .Help("Exits of set members seen only by the proc connector, without a pidfd "
                                     "in time (no reap latency for them).")
                               .Register(*registry_)),
      unattributed_exits_family_(BuildCounter()
                                     .Name("pidfd_exporter_unattributed_exits_total")
                                     .Help("Exits of processes that vanished before their identity could be "
                                           "read, so no set could be given.")
                                     .Register(*registry_)),
      errors_family_(BuildCounter()
                         .Name("pidfd_exporter_errors_total")
                         .Help("Failed operations by kind.")
                         .Register(*registry_)),
      scan_duration_family_(BuildHistogram()
                                .Name("pidfd_exporter_scan_duration_seconds")
                                .Help("Duration of full /proc reconciliation scans.")
                                .Register(*registry_)),
      reload_successful_family_(BuildGauge()
                                    .Name("pidfd_exporter_config_last_reload_successful")
                                    .Help("Whether the last configuration load or reload succeeded.")
                                    .Register(*registry_)),
      reload_timestamp_family_(BuildGauge()
                                   .Name("pidfd_exporter_config_last_reload_success_timestamp_seconds")
                                   .Help("Unix time of the last successful configuration load or reload.")
                                   .Register(*registry_)),
      watched_pidfds_(watched_pidfds_family_.Add({})),
      unattributed_exits_(unattributed_exits_family_.Add({})),
      scan_duration_(scan_duration_family_.Add(
          {}, prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                      1, 2.5})),
      reload_successful_(reload_successful_family_.Add({})),
      reload_timestamp_(reload_timestamp_family_.Add({})),
      reap_latency_buckets_(config.reap_latency_buckets),
      lifetime_buckets_(config.lifetime_buckets),
      max_sets_(config.max_sets),
      process_collector_(std::make_shared<ProcessCollector>(open_fds_)) {
  RefreshOpenFds();
  build_info_family_.Add({{"version", kVersion}, {"revision", kRevision}}).Set(1);
  // The common error kinds exist from start-up at 0, so rate() works from the first error on.
  for (const char* operation :
       {"pidfd_open", "emfile", "proc_read", "epoll_ctl", "epoll_limit", "connector_overflow",
        "connector_receive", "taskstats_overflow", "taskstats_receive"}) {
    errors_.emplace(operation, &errors_family_.Add({{"op", operation}}));
  }
}

std::string Metrics::Serialize() const {
  auto families = registry_->Collect();
  auto own = process_collector_->Collect();
  families.insert(families.end(), std::make_move_iterator(own.begin()), std::make_move_iterator(own.end()));
  return prometheus::TextSerializer().Serialize(families);
}

Metrics::SetSeries& Metrics::CreateSet(const std::string& sanitized_name, const std::string& origin) {
  const prometheus::Labels labels{{"set", sanitized_name}};
  std::lock_guard<std::mutex> lock(sets_mutex_);
  SetSeries& set = sets_.emplace_back();
  set.name = sanitized_name;
  set.origin = origin;
  set.processes = &processes_family_.Add(labels);
  set.starts = &starts_family_.Add(labels);
  set.reap_latency = &reap_latency_family_.Add(labels, reap_latency_buckets_);
  set.lifetime = &lifetime_family_.Add(labels, lifetime_buckets_);
  set.zombies = &zombies_family_.Add(labels);
  set.missed_exits = &missed_exits_family_.Add(labels);
  slot_by_name_[sanitized_name] = sets_.size() - 1;
  ++live_sets_;
  return set;
}

size_t Metrics::SetSlot(std::string_view raw_name, const std::string& origin) {
  const std::string name = SanitizeLabelValue(raw_name);
  if (auto found = slot_by_name_.find(name); found != slot_by_name_.end()) {
    sets_[found->second].origin = origin;
    return found->second;
  }
  if (live_sets_ >= max_sets_) {
    if (auto other = slot_by_name_.find(kOverflowSetName); other != slot_by_name_.end()) return other->second;
    CreateSet(kOverflowSetName, kOverflowSetName);
    return sets_.size() - 1;
  }
  CreateSet(name, origin);
  return sets_.size() - 1;
}

void Metrics::RemoveSets(const std::set<std::string>& configured_origins, const std::vector<bool>& in_use) {
  std::lock_guard<std::mutex> lock(sets_mutex_);
  for (size_t slot = 0; slot < sets_.size(); ++slot) {
    SetSeries& set = sets_[slot];
    if (set.removed || set.name == kOverflowSetName) continue;
    if ((slot < in_use.size() && in_use[slot]) || configured_origins.count(set.origin)) continue;
    processes_family_.Remove(set.processes);
    starts_family_.Remove(set.starts);
    reap_latency_family_.Remove(set.reap_latency);
    lifetime_family_.Remove(set.lifetime);
    zombies_family_.Remove(set.zombies);
    missed_exits_family_.Remove(set.missed_exits);
    if (set.oldest_zombie) oldest_zombie_family_.Remove(set.oldest_zombie);
    for (auto& [parent, series] : set.zombies_by_parent) zombies_by_parent_family_.Remove(series.gauge);
    for (auto& [key, counter] : set.exits) exits_family_.Remove(counter);
    set.zombies_by_parent.clear();
    set.exits.clear();
    set.oldest_zombie = nullptr;
    set.removed = true;
    slot_by_name_.erase(set.name);
    --live_sets_;
  }
}

const std::string& Metrics::SetName(size_t slot) const {
  return sets_[slot].name;
}

void Metrics::CreateFixedSets(const std::vector<std::string>& names) {
  for (const auto& name : names) SetSlot(name, name);
}

void Metrics::ProcessJoined(size_t slot) {
  sets_[slot].processes->Increment();
  sets_[slot].starts->Increment();
}

void Metrics::ProcessLeft(size_t slot) {
  sets_[slot].processes->Decrement();
}

void Metrics::SetOldestZombie(size_t slot, std::optional<double> exit_unix_seconds) {
  SetSeries& set = sets_[slot];
  if (!exit_unix_seconds) {
    if (set.oldest_zombie) {
      oldest_zombie_family_.Remove(set.oldest_zombie);
      set.oldest_zombie = nullptr;
    }
    return;
  }
  // Created with its value: a scrape between Add() and Set() would see a timestamp of 0.
  if (!set.oldest_zombie) {
    set.oldest_zombie = &oldest_zombie_family_.Add({{"set", set.name}}, *exit_unix_seconds);
  }
  set.oldest_zombie->Set(*exit_unix_seconds);
}

void Metrics::ZombieAdded(size_t slot, const std::string& parent_label) {
  SetSeries& set = sets_[slot];
  set.zombies->Increment();
  AddParentZombie(set, parent_label);
}

void Metrics::ZombieRemoved(size_t slot, const std::string& parent_label) {
  SetSeries& set = sets_[slot];
  set.zombies->Decrement();
  if (auto parent = set.zombies_by_parent.find(parent_label); parent != set.zombies_by_parent.end()) {
    if (--parent->second.count <= 0) {
      zombies_by_parent_family_.Remove(parent->second.gauge);
      set.zombies_by_parent.erase(parent);
    } else {
      parent->second.gauge->Set(static_cast<double>(parent->second.count));
    }
  }
}

void Metrics::ZombieParentChanged(size_t slot, const std::string& old_parent_label,
                                  const std::string& new_parent_label) {
  if (old_parent_label == new_parent_label) return;
  SetSeries& set = sets_[slot];
  if (auto parent = set.zombies_by_parent.find(old_parent_label); parent != set.zombies_by_parent.end()) {
    if (--parent->second.count <= 0) {
      zombies_by_parent_family_.Remove(parent->second.gauge);
      set.zombies_by_parent.erase(parent);
    } else {
      parent->second.gauge->Set(static_cast<double>(parent->second.count));
    }
  }
  AddParentZombie(set, new_parent_label);
}

void Metrics::AddParentZombie(SetSeries& set, const std::string& parent_label) {
  auto& parent = set.zombies_by_parent[parent_label];
  ++parent.count;
  // Created with its value: a scrape between Add() and Set() would see 0.
  if (!parent.gauge) {
    parent.gauge = &zombies_by_parent_family_.Add({{"set", set.name}, {"parent", parent_label}},
                                                  static_cast<double>(parent.count));
  }
  parent.gauge->Set(static_cast<double>(parent.count));
}

void Metrics::ExitCounted(size_t slot, const char* reason, const std::string& code, double now_unix_seconds) {
  SetSeries& set = sets_[slot];
  auto key = std::make_pair(std::string(reason), code);
  auto found = set.exits.find(key);
  if (found == set.exits.end()) {
    prometheus::Counter* counter =
        &exits_family_.Add({{"set", set.name}, {"reason", reason}, {"code", code}});
    found = set.exits.emplace(std::move(key), counter).first;
  }
  found->second->Increment();
  set.exits_total.fetch_add(1, std::memory_order_relaxed);
  const auto minute = static_cast<int64_t>(now_unix_seconds / 60);
  const int bucket = static_cast<int>(minute % SetSeries::kRecentMinutes);
  if (set.recent_minute[bucket].load(std::memory_order_relaxed) != minute) {
    set.recent_count[bucket].store(0, std::memory_order_relaxed);
    set.recent_minute[bucket].store(minute, std::memory_order_relaxed);
  }
  set.recent_count[bucket].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::ReapLatencyObserved(size_t slot, double seconds) {
  if (std::isfinite(seconds)) sets_[slot].reap_latency->Observe(seconds < 0 ? 0 : seconds);
}

void Metrics::LifetimeObserved(size_t slot, double seconds) {
  if (std::isfinite(seconds)) sets_[slot].lifetime->Observe(seconds < 0 ? 0 : seconds);
}

void Metrics::MissedExit(size_t slot) {
  sets_[slot].missed_exits->Increment();
}

void Metrics::UnattributedExit() {
  unattributed_exits_.Increment();
}

void Metrics::CountError(const std::string& operation) {
  auto found = errors_.find(operation);
  if (found == errors_.end())
    found = errors_.emplace(operation, &errors_family_.Add({{"op", operation}})).first;
  found->second->Increment();
}

void Metrics::SetKernelFeatures(const KernelFeatures& features) {
  const std::pair<const char*, bool> values[] = {
      {"reap_events", features.reap_events},       {"exit_status", features.exit_status},
      {"proc_connector", features.proc_connector}, {"taskstats", features.taskstats},
      {"pidfs_identity", features.pidfs_identity}, {"get_info", features.get_info}};
  for (const auto& [name, present] : values)
    kernel_feature_family_.Add({{"feature", name}}).Set(present ? 1 : 0);
}

void Metrics::SetWatchedPidfds(int64_t count) {
  watched_pidfds_.Set(static_cast<double>(count));
}

void Metrics::ScanDuration(double seconds) {
  scan_duration_.Observe(seconds);
}

void Metrics::ConfigReloaded(bool successful, double now_unix_seconds) {
  reload_successful_.Set(successful ? 1 : 0);
  if (successful) reload_timestamp_.Set(now_unix_seconds);
}

void Metrics::RefreshOpenFds() {
  DIR* directory = opendir("/proc/self/fd");
  if (!directory) return;  // out of descriptors: keep the last count rather than report 0
  long count = 0;
  while (const dirent* entry = readdir(directory)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(directory);
  open_fds_->store(count - 1);  // not the directory stream's own descriptor
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
