#include "config.h"

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <utility>

#include "process_set.h"
#include "yaml_document.h"

namespace pidfd_exporter {
namespace {

// A config file is a few kilobytes; refusing huge files keeps a mistaken path (a log, a
// device) from being slurped into memory.
constexpr size_t kMaxConfigBytes = 16 * 1024 * 1024;

enum class DurationStatus { kValid, kZero, kMalformed, kTooLong };

// Prometheus' model.ParseDuration grammar: [Ny][Nw][Nd][Nh][Nm][Ns][Nms], each unit at most
// once, largest first, at least one.
DurationStatus ParseDurationStatus(std::string_view text, std::chrono::milliseconds* result) {
  struct Unit {
    std::string_view suffix;
    int64_t milliseconds;
  };
  // "ms" before "m" and "s" so that the longest suffix is tried first; the order among
  // units is checked by rank below, not by this table's order.
  static constexpr Unit kUnits[] = {
      {"ms", 1},
      {"y", 365LL * 24 * 3600 * 1000},
      {"w", 7LL * 24 * 3600 * 1000},
      {"d", 24LL * 3600 * 1000},
      {"h", 3600LL * 1000},
      {"m", 60LL * 1000},
      {"s", 1000},
  };
  if (text.empty()) return DurationStatus::kMalformed;
  int64_t total = 0;
  int64_t previous_unit = std::numeric_limits<int64_t>::max();
  while (!text.empty()) {
    size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    if (digits == 0) return DurationStatus::kMalformed;
    int64_t number = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + digits, number);
    if (error == std::errc::result_out_of_range) return DurationStatus::kTooLong;
    if (error != std::errc() || end != text.data() + digits) return DurationStatus::kMalformed;
    text.remove_prefix(digits);
    const Unit* unit = nullptr;
    for (const Unit& candidate : kUnits) {
      if (text.substr(0, candidate.suffix.size()) == candidate.suffix) {
        unit = &candidate;
        break;
      }
    }
    if (unit == nullptr || unit->milliseconds >= previous_unit) return DurationStatus::kMalformed;
    previous_unit = unit->milliseconds;
    text.remove_prefix(unit->suffix.size());
    if (number > (std::numeric_limits<int64_t>::max() - total) / unit->milliseconds) {
      return DurationStatus::kTooLong;
    }
    total += number * unit->milliseconds;
  }
  if (total == 0) return DurationStatus::kZero;
  *result = std::chrono::milliseconds(total);
  return DurationStatus::kValid;
}

// Walks the YAML tree once, reporting every problem it can find rather than stopping at
// the first, so that an operator fixes a file in one round.
class ConfigParser : private YamlErrorCollector {
 public:
  explicit ConfigParser(std::string file_name) : YamlErrorCollector(std::move(file_name)) {}

  ConfigResult Parse(std::string_view text) {
    Config config;
    config.source = file_;
    const std::string owned_text(text);
    YAML::Node root;
    YamlLoadError load_error;
    if (!LoadSingleYamlDocument(owned_text, &root, &load_error)) {
      Error(load_error.mark, load_error.message);
      return Finish(std::move(config));
    }
    if (root.IsNull()) {
      errors_.push_back({file_, 0, 0, "the file is empty; expected a mapping with \"process_sets\""});
      return Finish(std::move(config));
    }
    try {
      ParseRoot(root, config);
    } catch (const YAML::Exception& exception) {
      // Only reachable through yaml-cpp surprises; the walk checks types before converting.
      Error(exception.mark, exception.msg);
    }
    return Finish(std::move(config));
  }

 private:
  ConfigResult Finish(Config config) {
    ConfigResult result;
    result.errors = TakeSortedErrors();
    if (result.errors.empty()) result.config = std::move(config);
    return result;
  }

