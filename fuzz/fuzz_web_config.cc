// libFuzzer target: the exporter-toolkit web config loader (ParseWebConfig) on arbitrary
// text, plus IsBcryptHash. It must never crash, hang or throw. The file name points into a
// directory that does not exist, so relative certificate paths fail to open; absolute ones
// are opened read-only and non-blocking (one byte read), which is harmless.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "web_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  pidfd_exporter::WebConfigResult result =
      pidfd_exporter::ParseWebConfig(text, "/nonexistent-pidfd-fuzz-dir/web.yml");
  if (result.config.has_value() == !result.errors.empty()) std::abort();
  if (result.config) {
    for (const auto& [user, hash] : result.config->basic_auth_users) {
      if (!pidfd_exporter::IsBcryptHash(hash)) std::abort();  // only checkable hashes are accepted
    }
  }
  for (const auto& error : result.errors) (void)error.ToString();
  (void)pidfd_exporter::IsBcryptHash(text.substr(0, 80));
  return 0;
}
