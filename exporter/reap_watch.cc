#include "reap_watch.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace pidfd_exporter {

namespace {
constexpr double kNanosecondsPerSecond = 1e9;
}  // namespace

ReapWatch::ReapWatch(ReapWatchOptions options)
    : options_(options), tokens_(static_cast<double>(std::max<int64_t>(1, options.burst_checks))) {}

int64_t ReapWatch::Interval(int64_t age_ns) const {
  const double proportional = options_.age_fraction * static_cast<double>(std::max<int64_t>(0, age_ns));
  return std::max(options_.min_interval_ns, static_cast<int64_t>(proportional));
}

int64_t ReapWatch::ReportedLatency(int64_t exit_ns, int64_t last_zombie_ns, int64_t reaped_seen_ns) {
  const int64_t last = std::max(exit_ns, last_zombie_ns);
  const int64_t seen = std::max(last, reaped_seen_ns);
  return last + (seen - last) / 2 - exit_ns;
}

void ReapWatch::Add(uint64_t key, int64_t exit_ns, int64_t now_ns) {
  Entry& entry = entries_[key];
  entry.exit_ns = exit_ns;
  entry.last_zombie_ns = std::max(exit_ns, now_ns);
  Schedule(key, entry, now_ns);
}

void ReapWatch::Remove(uint64_t key) {
  // Its heap item, if any, goes stale and is skipped when it reaches the top.
  entries_.erase(key);
  CompactIfMostlyStale();
  DropStaleTop();
}

void ReapWatch::Schedule(uint64_t key, Entry& entry, int64_t now_ns) {
  const int64_t deadline = now_ns + Interval(now_ns - entry.exit_ns);
  entry.deadline_ns = deadline;
  entry.generation = next_generation_++;
  heap_.push_back({deadline, key, entry.generation});
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
  CompactIfMostlyStale();
  DropStaleTop();  // a re-added key's old item may be on top
}

bool ReapWatch::IsLive(const HeapItem& item) const {
  const auto found = entries_.find(item.key);
  return found != entries_.end() && found->second.deadline_ns && found->second.generation == item.generation;
}

void ReapWatch::DropStaleTop() {
  while (!heap_.empty() && !IsLive(heap_.front())) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    heap_.pop_back();
  }
}

// Removed and rescheduled keys leave stale items behind; rebuild once they outnumber the
// live ones, so the heap stays within a constant factor of the watched set.
void ReapWatch::CompactIfMostlyStale() {
  if (heap_.size() <= 2 * entries_.size() + 64) return;
  heap_.clear();
  for (const auto& [key, entry] : entries_) {
    if (entry.deadline_ns) heap_.push_back({*entry.deadline_ns, key, entry.generation});
  }
  std::make_heap(heap_.begin(), heap_.end(), std::greater<>());
}

void ReapWatch::Refill(int64_t now_ns) {
  if (options_.max_checks_per_second <= 0 || now_ns <= refilled_at_ns_) return;
  const double earned = static_cast<double>(now_ns - refilled_at_ns_) *
                        static_cast<double>(options_.max_checks_per_second) / kNanosecondsPerSecond;
  tokens_ = std::min(tokens_ + earned, static_cast<double>(std::max<int64_t>(1, options_.burst_checks)));
  refilled_at_ns_ = now_ns;
}

std::optional<int64_t> ReapWatch::NextDeadline() const {
  // Every mutating call ends with DropStaleTop(): the top, if any, is live.
  if (heap_.empty()) return std::nullopt;
  const int64_t earliest = heap_.front().deadline_ns;
  if (options_.max_checks_per_second > 0 && tokens_ < 1.0) {
    // Out of budget: wake when a tenth of a burst is earned, not for every single check.
    const double batch = std::max(1.0, static_cast<double>(options_.burst_checks) / 10);
    const double wait_ns =
        (batch - tokens_) * kNanosecondsPerSecond / static_cast<double>(options_.max_checks_per_second);
    return std::max(earliest, refilled_at_ns_ + static_cast<int64_t>(std::ceil(wait_ns)));
  }
  return earliest;
}

void ReapWatch::TakeDue(int64_t now_ns, std::vector<uint64_t>* due) {
  due->clear();
  Refill(now_ns);
  const bool capped = options_.max_checks_per_second > 0;
  for (;;) {
    DropStaleTop();
    if (heap_.empty() || heap_.front().deadline_ns > now_ns) break;
    if (capped && tokens_ < 1.0) {
      ++cap_reached_;  // the keys still due keep their deadlines and go first next time
      break;
    }
    const HeapItem top = heap_.front();
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    heap_.pop_back();
    entries_.find(top.key)->second.deadline_ns.reset();
    due->push_back(top.key);
    if (capped) tokens_ -= 1.0;
  }
  checks_handed_out_ += due->size();
}

bool ReapWatch::CheckedStillZombie(uint64_t key, int64_t now_ns) {
  const auto found = entries_.find(key);
  if (found == entries_.end()) return false;
  found->second.last_zombie_ns = std::max(found->second.last_zombie_ns, now_ns);
  Schedule(key, found->second, now_ns);
  return true;
}

std::optional<ReapWatch::Reap> ReapWatch::FoundReaped(uint64_t key, int64_t now_ns) {
  const auto found = entries_.find(key);
  if (found == entries_.end()) return std::nullopt;
  const int64_t exit = found->second.exit_ns;
  const int64_t latency = ReportedLatency(exit, found->second.last_zombie_ns, now_ns);
  entries_.erase(found);
  DropStaleTop();  // when it was not handed out, its item is stale now
  return Reap{exit + latency, latency};
}

}  // namespace pidfd_exporter