  static std::string Join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  // A list of strings; a single string counts as a one-element list.
  std::optional<std::vector<std::string>> StringList(const YAML::Node& key, const YAML::Node& value,
                                                     const std::string& path) {
    if (RejectNull(key, value, path)) return std::nullopt;
    if (value.IsScalar()) {
      if (auto single = String(key, value, path)) return std::vector<std::string>{*single};
      return std::nullopt;
    }
    if (!value.IsSequence()) {
      Error(value.Mark(), path + ": expected a string or a list of strings, got " + KindOf(value));
      return std::nullopt;
    }
    if (value.size() == 0) {
      Error(value.Mark(), path + ": must list at least one value");
      return std::nullopt;
    }
    std::vector<std::string> strings;
    bool valid = true;
    size_t index = 0;
    for (const YAML::Node& element : value) {
      const std::string element_path = path + "[" + std::to_string(index++) + "]";
      if (element.IsNull()) {
        Error(element.Mark(), element_path + ": must not be empty");
        valid = false;
      } else if (auto text = String(key, element, element_path)) {
        strings.push_back(*text);
      } else {
        valid = false;
      }
    }
    if (!valid) return std::nullopt;
    return strings;
  }

  void ParseRoot(const YAML::Node& root, Config& config) {
    if (!root.IsMap()) {
      Error(root.Mark(), "expected a mapping with \"process_sets\" at the top level, got " + KindOf(root));
      return;
    }
    // A copy, not a pointer: yaml-cpp's map iterators hand out temporaries.
    std::optional<YAML::Node> sets_key;
    ForEachEntry(root, "config", [&](const YAML::Node& key, const YAML::Node& value) {
      const std::string& name = key.Scalar();
      if (name == "process_sets" || name == "process_names") {
        if (sets_key) {
          Error(key.Mark(), Quote(name) + " cannot be combined with " + Quote(sets_key->Scalar()) +
                                " (line " + std::to_string(sets_key->Mark().line + 1) + "); use one list");
          return;
        }
        sets_key = key;
        ParseSets(key, value, name, name == "process_names", config);
      } else if (name == "discovery") {
        ParseDiscovery(key, value, config);
      } else if (name == "limits") {
        ParseLimits(key, value, config);
      } else if (name == "histograms") {
        ParseHistograms(key, value, config);
      } else {
        UnknownKey(key, "config", "process_sets, process_names, discovery, limits, histograms");
      }
    });
    if (!sets_key) {
      Error(root.Mark(), "missing \"process_sets\" (or process-exporter's \"process_names\")");
    }
  }

  void ParseSets(const YAML::Node& key, const YAML::Node& value, const std::string& path,
                 bool process_exporter, Config& config) {
    if (RejectNull(key, value, path)) return;
    if (!value.IsSequence()) {
      Error(value.Mark(), path + ": expected a list of process sets, got " + KindOf(value));
      return;
    }
    if (value.size() == 0) {
      Error(value.Mark(), path + ": must list at least one process set");
      return;
    }
    // Fixed names must be unique in process_sets; process-exporter files often repeat a
    // name over several entries to merge them into one group, so they keep that meaning.
    std::map<std::string, int> fixed_name_lines;
    size_t index = 0;
    for (const YAML::Node& element : value) {
      const std::string element_path = path + "[" + std::to_string(index++) + "]";
      ProcessSetConfig set;
      std::optional<YAML::Node> name_node;
      const bool valid = ParseSet(element, element_path, process_exporter, set, name_node);
      // Checked even for an entry with other errors, so that one round reports everything.
      if (name_node && !set.name_is_template && !process_exporter) {
        const auto [first, inserted] = fixed_name_lines.emplace(set.name, name_node->Mark().line + 1);
        if (!inserted) {
          Error(name_node->Mark(), element_path + ".name: duplicate set name " + Quote(set.name) +
                                       " (first at line " + std::to_string(first->second) + ")");
        }
      }
      if (valid) config.process_sets.push_back(std::move(set));
    }
  }

