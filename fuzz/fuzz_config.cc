// libFuzzer target: the YAML config loader (ParseConfig) on arbitrary text. It must never
// crash, hang or throw: every problem is an error with a position. Also checks the
// contract "config is set exactly when errors is empty".
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  pidfd_exporter::ConfigResult result = pidfd_exporter::ParseConfig(text, "fuzz.yml");
  if (result.config.has_value() == !result.errors.empty()) std::abort();
  for (const auto& error : result.errors) {
    if (error.message.empty()) std::abort();
    (void)error.ToString();
  }
  // Durations are parsed from untrusted text too.
  (void)pidfd_exporter::ParseDuration(text.substr(0, 64));
  return 0;
}
