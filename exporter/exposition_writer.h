// ExpositionWriter: the Prometheus text format (version 0.0.4) appended to one string, for the
// pidfd_* families that grow with the number of sets (Metrics::Serialize). It owns nothing but
// the output buffer; callers hand it label blocks they escaped once (EscapeLabelValue) and
// values, and it writes numbers with std::to_chars. Not thread-safe: one writer per scrape, on
// the HTTP thread that serves it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pidfd_exporter {

// `value` as it goes between the quotes of a label: backslash, double quote and newline escaped.
std::string EscapeLabelValue(std::string_view value);

// A double as the text format writes it: the shortest text that reads back as the same double,
// "+Inf", "-Inf" or "NaN".
void AppendSampleValue(std::string& out, double value);

class ExpositionWriter {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  explicit ExpositionWriter(std::string& out) : out_(out) {}

  // The "# HELP" and "# TYPE" lines that open a family.
  void Family(std::string_view name, std::string_view help, Type type);
  // `name{first,labels} value`, where `first` and `labels` are blocks of escaped `key="value"`
  // pairs separated by commas (both empty: no braces). Callers keep prometheus-cpp's order,
  // labels sorted by name (a series' identity does not depend on it, but tests and diffs of
  // scrapes read easier): `first` holds the labels that sort before those of `labels`.
  void Sample(std::string_view name, std::string_view first, std::string_view labels, double value);
  // A histogram's series: name_bucket per bound (cumulative, `le` from `bound_labels`, which
  // holds `le="..."` per finite bound and one for +Inf, after `labels` as prometheus-cpp
  // writes it), then name_sum and name_count.
  void Histogram(std::string_view name, std::string_view labels, const std::vector<std::string>& bound_labels,
                 const std::vector<uint64_t>& cumulative_counts, double sum);

  // `le="bound"` for each bound (printf's %.16g), then `le="+Inf"`: computed once per bucket
  // layout.
  static std::vector<std::string> BoundLabels(const std::vector<double>& bounds);

 private:
  // `name suffix{first,labels} value` and a newline.
  void Line(std::string_view name, std::string_view suffix, std::string_view first, std::string_view labels,
            std::string_view value);

  std::string& out_;
};

}  // namespace pidfd_exporter