  // Returns false when the entry had errors (they are reported).
  bool ParseSet(const YAML::Node& node, const std::string& path, bool process_exporter, ProcessSetConfig& set,
                std::optional<YAML::Node>& name_node) {
    set.position = {node.Mark().line + 1, node.Mark().column + 1};
    if (!node.IsMap()) {
      Error(node.Mark(), path + ": expected a mapping (a process set), got " + KindOf(node));
      return false;
    }
    const size_t errors_before = errors_.size();
    ForEachEntry(node, path, [&](const YAML::Node& key, const YAML::Node& value) {
      const std::string& name = key.Scalar();
      const std::string key_path = path + "." + name;
      if (name == "name") {
        if (auto text = String(key, value, key_path)) {
          set.name = *text;
          name_node = value;
          if (auto error = ProcessSets::ValidateTemplate(set.name))
            Error(value.Mark(), key_path + ": " + *error);
        }
      } else if (name == "comm") {
        if (auto list = StringList(key, value, key_path)) set.comm = std::move(*list);
      } else if (name == "exe") {
        if (auto list = StringList(key, value, key_path)) set.exe = std::move(*list);
      } else if (name == "cmdline") {
        ParseCmdline(key, value, key_path, set);
      } else if (process_exporter) {
        UnknownKey(key, path, "name, comm, exe, cmdline");
      } else if (name == "user") {
        if (auto list = StringList(key, value, key_path)) set.user = std::move(*list);
      } else if (name == "cgroup") {
        ParseCgroups(key, value, key_path, set);
      } else if (name == "unit") {
        ParseUnits(key, value, key_path, set);
      } else if (name == "pidfile") {
        if (auto text = String(key, value, key_path)) {
          if (text->front() != '/') {
            Error(value.Mark(), key_path + ": must be an absolute path, got " + Quote(*text));
          } else {
            set.pidfile = *text;
          }
        }
      } else if (name == "children") {
        ParseBool(key, value, key_path, set.children);
      } else {
        UnknownKey(key, path, "name, comm, exe, cmdline, user, cgroup, unit, pidfile, children");
      }
    });
    set.name_is_template = set.name.find("{{") != std::string::npos;
    if (errors_.size() != errors_before) return false;
    if (auto error = ProcessSets::ValidateTemplateCaptures(set.name, set.cmdline)) {
      // A defaulted name references no captures, so name_node is set here.
      Error(name_node->Mark(), path + ".name: " + *error);
      return false;
    }
    return true;
  }

  void ParseCmdline(const YAML::Node& key, const YAML::Node& value, const std::string& path,
                    ProcessSetConfig& set) {
    auto patterns = StringList(key, value, path);
    if (!patterns) return;
    // Positions of the individual patterns: the list elements, or the scalar itself.
    for (size_t index = 0; index < patterns->size(); ++index) {
      if (auto error = ProcessSets::ValidateRegex((*patterns)[index])) {
        const YAML::Node element = value.IsSequence() ? value[index] : value;
        const std::string element_path = value.IsSequence() ? path + "[" + std::to_string(index) + "]" : path;
        Error(element.Mark(), element_path + ": invalid regex " + Quote((*patterns)[index]) + ": " + *error);
      }
    }
    set.cmdline = std::move(*patterns);
  }

  void ParseCgroups(const YAML::Node& key, const YAML::Node& value, const std::string& path,
                    ProcessSetConfig& set) {
    auto cgroups = StringList(key, value, path);
    if (!cgroups) return;
    for (size_t index = 0; index < cgroups->size(); ++index) {
      if ((*cgroups)[index].front() != '/') {
        const YAML::Node element = value.IsSequence() ? value[index] : value;
        const std::string element_path = value.IsSequence() ? path + "[" + std::to_string(index) + "]" : path;
        Error(element.Mark(), element_path +
                                  ": a cgroup path starts with \"/\" (as in /proc/PID/cgroup), got " +
                                  Quote((*cgroups)[index]));
      }
    }
    set.cgroup = std::move(*cgroups);
  }

  void ParseUnits(const YAML::Node& key, const YAML::Node& value, const std::string& path,
                  ProcessSetConfig& set) {
    auto units = StringList(key, value, path);
    if (!units) return;
    for (size_t index = 0; index < units->size(); ++index) {
      if (auto error = ProcessSets::ValidateUnitPattern((*units)[index])) {
        const YAML::Node element = value.IsSequence() ? value[index] : value;
        const std::string element_path = value.IsSequence() ? path + "[" + std::to_string(index) + "]" : path;
        Error(element.Mark(), element_path + ": " + Quote((*units)[index]) + ": " + *error);
      }
    }
    set.unit = std::move(*units);
  }

  void ParseBool(const YAML::Node& key, const YAML::Node& value, const std::string& path, bool& result) {
    if (const std::optional<bool> parsed = Bool(key, value, path)) result = *parsed;
  }

