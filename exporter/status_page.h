// StatusPage: renders the HTML page served at `/` from a StatusSnapshot: the exporter's
// name, version and links, a table per process set and the current zombies with their
// parents. Every string that came from /proc is HTML-escaped. Pure function of its input;
// any thread may call it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pidfd_exporter {

struct StatusZombie {
  std::string set;
  int pid = 0;
  std::string comm;
  int parent_pid = 0;
  std::string parent_comm;
  double exit_unix_seconds = 0;  // exit time, or first sight when exit_time_known is false
  bool exit_time_known = true;
};

struct StatusSet {
  std::string name;
  int64_t watched = 0;
  int64_t zombies = 0;
  double oldest_zombie_exit_unix_seconds = 0;  // 0 when there is no zombie
  uint64_t exits_total = 0;
  uint64_t exits_recent = 0;  // exits in the last `recent_window_seconds`
  // Reap latency histogram: upper bounds (without +Inf) and cumulative counts (with +Inf
  // last), as prometheus-cpp reports them; the page derives p50/p99 like histogram_quantile.
  std::vector<double> reap_latency_bounds;
  std::vector<uint64_t> reap_latency_cumulative_counts;
};

struct StatusSnapshot {
  std::string version;
  std::string revision;
  std::string telemetry_path = "/metrics";
  std::string config_source;
  double now_unix_seconds = 0;
  double recent_window_seconds = 300;
  std::vector<std::pair<std::string, bool>> kernel_features;
  std::vector<StatusSet> sets;
  std::vector<StatusZombie> zombies;  // oldest first
};

std::string RenderStatusPage(const StatusSnapshot& snapshot);
// Fills each set's oldest_zombie_exit_unix_seconds from snapshot->zombies (oldest first): the
// zombie board is the one source of which zombies exist.
void AttachOldestZombies(StatusSnapshot* snapshot);
// &, <, >, " and ' as entities; invalid UTF-8 bytes as U+FFFD; control bytes as U+FFFD.
std::string HtmlEscape(std::string_view text);
// The q-quantile (0..1) of a classic histogram, linear within the bucket as PromQL's
// histogram_quantile does; NaN when the histogram is empty.
double HistogramQuantile(double q, const std::vector<double>& bounds,
                         const std::vector<uint64_t>& cumulative_counts);

}  // namespace pidfd_exporter
