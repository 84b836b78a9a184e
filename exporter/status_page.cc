// StatusPage: see status_page.h. The page is built by string concatenation; every value
// that is not a literal of this file goes through HtmlEscape or a number formatter.
#include "status_page.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "utf8.h"

namespace pidfd_exporter {
namespace {

constexpr char kNoData[] = "\xE2\x80\x93";    // "–" (en dash)
constexpr char kAtLeast[] = "\xE2\x89\xA5 ";  // "≥ "

// Only ever called with literal "%...g"-style formats from this file.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
std::string FormatNumber(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), format, value);
  return buffer;
}
#pragma GCC diagnostic pop

// Whole seconds in the two largest units: "45s", "3m12s", "1h5m", "2d3h".
std::string FormatAge(double seconds) {
  if (!std::isfinite(seconds)) return kNoData;
  if (seconds < 0) seconds = 0;  // the wall clock stepped back since the exit
  const auto total = static_cast<uint64_t>(std::min(seconds, 1e15));
  struct Unit {
    uint64_t seconds;
    const char* suffix;
  };
  static constexpr Unit kUnits[] = {{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  for (size_t i = 0; i < std::size(kUnits); ++i) {
    if (total < kUnits[i].seconds && kUnits[i].seconds > 1) continue;
    std::string text = std::to_string(total / kUnits[i].seconds) + kUnits[i].suffix;
    if (i + 1 < std::size(kUnits)) {
      const uint64_t rest = (total % kUnits[i].seconds) / kUnits[i + 1].seconds;
      if (rest > 0) text += std::to_string(rest) + kUnits[i + 1].suffix;
    }
    return text;
  }
  return "0s";
}

// Three significant digits below a minute ("120µs", "4.56ms", "1.5s"), FormatAge above.
std::string FormatLatency(double seconds) {
  if (!std::isfinite(seconds)) return kNoData;
  if (seconds >= 60) return FormatAge(seconds);
  if (seconds <= 0) return "0s";
  double value = seconds;
  const char* unit = "s";
  if (seconds < 1e-3) {
    value = seconds * 1e6;
    unit = "\xC2\xB5s";  // µs
  } else if (seconds < 1) {
    value = seconds * 1e3;
    unit = "ms";
  }
  const char* format = value >= 99.95 ? "%.0f" : value >= 9.995 ? "%.1f" : "%.2f";
  std::string text = FormatNumber(format, value);
  // "1.50" reads better as "1.5", "2.00" as "2".
  if (text.find('.') != std::string::npos) {
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
  }
  return text + unit;
}

// A quantile for the page: "> 1h" when it lies beyond the last finite bucket, where
// histogram_quantile can only answer that bucket's bound.
std::string FormatQuantile(double q, const StatusSet& set) {
  const double value = HistogramQuantile(q, set.reap_latency_bounds, set.reap_latency_cumulative_counts);
  if (std::isnan(value)) return kNoData;
  const auto& counts = set.reap_latency_cumulative_counts;
  const size_t finite_buckets = set.reap_latency_bounds.size();
  if (finite_buckets > 0 &&
      q * static_cast<double>(counts.back()) > static_cast<double>(counts[finite_buckets - 1])) {
    return "&gt; " + FormatLatency(value);
  }
  return FormatLatency(value);
}

void AppendCell(std::string* html, std::string_view escaped_content, bool numeric = false) {
  html->append(numeric ? "<td class=\"num\">" : "<td>");
  html->append(escaped_content);
  html->append("</td>");
}

constexpr char kStyle[] =
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin-bottom:1.5em}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
    "th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".muted{color:#666}";

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string escaped;
  escaped.reserve(text.size() + text.size() / 8);
  while (!text.empty()) {
    const auto c = static_cast<unsigned char>(text[0]);
    size_t consumed = 1;
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      case '\'':
        escaped += "&#39;";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          escaped += kReplacementCharacter;
        } else if (c < 0x80) {
          escaped += static_cast<char>(c);
        } else {
          const size_t length = ValidUtf8SequenceLength(text);
          if (length == 0) {
            escaped += kReplacementCharacter;  // one per invalid byte
          } else {
            escaped.append(text.substr(0, length));
            consumed = length;
          }
        }
    }
    text.remove_prefix(consumed);
  }
  return escaped;
}

double HistogramQuantile(double q, const std::vector<double>& bounds,
                         const std::vector<uint64_t>& cumulative_counts) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  if (std::isnan(q)) return kNaN;
  if (q < 0) return -std::numeric_limits<double>::infinity();
  if (q > 1) return std::numeric_limits<double>::infinity();
  // PromQL needs at least one finite bucket besides +Inf.
  if (bounds.empty() || cumulative_counts.size() != bounds.size() + 1) return kNaN;
  // PromQL forces the counts monotonic before interpolating (they may not be when the
  // buckets were read one by one while observations arrived).
  std::vector<double> counts(cumulative_counts.size());
  double running_max = 0;
  for (size_t i = 0; i < cumulative_counts.size(); ++i) {
    running_max = std::max(running_max, static_cast<double>(cumulative_counts[i]));
    counts[i] = running_max;
  }
  const double observations = counts.back();
  if (observations == 0) return kNaN;
  double rank = q * observations;
  // The first bucket whose cumulative count reaches the rank, searching the finite ones.
  size_t bucket = 0;
  while (bucket < bounds.size() && counts[bucket] < rank) ++bucket;
  if (bucket == bounds.size()) return bounds.back();  // in +Inf: the highest finite bound
  if (bucket == 0 && bounds[0] <= 0) return bounds[0];
  double bucket_start = 0;
  const double bucket_end = bounds[bucket];
  double count = counts[bucket];
  if (bucket > 0) {
    bucket_start = bounds[bucket - 1];
    count -= counts[bucket - 1];
    rank -= counts[bucket - 1];
  }
  return bucket_start + (bucket_end - bucket_start) * (rank / count);
}

