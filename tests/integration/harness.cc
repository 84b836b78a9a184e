#include "harness.h"

#include <cstdio>

namespace integration {

std::string YamlQuote(std::string_view text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\x%02x", static_cast<unsigned char>(c));
      quoted += escape;
    } else {
      quoted += c;
    }
  }
  return quoted + "\"";
}

std::string MakeConfig(std::string_view process_sets_yaml, std::string_view proc_connector,
                       std::string_view more_discovery) {
  return "process_sets:\n" + std::string(process_sets_yaml) +
         "discovery:\n  scan_interval: " + std::to_string(kScanInterval.count()) +
         "ms\n  proc_connector: " + std::string(proc_connector) + "\n" + std::string(more_discovery);
}

std::string CommSet(std::string_view set_name, std::string_view comm) {
  return "  - name: " + YamlQuote(set_name) + "\n    comm: [" + YamlQuote(comm) + "]\n";
}

}  // namespace integration
