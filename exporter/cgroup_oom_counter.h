// cgroup_oom_counter: how many OOM kills a memory cgroup has seen, read from the kernel's own
// counter — `oom_kill N` in memory.oom_control (cgroup v1; local to the cgroup) or in
// memory.events.local (cgroup v2; local, unlike memory.events, which counts descendants too).
// CgroupOomCounter knows where the memory hierarchy is mounted, which memory cgroup a process is
// in (/proc/PID/cgroup; on cgroup v1 a zombie already shows the root) and can list every memory
// cgroup's counter. It never decides which process a kill hit (oom_attribution does).
// Parsers are pure functions over text; the reader has no state beyond the mount. Any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pidfd_exporter {

// Where the memory controller is mounted. v1 wins on a hybrid host (there the v2 hierarchy has no
// memory controller).
struct MemoryCgroupMount {
  std::string mount_point;  // e.g. /sys/fs/cgroup/memory
  std::string root;         // the mount's root inside the hierarchy ("/" unless a namespace cut it)
  bool v2 = false;
};

// The memory hierarchy in /proc/self/mountinfo: the first "cgroup" mount with the "memory" super
// option, else the first "cgroup2" mount (the caller checks its cgroup.controllers).
std::optional<MemoryCgroupMount> ParseMemoryCgroupMount(std::string_view mountinfo);
// The memory cgroup path of a /proc/PID/cgroup text: the v1 line whose controller list holds
// "memory", or for v2 the "0::" line. nullopt when there is none, or when the path leaves the
// reader's cgroup namespace ("/../x").
std::optional<std::string> ParseMemoryCgroupPath(std::string_view proc_cgroup, bool v2);
// The `oom_kill N` line of memory.oom_control or memory.events(.local).
std::optional<uint64_t> ParseOomKillCount(std::string_view text);

class CgroupOomCounter {
 public:
  // Finds the memory hierarchy (`procfs_root`/self/mountinfo). nullopt with *error when there is
  // none, or when its counter file cannot be read (a kernel older than 4.13 has no oom_kill line).
  static std::optional<CgroupOomCounter> Open(const std::string& procfs_root, std::string* error);
  // For tests: a hierarchy at `mount_point`.
  CgroupOomCounter(std::string procfs_root, MemoryCgroupMount mount);

  bool v2() const { return mount_.v2; }
  // The memory cgroup of `pid` as /proc names it (a path inside the hierarchy). The caller
  // confirms the PID was still its process while this was read.
  std::optional<std::string> CgroupOf(int pid) const;
  // The OOM kills of `cgroup` (a path from CgroupOf) so far; nullopt when it is gone.
  std::optional<uint64_t> OomKills(const std::string& cgroup) const;
  // Every memory cgroup's count, by path. At most kMaxCgroups are listed (a walk is cheap:
  // one small read per cgroup).
  std::map<std::string, uint64_t> ListAll() const;

  static constexpr size_t kMaxCgroups = 20000;

 private:
  std::string DirectoryOf(const std::string& cgroup) const;
  const char* CounterFile() const { return mount_.v2 ? "memory.events.local" : "memory.oom_control"; }
  void Walk(const std::string& directory, const std::string& cgroup,
            std::map<std::string, uint64_t>* out) const;

  std::string procfs_root_;
  MemoryCgroupMount mount_;
};

}  // namespace pidfd_exporter
