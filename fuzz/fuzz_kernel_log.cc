// libFuzzer target: the OOM attribution parsers. /dev/kmsg records carry text from drivers and
// names any process chose (the victim's comm), /proc/PID/cgroup and mountinfo paths that
// container runtimes chose. The first byte picks the parser; the rest is the text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cgroup_oom_counter.h"
#include "kernel_log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  using namespace pidfd_exporter;
  switch (selector % 4) {
    case 0:
      if (auto kill = ParseKernelLogRecord(text)) {
        if (kill->pid <= 0 || kill->comm.size() > text.size() || kill->memory_cgroup.size() > text.size())
          std::abort();
      }
      break;
    case 1:
      if (auto mount = ParseMemoryCgroupMount(text)) {
        if (mount->mount_point.size() > text.size()) std::abort();
      }
      break;
    case 2:
      if (auto path = ParseMemoryCgroupPath(text, selector & 4)) {
        if (path->empty() || (*path)[0] != '/' || path->size() > text.size()) std::abort();
      }
      break;
    case 3:
      (void)ParseOomKillCount(text);
      break;
  }
  return 0;
}
