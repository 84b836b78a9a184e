// The integration-test harness in one include: the exporter as a black-box process
// (exporter_process.h), a small HTTP client (http_client.h), a strict Prometheus text parser
// (prometheus_text.h) and worker processes the tests end on cue (workload.h), plus the config
// text every test builds on.
#pragma once

#include <string>
#include <string_view>

#include "exporter_process.h"
#include "http_client.h"
#include "prometheus_text.h"
#include "workload.h"

namespace integration {

// How often the exporter rescans /proc in every test config: short, so discovery is quick.
inline constexpr std::chrono::milliseconds kScanInterval{100};

// A full config: `process_sets_yaml` (list entries, indented by two spaces) plus a discovery
// block with kScanInterval and the given proc_connector mode (off | auto | on).
// `more_discovery`: further lines of the discovery block, e.g. "  taskstats: off\n".
std::string MakeConfig(std::string_view process_sets_yaml, std::string_view proc_connector,
                       std::string_view more_discovery = {});

// One fixed-name set entry matching processes whose comm is `comm`.
std::string CommSet(std::string_view set_name, std::string_view comm);

// YAML double-quoted scalar for arbitrary printable text.
std::string YamlQuote(std::string_view text);

}  // namespace integration
