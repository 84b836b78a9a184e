#include "cgroup_oom_counter.h"

#include <dirent.h>
#include <fcntl.h>

#include <charconv>
#include <memory>
#include <vector>

#include "procfs.h"
#include "text_lines.h"
#include "unique_fd.h"

namespace pidfd_exporter {
namespace {

bool HasWord(std::string_view list, std::string_view word) {
  for (std::string_view part : Split(list, ','))
    if (part == word) return true;
  return false;
}

// mountinfo escapes space, tab, newline and backslash in paths as \ooo (octal).
std::string Unescape(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int value = 0;
      const auto [end, error] = std::from_chars(field.data() + i + 1, field.data() + i + 4, value, 8);
      if (error == std::errc() && end == field.data() + i + 4) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

}  // namespace

std::optional<MemoryCgroupMount> ParseMemoryCgroupMount(std::string_view mountinfo) {
  std::optional<MemoryCgroupMount> v2;
  std::optional<MemoryCgroupMount> v1;
  ForEachLine(mountinfo, [&](std::string_view line) {
    // ID PARENT MAJOR:MINOR ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
    const size_t dash = line.find(" - ");
    if (dash == std::string_view::npos || v1) return;
    const std::vector<std::string_view> head = Split(line.substr(0, dash), ' ');
    const std::vector<std::string_view> tail = Split(line.substr(dash + 3), ' ');
    if (head.size() < 6 || tail.size() < 3) return;
    MemoryCgroupMount mount{Unescape(head[4]), Unescape(head[3]), false};
    if (tail[0] == "cgroup" && HasWord(tail[2], "memory")) {
      v1 = std::move(mount);
    } else if (tail[0] == "cgroup2" && !v2) {
      mount.v2 = true;
      v2 = std::move(mount);
    }
  });
  return v1 ? v1 : v2;
}

std::optional<std::string> ParseMemoryCgroupPath(std::string_view proc_cgroup, bool v2) {
  std::optional<std::string> path;
  ForEachLine(proc_cgroup, [&](std::string_view line) {
    // HIERARCHY_ID:CONTROLLERS:PATH; the path may hold ':'.
    const size_t first = line.find(':');
    if (path || first == std::string_view::npos) return;
    const size_t second = line.find(':', first + 1);
    if (second == std::string_view::npos) return;
    const std::string_view id = line.substr(0, first);
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    const bool wanted = v2 ? (id == "0" && controllers.empty()) : HasWord(controllers, "memory");
    const std::string_view value = line.substr(second + 1);
    // A process outside our cgroup namespace shows "/../..": no directory of our mount is its.
    if (wanted && value.starts_with('/') && value.find("/..") == std::string_view::npos)
      path = std::string(value);
  });
  return path;
}

std::optional<uint64_t> ParseOomKillCount(std::string_view text) {
  std::optional<uint64_t> count;
  ForEachLine(text, [&](std::string_view line) {
    constexpr std::string_view kKey = "oom_kill ";
    if (count || !line.starts_with(kKey)) return;
    const std::string_view digits = line.substr(kKey.size());
    uint64_t number = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
    if (error == std::errc() && end == digits.data() + digits.size()) count = number;
  });
  return count;
}

CgroupOomCounter::CgroupOomCounter(std::string procfs_root, MemoryCgroupMount mount)
    : procfs_root_(std::move(procfs_root)), mount_(std::move(mount)) {}

std::optional<CgroupOomCounter> CgroupOomCounter::Open(const std::string& procfs_root, std::string* error) {
  const std::optional<std::string> mountinfo =
      ReadFileAt(AT_FDCWD, (procfs_root + "/self/mountinfo").c_str());
  std::optional<MemoryCgroupMount> mount = mountinfo ? ParseMemoryCgroupMount(*mountinfo) : std::nullopt;
  if (!mount) {
    *error = "no cgroup hierarchy with the memory controller is mounted";
    return std::nullopt;
  }
  if (mount->v2) {
    const auto controllers = ReadFileAt(AT_FDCWD, (mount->mount_point + "/cgroup.controllers").c_str());
    if (!controllers || controllers->find("memory") == std::string::npos) {
      *error = "the cgroup v2 hierarchy at " + mount->mount_point + " has no memory controller";
      return std::nullopt;
    }
  }
  CgroupOomCounter counter(procfs_root, std::move(*mount));
  // The root cgroup of v2 has no memory.events.local: the check reads one the walk finds.
  if (counter.ListAll().empty()) {
    *error = std::string("no readable ") + counter.CounterFile() + " with an oom_kill line under " +
             counter.mount_.mount_point + " (Linux 4.13+ has one)";
    return std::nullopt;
  }
  return counter;
}

std::optional<std::string> CgroupOomCounter::CgroupOf(int pid) const {
  const std::string path = procfs_root_ + "/" + std::to_string(pid) + "/cgroup";
  const std::optional<std::string> text = ReadFileAt(AT_FDCWD, path.c_str());
  if (!text) return std::nullopt;
  return ParseMemoryCgroupPath(*text, mount_.v2);
}

std::string CgroupOomCounter::DirectoryOf(const std::string& cgroup) const {
  // /proc shows paths from the hierarchy's root; the mount may show only a subtree of it.
  std::string_view inside = cgroup;
  if (mount_.root != "/" && inside.starts_with(mount_.root)) inside.remove_prefix(mount_.root.size());
  std::string directory = mount_.mount_point;
  if (!inside.empty() && inside != "/") directory += inside;
  return directory;
}

std::optional<uint64_t> CgroupOomCounter::OomKills(const std::string& cgroup) const {
  const std::string file = DirectoryOf(cgroup) + "/" + CounterFile();
  const std::optional<std::string> text = ReadFileAt(AT_FDCWD, file.c_str(), 4096);
  return text ? ParseOomKillCount(*text) : std::nullopt;
}

std::map<std::string, uint64_t> CgroupOomCounter::ListAll() const {
  std::map<std::string, uint64_t> counts;
  Walk(mount_.mount_point, mount_.root, &counts);
  return counts;
}

void CgroupOomCounter::Walk(const std::string& directory, const std::string& cgroup,
                            std::map<std::string, uint64_t>* out) const {
  if (out->size() >= kMaxCgroups) return;
  const std::string file = directory + "/" + CounterFile();
  if (auto text = ReadFileAt(AT_FDCWD, file.c_str(), 4096)) {
    if (auto count = ParseOomKillCount(*text)) (*out)[cgroup] = *count;
  }
  std::unique_ptr<DIR, int (*)(DIR*)> listing(opendir(directory.c_str()), closedir);
  if (!listing) return;
  while (const dirent* entry = readdir(listing.get())) {
    if (entry->d_type != DT_DIR || entry->d_name[0] == '.') continue;
    const std::string child = cgroup == "/" ? "/" + std::string(entry->d_name) : cgroup + "/" + entry->d_name;
    Walk(directory + "/" + entry->d_name, child, out);
  }
}

}  // namespace pidfd_exporter