  // A Prometheus duration at `entry`; false (reported) when malformed, too long, or zero
  // where zero is not allowed. Zero comes back as 0 ms.
  bool Duration(const YAML::Node& key, const YAML::Node& entry, const std::string& path, bool zero_allowed,
                std::chrono::milliseconds* result) {
    auto text = String(key, entry, path);
    if (!text) return false;
    switch (ParseDurationStatus(*text, result)) {
      case DurationStatus::kValid:
        return true;
      case DurationStatus::kZero:
        if (zero_allowed) {
          *result = std::chrono::milliseconds(0);
          return true;
        }
        Error(entry.Mark(), path + ": must be greater than zero, got " + Quote(*text));
        return false;
      case DurationStatus::kTooLong:
        Error(entry.Mark(), path + ": duration too long: " + Quote(*text));
        return false;
      case DurationStatus::kMalformed:
        break;
    }
    Error(entry.Mark(), path + ": invalid duration " + Quote(*text) +
                            " (expected a number and a unit among ms, s, m, h, d, w, y, as in 5s or 1m30s)");
    return false;
  }

  void ParseDiscovery(const YAML::Node& /*key*/, const YAML::Node& value, Config& config) {
    if (!SectionIsMapping(value, "discovery")) return;
    std::optional<YAML::Mark> taskstats_mark;
    ForEachEntry(value, "discovery", [&](const YAML::Node& key, const YAML::Node& entry) {
      const std::string path = Join("discovery", key.Scalar());
      if (key.Scalar() == "taskstats") taskstats_mark = entry.Mark();
      if (key.Scalar() == "scan_interval") {
        std::chrono::milliseconds interval{0};
        if (Duration(key, entry, path, /*zero_allowed=*/false, &interval)) config.scan_interval = interval;
      } else if (key.Scalar() == "proc_connector" || key.Scalar() == "taskstats") {
        auto text = String(key, entry, path);
        if (!text) return;
        DiscoveryMode& mode = key.Scalar() == "taskstats" ? config.taskstats : config.proc_connector;
        if (*text == "auto") {
          mode = DiscoveryMode::kAuto;
        } else if (*text == "on") {
          mode = DiscoveryMode::kOn;
        } else if (*text == "off") {
          mode = DiscoveryMode::kOff;
        } else {
          Error(entry.Mark(), path + ": expected auto, on or off, got " + Quote(*text));
        }
      } else {
        UnknownKey(key, "discovery", "scan_interval, proc_connector, taskstats");
      }
    });
    // Exit records are paired with the connector's exit events: without those they name nothing.
    if (taskstats_mark && config.taskstats == DiscoveryMode::kOn &&
        config.proc_connector == DiscoveryMode::kOff) {
      Error(*taskstats_mark, "discovery.taskstats: on needs discovery.proc_connector (auto or on), got off");
    }
  }

  void ParseLimits(const YAML::Node& /*key*/, const YAML::Node& value, Config& config) {
    if (!SectionIsMapping(value, "limits")) return;
    ForEachEntry(value, "limits", [&](const YAML::Node& key, const YAML::Node& entry) {
      const std::string path = Join("limits", key.Scalar());
      if (key.Scalar() == "max_sets") {
        ParseMaxSets(key, entry, path, config);
      } else if (key.Scalar() == "idle_set_timeout") {
        std::chrono::milliseconds timeout{0};
        if (!Duration(key, entry, path, /*zero_allowed=*/true, &timeout)) return;
        // "0s": templated sets live until a reload drops their entry, as before expiry existed.
        config.idle_set_timeout =
            timeout.count() == 0 ? std::nullopt : std::optional<std::chrono::milliseconds>(timeout);
      } else {
        UnknownKey(key, "limits", "max_sets, idle_set_timeout");
      }
    });
  }

