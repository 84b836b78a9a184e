// ProcessSets: the compiled matchers of a Config (comm, exe, cmdline RE2, user, cgroup,
// unit, pidfile) and the set-name templates. Given what was read about a process it answers
// "which set, under which name" (the first set that matches wins). Owned and called by
// the event-loop thread only (pidfile values are state it refreshes on each scan). It
// never reads /proc itself, except the pidfiles in RefreshPidfiles().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace pidfd_exporter {

// What the matchers and templates may look at. The tracker fills only the fields that
// NeededAttributes() asks for (reading /proc costs); the rest stay empty.
struct ProcessAttributes {
  int pid = 0;
  int parent_pid = 0;
  uint64_t start_time_ticks = 0;
  std::string comm;
  std::string exe_path;           // readlink /proc/PID/exe; "" when unreadable
  std::vector<std::string> argv;  // /proc/PID/cmdline
  uint32_t effective_uid = 0;
  std::string username;  // of effective_uid; the number when unknown
  std::string cgroup;    // as ParseCgroup (exporter/procfs.h): the cgroup v2 path
};

// Bit mask of the /proc reads the configured matchers and templates need beyond stat.
enum AttributeNeed : unsigned {
  kNeedExe = 1u << 0,      // exe matchers, {{.ExeFull}} / {{.ExeBase}}
  kNeedCmdline = 1u << 1,  // cmdline and exe matchers, {{.ExeBase}} (argv[0])
  kNeedUser = 1u << 2,     // user matchers, {{.Username}}
  kNeedCgroup = 1u << 3,   // cgroup and unit matchers, {{.Unit}} {{.Cgroup}} {{.ContainerID}}
};

struct MatchResult {
  size_t set_index = 0;   // index into Config::process_sets
  std::string name;       // the rendered set name (raw bytes; not yet sanitized)
  bool children = false;  // the set's `children` flag
};

class ProcessSets {
 public:
  // `config` must have passed ParseConfig (regexes and templates are valid). Reads the
  // configured pidfiles once, so that a pidfile set can match before the first refresh.
  explicit ProcessSets(const Config& config);
  ~ProcessSets();
  ProcessSets(ProcessSets&&) noexcept;
  ProcessSets& operator=(ProcessSets&&) noexcept;

  unsigned NeededAttributes() const;
  // Whether a set picks processes by PID (a pidfile): then a fork does not necessarily match
  // what its parent matched.
  bool MatchesByPid() const;
  // The first set whose matchers all accept the process, with its rendered name.
  std::optional<MatchResult> Match(const ProcessAttributes& process) const;
  // The name a descendant of a member of set `set_index` gets (children: true): the
  // set's name rendered for the descendant when templated, else the fixed name.
  std::string NameForDescendant(size_t set_index, const ProcessAttributes& descendant) const;
  // Names of the sets whose name is not a template, in config order: their series exist
  // from start-up.
  std::vector<std::string> FixedNames() const;
  size_t size() const;

  // Re-reads every configured pidfile (paths relative to the filesystem root). Returns
  // true when a value changed, so that processes that matched nothing before are matched
  // again.
  bool RefreshPidfiles();

  // Used by the config loader to report errors with positions: an error message, or
  // nullopt when valid.
  static std::optional<std::string> ValidateRegex(const std::string& pattern);
  static std::optional<std::string> ValidateTemplate(const std::string& name_template);
  // A `unit:` entry: an exact unit name ending in .service or .scope, or "~REGEX" matched
  // against the whole unit name.
  static std::optional<std::string> ValidateUnitPattern(const std::string& pattern);
  // A valid template's {{.Matches.NAME}} references must each name a capture group of one
  // of the set's cmdline regexes (invalid regexes are skipped: they are reported apart).
  static std::optional<std::string> ValidateTemplateCaptures(
      const std::string& name_template, const std::vector<std::string>& cmdline_patterns);

 private:
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> sets_;
  unsigned needs_ = 0;
};

}  // namespace pidfd_exporter
