// Prometheus text exposition format 0.0.4 → a map from series (name + sorted labels) to value.
// The tests use it to read the exporter's /metrics as a black box. It is deliberately strict
// (escapes, UTF-8, label and metric name syntax, duplicate series, TYPE consistency) so that
// anything it accepts, Prometheus accepts too. Pure functions and values; no I/O, any thread.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace integration {

// Label pairs sorted by label name; the identity of a series together with its metric name.
using Labels = std::vector<std::pair<std::string, std::string>>;

struct SeriesKey {
  std::string name;
  Labels labels;
  auto operator<=>(const SeriesKey&) const = default;
};

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

struct ParseResult;

// One parsed scrape. Lookups take labels in any order.
class Metrics {
 public:
  // The value of the series with exactly these labels; nullopt when absent.
  std::optional<double> Value(std::string_view name, Labels labels = {}) const;
  // Like Value, but an absent series reads as 0 (for counters that appear on first use).
  double ValueOrZero(std::string_view name, Labels labels = {}) const;
  // Every series of `name` whose labels include all of `subset`.
  std::vector<Sample> Find(std::string_view name, const Labels& subset = {}) const;
  // Sum over Find(name, subset).
  double Sum(std::string_view name, const Labels& subset = {}) const;
  // The declared TYPE of a metric family ("" when undeclared).
  std::string Type(std::string_view family) const;
  const std::map<SeriesKey, double>& series() const { return series_; }

 private:
  friend ParseResult ParsePrometheusText(std::string_view text);
  std::map<SeriesKey, double> series_;
  std::map<std::string, std::string, std::less<>> types_;
  std::map<std::string, std::string, std::less<>> help_;
};

struct ParseResult {
  Metrics metrics;
  // Empty on success; else "line N: what is wrong" for the first offending line.
  std::string error;
  bool ok() const { return error.empty(); }
};

ParseResult ParsePrometheusText(std::string_view text);

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates).
bool IsValidUtf8(std::string_view text);

// `labels` sorted by name, so callers may write them in any order.
Labels Sorted(Labels labels);

// "name{a=\"b\",...}" for messages.
std::string FormatSeries(std::string_view name, const Labels& labels);

}  // namespace integration