void AttachOldestZombies(StatusSnapshot* snapshot) {
  for (StatusSet& set : snapshot->sets) {
    for (const StatusZombie& zombie : snapshot->zombies) {
      if (zombie.set != set.name) continue;
      set.oldest_zombie_exit_unix_seconds = zombie.exit_unix_seconds;
      break;  // oldest first
    }
  }
}

namespace {

void AppendHeader(const StatusSnapshot& snapshot, std::string* html) {
  *html +=
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>pidfd_exporter</title>\n<style>";
  *html += kStyle;
  *html += "</style>\n</head>\n<body>\n<h1>pidfd_exporter</h1>\n";
  *html += "<p>Process exits, reap latency and zombies of process sets, watched through pidfds.</p>\n";
  *html += "<p>Version " + HtmlEscape(snapshot.version) + " (revision " + HtmlEscape(snapshot.revision) +
           ")</p>\n";
  // Relative links keep working behind a reverse proxy that serves us under a prefix.
  *html += "<ul>\n<li><a href=\"." + HtmlEscape(snapshot.telemetry_path) + "\">Metrics</a></li>\n";
  *html +=
      "<li><a href=\"./-/healthy\">Health</a></li>\n<li><a href=\"./-/ready\">Readiness</a></li>\n</ul>\n";
  *html += "<h2>Configuration</h2>\n<p>Source: " + HtmlEscape(snapshot.config_source) + "</p>\n";
}

void AppendKernelFeatures(const StatusSnapshot& snapshot, std::string* html) {
  *html += "<h2>Kernel features</h2>\n";
  if (snapshot.kernel_features.empty()) {
    *html += "<p class=\"muted\">Not detected yet.</p>\n";
    return;
  }
  *html += "<table>\n<tr><th>Feature</th><th>Available</th></tr>\n";
  for (const auto& [feature, available] : snapshot.kernel_features) {
    *html += "<tr>";
    AppendCell(html, HtmlEscape(feature));
    AppendCell(html, available ? "yes" : "no");
    *html += "</tr>\n";
  }
  *html += "</table>\n";
}

void AppendSets(const StatusSnapshot& snapshot, std::string* html) {
  *html += "<h2>Process sets</h2>\n";
  if (snapshot.sets.empty()) {
    *html += "<p class=\"muted\">No process sets.</p>\n";
    return;
  }
  *html +=
      "<table>\n<tr><th>Set</th><th>Watched</th><th>Zombies</th><th>Oldest zombie</th>"
      "<th>Exits</th><th>Exits (last " +
      HtmlEscape(FormatAge(snapshot.recent_window_seconds)) +
      ")</th><th>Reap latency p50</th><th>Reap latency p99</th></tr>\n";
  for (const StatusSet& set : snapshot.sets) {
    const bool has_zombie = set.zombies > 0 && set.oldest_zombie_exit_unix_seconds > 0;
    *html += "<tr>";
    AppendCell(html, HtmlEscape(set.name));
    AppendCell(html, std::to_string(set.watched), true);
    AppendCell(html, std::to_string(set.zombies), true);
    AppendCell(
        html,
        has_zombie ? FormatAge(snapshot.now_unix_seconds - set.oldest_zombie_exit_unix_seconds) : kNoData,
        true);
    AppendCell(html, std::to_string(set.exits_total), true);
    AppendCell(html, std::to_string(set.exits_recent), true);
    AppendCell(html, FormatQuantile(0.5, set), true);
    AppendCell(html, FormatQuantile(0.99, set), true);
    *html += "</tr>\n";
  }
  *html += "</table>\n";
}

void AppendZombies(const StatusSnapshot& snapshot, std::string* html) {
  *html += "<h2>Zombies</h2>\n";
  if (snapshot.zombies.empty()) {
    *html += "<p class=\"muted\">No zombies.</p>\n";
    return;
  }
  *html +=
      "<p class=\"muted\">Exited processes that their parent has not reaped yet. "
      "&ge; means at least: the exit happened before the exporter first saw the process.</p>\n"
      "<table>\n<tr><th>Set</th><th>PID</th><th>Command</th><th>Parent PID</th>"
      "<th>Parent command</th><th>Age</th></tr>\n";
  for (const StatusZombie& zombie : snapshot.zombies) {
    *html += "<tr>";
    AppendCell(html, HtmlEscape(zombie.set));
    AppendCell(html, std::to_string(zombie.pid), true);
    AppendCell(html, HtmlEscape(zombie.comm));
    AppendCell(html, std::to_string(zombie.parent_pid), true);
    AppendCell(html, HtmlEscape(zombie.parent_comm));
    const std::string age = FormatAge(snapshot.now_unix_seconds - zombie.exit_unix_seconds);
    AppendCell(html, zombie.exit_time_known ? age : kAtLeast + age, true);
    *html += "</tr>\n";
  }
  *html += "</table>\n";
}

}  // namespace

std::string RenderStatusPage(const StatusSnapshot& snapshot) {
  std::string html;
  html.reserve(4096 + 256 * (snapshot.sets.size() + snapshot.zombies.size()));
  AppendHeader(snapshot, &html);
  AppendKernelFeatures(snapshot, &html);
  AppendSets(snapshot, &html);
  AppendZombies(snapshot, &html);
  html += "</body>\n</html>\n";
  return html;
}

}  // namespace pidfd_exporter
