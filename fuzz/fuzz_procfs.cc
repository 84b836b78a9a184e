// libFuzzer target: the /proc parsers. A process controls its own comm (any byte but NUL,
// including spaces, parentheses and newlines) and argv, so every parser sees hostile text.
// The first byte picks the parser; the rest is the file's text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cgroup_identity.h"
#include "procfs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  using namespace pidfd_exporter;
  switch (selector % 8) {
    case 0: {
      auto stat = ParseStat(text);
      if (stat && stat->comm.size() > text.size()) std::abort();
      break;
    }
    case 1:
      (void)ParseStatus(text);
      break;
    case 2: {
      size_t total = 0;
      for (const auto& argument : ParseCmdline(text)) total += argument.size();
      if (total > text.size()) std::abort();
      break;
    }
    case 3:
      // The identity readers run on what ParseCgroup returns (exporter/process_set.cc).
      if (auto path = ParseCgroup(text)) {
        const std::string_view unit = UnitOfCgroup(*path);
        const std::string_view id = ContainerIdOfCgroup(*path);
        if (!unit.empty() && path->find(unit) == std::string::npos) std::abort();
        if (!id.empty() && (id.size() != 64 || path->find(id) == std::string::npos)) std::abort();
      }
      break;
    case 4: {
      auto pid = ParsePidfile(text);
      if (pid && *pid <= 0) std::abort();  // documented: zero and negative are refused
      break;
    }
    case 5:
      (void)ParsePidfdFdinfoPid(text);
      break;
    case 6:
      (void)ParseComm(text);
      break;
    default:
      // Every parser on the same text: a stat file fed to the status parser and so on.
      (void)ParseStat(text);
      (void)ParseStatus(text);
      (void)ParseCmdline(text);
      (void)ParseCgroup(text);
      (void)ParsePidfile(text);
      (void)ParsePidfdFdinfoPid(text);
      break;
  }
  return 0;
}
