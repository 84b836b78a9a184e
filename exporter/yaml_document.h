// YamlDocument: what the config and the web-config loaders share. It reads exactly one YAML
// document with yaml-cpp 0.7 safely (a structure check keeps yaml-cpp's endless allocation
// loop on a stray ',' from ever running), and YamlErrorCollector is the vocabulary of their
// errors: file:line:col, non-string and duplicate keys, unknown keys, errors sorted by
// position. Pure; any thread may call it; never throws.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace pidfd_exporter {

struct YamlLoadError {
  YAML::Mark mark;  // 0-based; null when the position is unknown
  std::string message;
};

// Parses `text` as a single YAML document. False with *error on a syntax error, a second
// document, or the stray-',' case; *root is the document (IsNull() for an empty file).
bool LoadSingleYamlDocument(const std::string& text, YAML::Node* root, YamlLoadError* error);

// "text" in double quotes, for messages.
std::string Quote(std::string_view text);
// What a node is, in the words of an operator reading the error: "a list", "\"10x\"", ...
std::string KindOf(const YAML::Node& node);

// Collects the errors of one file while a loader walks its document, so that an operator
// fixes the file in one round. Loaders derive from it.
class YamlErrorCollector {
 protected:
  explicit YamlErrorCollector(std::string file_name) : file_(std::move(file_name)) {}

  // One error at `mark` (1-based in the message; no position when the mark is null).
  void Error(const YAML::Mark& mark, std::string message);
  void UnknownKey(const YAML::Node& key, const std::string& path, std::string_view allowed);
  // The errors, sorted by position (stable for one position).
  std::vector<ConfigError> TakeSortedErrors();

  // Typed values, each reporting what is wrong at the right position. `key:` with nothing
  // after it is reported at the key (yaml-cpp marks the missing value at the next token).
  bool RejectNull(const YAML::Node& key, const YAML::Node& value, const std::string& path);
  std::optional<std::string> String(const YAML::Node& key, const YAML::Node& value, const std::string& path);
  std::optional<bool> Bool(const YAML::Node& key, const YAML::Node& value, const std::string& path);
  // False for a null section (every entry commented out: nothing configured) and, reported,
  // for anything but a mapping.
  bool SectionIsMapping(const YAML::Node& value, const std::string& path);

  // Yields the (key, value) pairs of a mapping, reporting non-string and duplicate keys
  // (yaml-cpp keeps both copies of a duplicate silently; the first would win unseen).
  template <typename Handler>
  void ForEachEntry(const YAML::Node& map, const std::string& path, Handler&& handler) {
    std::map<std::string, int> first_lines;
    for (const auto& entry : map) {
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) {
        Error(key.Mark(), path + ": a key must be a string, got " + KindOf(key));
        continue;
      }
      const auto [seen, inserted] = first_lines.emplace(key.Scalar(), key.Mark().line + 1);
      if (!inserted) {
        Error(key.Mark(), path + ": duplicate key " + Quote(key.Scalar()) + " (first at line " +
                              std::to_string(seen->second) + ")");
        continue;
      }
      handler(key, entry.second);
    }
  }

  std::string file_;
  std::vector<ConfigError> errors_;
};

}  // namespace pidfd_exporter
