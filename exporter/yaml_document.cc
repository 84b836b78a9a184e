#include "yaml_document.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <sstream>
#include <utility>
#include <vector>

namespace pidfd_exporter {
namespace {

// Records where each YAML document starts; the events themselves are not needed.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
  }
  void OnMapEnd() override {}
};

}  // namespace

bool LoadSingleYamlDocument(const std::string& text, YAML::Node* root, YamlLoadError* error) {
  // Syntax errors and further documents first, through the event parser. Not
  // YAML::LoadAll: yaml-cpp 0.7 loops forever, allocating, on a stray "," outside any
  // collection (each call yields an empty document and consumes nothing), so one typo in a
  // reloaded file could exhaust memory. Three documents tell a second one from that loop.
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts handler;
  try {
    for (int document = 0; document < 3 && parser.HandleNextDocument(handler); ++document) {
    }
  } catch (const YAML::Exception& exception) {
    *error = {exception.mark, exception.msg};
    return false;
  }
  const std::vector<YAML::Mark>& starts = handler.starts;
  for (size_t index = 1; index < starts.size(); ++index) {
    if (starts[index].pos == starts[index - 1].pos) {
      const auto position = static_cast<size_t>(starts[index].pos);
      std::string unexpected = "\"";
      unexpected += position < text.size() ? text.substr(position, 1) : "end of file";
      unexpected += '"';
      *error = {starts[index], "unexpected " + unexpected + " outside of a list or mapping"};
      return false;
    }
  }
  if (starts.size() > 1) {
    *error = {starts[1], "only one YAML document is allowed; remove the second \"---\""};
    return false;
  }
  try {
    *root = YAML::Load(text);  // the first and only document
  } catch (const YAML::Exception& exception) {
    *error = {exception.mark, exception.msg};
    return false;
  }
  return true;
}

std::string Quote(std::string_view text) {
  // Built with reserve/append: GCC 12 at -O3 reports a false -Wrestrict on '"' + string.
  std::string quoted;
  quoted.reserve(text.size() + 2);
  quoted.push_back('"');
  quoted.append(text);
  quoted.push_back('"');
  return quoted;
}

std::string KindOf(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Undefined:
      break;
  }
  return "an undefined value";
}

void YamlErrorCollector::Error(const YAML::Mark& mark, std::string message) {
  if (mark.is_null()) {
    errors_.push_back({file_, 0, 0, std::move(message)});
  } else {
    errors_.push_back({file_, mark.line + 1, mark.column + 1, std::move(message)});
  }
}

void YamlErrorCollector::UnknownKey(const YAML::Node& key, const std::string& path,
                                    std::string_view allowed) {
  Error(key.Mark(),
        path + ": unknown key " + Quote(key.Scalar()) + " (allowed: " + std::string(allowed) + ")");
}

bool YamlErrorCollector::RejectNull(const YAML::Node& key, const YAML::Node& value, const std::string& path) {
  if (!value.IsNull()) return false;
  Error(key.Mark(), path + ": must not be empty");
  return true;
}

std::optional<std::string> YamlErrorCollector::String(const YAML::Node& key, const YAML::Node& value,
                                                      const std::string& path) {
  if (RejectNull(key, value, path)) return std::nullopt;
  if (!value.IsScalar()) {
    Error(value.Mark(), path + ": expected a string, got " + KindOf(value));
    return std::nullopt;
  }
  if (value.Scalar().empty()) {
    Error(value.Mark(), path + ": must not be empty");
    return std::nullopt;
  }
  return value.Scalar();
}

std::optional<bool> YamlErrorCollector::Bool(const YAML::Node& key, const YAML::Node& value,
                                             const std::string& path) {
  if (RejectNull(key, value, path)) return std::nullopt;
  bool parsed = false;
  if (value.IsScalar() && YAML::convert<bool>::decode(value, parsed)) return parsed;
  Error(value.Mark(), path + ": expected true or false, got " + KindOf(value));
  return std::nullopt;
}

bool YamlErrorCollector::SectionIsMapping(const YAML::Node& value, const std::string& path) {
  if (value.IsNull()) return false;
  if (value.IsMap()) return true;
  Error(value.Mark(), path + ": expected a mapping, got " + KindOf(value));
  return false;
}

std::vector<ConfigError> YamlErrorCollector::TakeSortedErrors() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& left, const ConfigError& right) {
    return std::pair(left.line, left.column) < std::pair(right.line, right.column);
  });
  return std::move(errors_);
}

}  // namespace pidfd_exporter