  void ParseMaxSets(const YAML::Node& key, const YAML::Node& entry, const std::string& path, Config& config) {
    auto text = String(key, entry, path);
    if (!text) return;
    // Plain decimal only: yaml-cpp would read "010" as octal 8.
    size_t number = 0;
    const auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), number);
    if (error != std::errc() || end != text->data() + text->size() || number == 0) {
      Error(entry.Mark(), path + ": expected a positive integer, got " + Quote(*text));
      return;
    }
    config.max_sets = number;
  }

  void ParseHistograms(const YAML::Node& /*key*/, const YAML::Node& value, Config& config) {
    if (!SectionIsMapping(value, "histograms")) return;
    ForEachEntry(value, "histograms", [&](const YAML::Node& key, const YAML::Node& entry) {
      const std::string path = Join("histograms", key.Scalar());
      if (key.Scalar() == "reap_latency_seconds") {
        ParseBuckets(key, entry, path, config.reap_latency_buckets);
      } else if (key.Scalar() == "lifetime_seconds") {
        ParseBuckets(key, entry, path, config.lifetime_buckets);
      } else if (key.Scalar() == "peak_rss_bytes") {
        ParseBuckets(key, entry, path, config.peak_rss_buckets);
      } else {
        UnknownKey(key, "histograms", "reap_latency_seconds, lifetime_seconds, peak_rss_bytes");
      }
    });
  }

  void ParseBuckets(const YAML::Node& key, const YAML::Node& value, const std::string& path,
                    std::vector<double>& result) {
    if (RejectNull(key, value, path)) return;
    if (!value.IsSequence()) {
      Error(value.Mark(), path + ": expected a list of bucket upper bounds, got " + KindOf(value));
      return;
    }
    if (value.size() == 0) {
      Error(value.Mark(), path + ": must list at least one bucket");
      return;
    }
    std::vector<double> buckets;
    std::string previous_text;
    bool valid = true;
    size_t index = 0;
    for (const YAML::Node& element : value) {
      const std::string element_path = path + "[" + std::to_string(index++) + "]";
      double bound = 0;
      if (!element.IsScalar() || !YAML::convert<double>::decode(element, bound) || !std::isfinite(bound) ||
          bound <= 0) {
        Error(element.Mark(), element_path + ": expected a positive finite number, got " + KindOf(element));
        valid = false;
        continue;
      }
      if (!buckets.empty() && bound <= buckets.back()) {
        Error(element.Mark(), element_path + ": buckets must be strictly increasing, got " +
                                  element.Scalar() + " after " + previous_text);
        valid = false;
        continue;
      }
      buckets.push_back(bound);
      previous_text = element.Scalar();
    }
    if (valid) result = std::move(buckets);
  }
};

}  // namespace

std::string ConfigError::ToString() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

ConfigResult ParseConfig(std::string_view text, const std::string& file_name) {
  try {
    return ConfigParser(file_name).Parse(text);
  } catch (const std::exception& exception) {
    // yaml-cpp may throw from places the parser does not guard (allocation, deep nesting).
    ConfigResult result;
    result.errors.push_back({file_name, 0, 0, std::string("cannot parse: ") + exception.what()});
    return result;
  }
}

ConfigResult LoadConfigFile(const std::string& path) {
  auto failure = [&path](std::string message) {
    ConfigResult result;
    result.errors.push_back({path, 0, 0, std::move(message)});
    return result;
  };
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return failure(std::string("cannot open: ") + std::strerror(errno));
  std::string text;
  char buffer[65536];
  int read_errno = 0;
  while (true) {
    const ssize_t count = read(fd, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) read_errno = errno;
    if (count <= 0) break;
    text.append(buffer, static_cast<size_t>(count));
    if (text.size() > kMaxConfigBytes) break;
  }
  close(fd);
  if (read_errno != 0) return failure(std::string("cannot read: ") + std::strerror(read_errno));
  if (text.size() > kMaxConfigBytes) {
    return failure("file is larger than " + std::to_string(kMaxConfigBytes) + " bytes; not a config file");
  }
  return ParseConfig(text, path);
}

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  std::chrono::milliseconds result{0};
  if (ParseDurationStatus(text, &result) != DurationStatus::kValid) return std::nullopt;
  return result;
}

std::chrono::milliseconds ScanInterval(const Config& config, bool connector_in_use) {
  if (config.scan_interval) return *config.scan_interval;
  return connector_in_use ? kDefaultScanIntervalWithConnector : kDefaultScanIntervalWithoutConnector;
}

}  // namespace pidfd_exporter
