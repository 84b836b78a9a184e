// Config: the YAML file → a validated Config value. Owns the schema (docs/configuration.md), the
// process-exporter compatible format (`process_names:`), and every error as
// `file:line:col: message`. Pure: no /proc access, no globals; any thread may call it.
// It never throws: all errors come back in ConfigResult::errors.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pidfd_exporter {

// 1-based line and column of a YAML node; 0 when unknown.
struct SourcePosition {
  int line = 0;
  int column = 0;
};

struct ConfigError {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;
  // "file:line:col: message" ("file: message" when the position is unknown).
  std::string ToString() const;
};

// One entry of `process_sets` (or of process-exporter's `process_names`).
struct ProcessSetConfig {
  // Set name; may be a template ({{.Comm}} {{.ExeBase}} {{.ExeFull}} {{.Username}}
  // {{.PID}} {{.StartTime}} {{.Matches.NAME}} {{.Unit}} {{.Cgroup}} {{.ContainerID}}). Default:
  // "{{.ExeBase}}" as in process-exporter.
  std::string name = "{{.ExeBase}}";
  bool name_is_template = true;      // the name contains "{{"
  std::vector<std::string> comm;     // any of, exact
  std::vector<std::string> exe;      // any of; bare name = basename of argv[0]/exe, with '/' = full path
  std::vector<std::string> cmdline;  // all of, RE2 on argv joined by spaces, named captures
  std::vector<std::string> user;     // any of, user name or numeric uid
  std::vector<std::string> cgroup;   // any of, prefix of the cgroup v2 path
  std::vector<std::string> unit;     // any of, systemd unit name; "~RE2" = anchored regex
  std::string pidfile;               // the process whose PID this file names ("" = unused)
  bool children = false;             // descendants of matched processes join this set
  SourcePosition position;           // of the list entry, for messages
};

// A kernel event source: auto (used where available, else a log line and a 0 gauge), on (start-up
// fails without it), off.
enum class DiscoveryMode { kAuto, kOn, kOff };

struct Config {
  std::string source;  // the file name, or "<built-in>"
  std::vector<ProcessSetConfig> process_sets;
  // nullopt: the default for the discovery in use (ScanInterval).
  std::optional<std::chrono::milliseconds> scan_interval;
  DiscoveryMode proc_connector = DiscoveryMode::kAuto;
  // Exit records that name a process at its end (needs the connector and CAP_NET_ADMIN).
  DiscoveryMode taskstats = DiscoveryMode::kAuto;
  size_t max_sets = 256;
  // A templated set with no member and no event for this long is removed with its series
  // (limits.idle_set_timeout; "0s" = never). The default outlives two scrapes at a 5m scrape
  // interval plus Prometheus' 5m lookback, so the last increase of a counter is always
  // scraped before its series goes (docs/configuration.md).
  std::optional<std::chrono::milliseconds> idle_set_timeout = std::chrono::minutes(15);
  std::vector<double> reap_latency_buckets{0.0001, 0.001, 0.01, 0.1, 1, 10, 60, 600, 3600};
  std::vector<double> lifetime_buckets{0.01, 0.1, 1, 10, 60, 600, 3600, 86400};
  // 1 MiB to 16 GiB, by 4x.
  std::vector<double> peak_rss_buckets{1048576,   4194304,    16777216,   67108864,
                                       268435456, 1073741824, 4294967296, 17179869184};
};

// The default scan periods (docs/configuration.md, BENCHMARKS.md "Scan only what is new"): with
// the connector the scan is a safety net that reads only what is new and costs ~0.8 ms per
// 1,000 watched processes; without it, it is how processes are found at all.
inline constexpr std::chrono::milliseconds kDefaultScanIntervalWithConnector{30000};
inline constexpr std::chrono::milliseconds kDefaultScanIntervalWithoutConnector{5000};
// The scan period in effect: the configured one, else the default for the discovery in use.
std::chrono::milliseconds ScanInterval(const Config& config, bool connector_in_use);

struct ConfigResult {
  std::optional<Config> config;  // set exactly when errors is empty
  std::vector<ConfigError> errors;
};

// Parses YAML text; `file_name` is only used in messages and Config::source.
ConfigResult ParseConfig(std::string_view text, const std::string& file_name);
// Reads and parses a file; a missing or unreadable file is one error naming the file and errno.
ConfigResult LoadConfigFile(const std::string& path);

// Prometheus duration: "200ms", "5s", "1m", "1h30m", "1d". nullopt when malformed or zero.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

}  // namespace pidfd_exporter
