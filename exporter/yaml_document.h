// YamlDocument: reads exactly one YAML document with yaml-cpp 0.7 safely, for the config
// and the web-config loaders. It owns the structure check that keeps yaml-cpp's endless
// allocation loop (a stray ',' outside any collection) from ever running, and turns every
// parser failure into a position and a message. Pure; any thread may call it; never throws.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

namespace pidfd_exporter {

struct YamlLoadError {
  YAML::Mark mark;  // 0-based; null when the position is unknown
  std::string message;
};

// Parses `text` as a single YAML document. False with *error on a syntax error, a second
// document, or the stray-',' case; *root is the document (IsNull() for an empty file).
bool LoadSingleYamlDocument(const std::string& text, YAML::Node* root, YamlLoadError* error);

}  // namespace pidfd_exporter
