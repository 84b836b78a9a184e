#include "process_set.h"

#include <fcntl.h>
#include <re2/re2.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <map>
#include <utility>

#include "cgroup_identity.h"
#include "utf8.h"

namespace pidfd_exporter {
namespace {

// The kernel keeps 15 bytes of a command name (TASK_COMM_LEN 16 with the NUL).
constexpr size_t kCommLength = 15;
// readlink(/proc/PID/exe) appends this when the binary was replaced or removed (a package
// upgrade under a running daemon); the process is still the one the operator configured.
constexpr std::string_view kDeletedSuffix = " (deleted)";
// A pidfile holds a PID and a newline; anything much longer is not a pidfile.
constexpr size_t kPidfileMaxBytes = 4096;

// --- Templates --------------------------------------------------------------------------

enum class TemplateField {
  kText,
  kComm,
  kExeBase,
  kExeFull,
  kUsername,
  kPid,
  kStartTime,
  kMatch,
  kUnit,
  kCgroup,
  kContainerId,
};

struct TemplatePart {
  TemplateField field = TemplateField::kText;
  std::string text;  // the literal text (kText) or the capture name (kMatch)
};

struct ParsedTemplate {
  std::vector<TemplatePart> parts;
  std::string error;  // empty when valid
};

bool IsTemplateSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string_view TrimTemplateSpace(std::string_view text) {
  while (!text.empty() && IsTemplateSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsTemplateSpace(text.back())) text.remove_suffix(1);
  return text;
}

bool IsCaptureName(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// The subset of Go's text/template that process-exporter configs use: literal text and
// field references. Anything else ({{if}}, pipes, functions) is refused at load time
// rather than rendered wrongly.
ParsedTemplate ParseTemplate(std::string_view text) {
  static const std::map<std::string_view, TemplateField> kFields = {
      {"Comm", TemplateField::kComm},
      {"ExeBase", TemplateField::kExeBase},
      {"ExeFull", TemplateField::kExeFull},
      {"Username", TemplateField::kUsername},
      {"PID", TemplateField::kPid},
      {"StartTime", TemplateField::kStartTime},
      {"Unit", TemplateField::kUnit},
      {"Cgroup", TemplateField::kCgroup},
      {"ContainerID", TemplateField::kContainerId},
  };
  ParsedTemplate parsed;
  size_t position = 0;
  while (position < text.size()) {
    const size_t open = text.find("{{", position);
    if (open == std::string_view::npos) {
      parsed.parts.push_back({TemplateField::kText, std::string(text.substr(position))});
      break;
    }
    if (open > position) {
      parsed.parts.push_back({TemplateField::kText, std::string(text.substr(position, open - position))});
    }
    const size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) {
      parsed.error = "unclosed \"{{\" in \"" + std::string(text.substr(open)) + "\"";
      return parsed;
    }
    const std::string_view whole = text.substr(open, close + 2 - open);
    const std::string_view action = TrimTemplateSpace(text.substr(open + 2, close - open - 2));
    position = close + 2;
    if (action.empty()) {
      parsed.error = "empty action \"" + std::string(whole) + "\"";
      return parsed;
    }
    if (action.front() != '.') {
      parsed.error = "unsupported action \"" + std::string(whole) +
                     "\": only field references such as {{.Comm}} are supported";
      return parsed;
    }
    const std::string_view field = action.substr(1);
    constexpr std::string_view kMatchesPrefix = "Matches.";
    if (field.substr(0, kMatchesPrefix.size()) == kMatchesPrefix &&
        IsCaptureName(field.substr(kMatchesPrefix.size()))) {
      parsed.parts.push_back({TemplateField::kMatch, std::string(field.substr(kMatchesPrefix.size()))});
      continue;
    }
    const auto known = kFields.find(field);
    if (known == kFields.end()) {
      parsed.error =
          "unknown field \"" + std::string(whole) +
          "\" (known: .Comm .ExeBase .ExeFull .Username .PID .StartTime .Matches.NAME .Unit .Cgroup "
          ".ContainerID)";
      return parsed;
    }
    parsed.parts.push_back({known->second, ""});
  }
  return parsed;
}

// Go's filepath.Base, so that {{.ExeBase}} and bare exe matchers give process-exporter's
// answers, including for argv[0] strings that daemons rewrote ("nginx: master process ...").
std::string_view BaseName(std::string_view path) {
  if (path.empty()) return ".";
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path == "/") return path;
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string_view ExePathWithoutDeleted(std::string_view exe_path) {
  if (exe_path.size() > kDeletedSuffix.size() &&
      exe_path.substr(exe_path.size() - kDeletedSuffix.size()) == kDeletedSuffix) {
    exe_path.remove_suffix(kDeletedSuffix.size());
  }
  return exe_path;
}

// {{.ExeBase}}: basename of argv[0] (process-exporter), then of the exe link, then comm,
// so that processes with an empty cmdline still get a useful name.
std::string ExeBaseOf(const ProcessAttributes& process) {
  if (!process.argv.empty() && !process.argv[0].empty()) return std::string(BaseName(process.argv[0]));
  if (!process.exe_path.empty()) return std::string(BaseName(ExePathWithoutDeleted(process.exe_path)));
  return process.comm;
}

// {{.ExeFull}}: argv[0] as process-exporter renders it, then the exe link, then comm.
std::string ExeFullOf(const ProcessAttributes& process) {
  if (!process.argv.empty() && !process.argv[0].empty()) return process.argv[0];
  if (!process.exe_path.empty()) return std::string(ExePathWithoutDeleted(process.exe_path));
  return process.comm;
}

using Captures = std::vector<std::pair<std::string, std::string>>;

void SetCapture(Captures& captures, const std::string& name, std::string value) {
  for (auto& [existing_name, existing_value] : captures) {
    if (existing_name == name) {
      existing_value = std::move(value);
      return;
    }
  }
  captures.emplace_back(name, std::move(value));
}

std::string RenderTemplate(const std::vector<TemplatePart>& parts, const ProcessAttributes& process,
                           const Captures& captures) {
  std::string name;
  for (const TemplatePart& part : parts) {
    switch (part.field) {
      case TemplateField::kText:
        name += part.text;
        break;
      case TemplateField::kComm:
        name += process.comm;
        break;
      case TemplateField::kExeBase:
        name += ExeBaseOf(process);
        break;
      case TemplateField::kExeFull:
        name += ExeFullOf(process);
        break;
      case TemplateField::kUsername:
        name += process.username.empty() ? std::to_string(process.effective_uid) : process.username;
        break;
      case TemplateField::kPid:
        name += std::to_string(process.pid);
        break;
      case TemplateField::kStartTime:
        name += std::to_string(process.start_time_ticks);
        break;
      case TemplateField::kUnit:
        name += UnitOfCgroup(process.cgroup);
        break;
      case TemplateField::kCgroup:
        name += process.cgroup;
        break;
      case TemplateField::kContainerId:
        name += ContainerIdOfCgroup(process.cgroup);
        break;
      case TemplateField::kMatch:
        for (const auto& [capture_name, value] : captures) {
          if (capture_name == part.text) {
            name += value;
            break;
          }
        }
        break;
    }
  }
  return name;
}

std::unique_ptr<RE2> CompileRegex(const std::string& pattern) {
  RE2::Options options;
  options.set_log_errors(false);  // errors are reported as config errors, not on stderr
  return std::make_unique<RE2>(pattern, options);
}

// A unit matcher entry "~REGEX" is matched against the whole unit name.
constexpr char kUnitRegexMarker = '~';

std::optional<uint32_t> ParseUid(std::string_view text) {
  uint32_t uid = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), uid);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return uid;
}

// A decimal PID with optional surrounding whitespace; anything else means "no process".
std::optional<int> ParsePidfileText(std::string_view text) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  int pid = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (text.empty() || text.front() == '-' || error != std::errc() || end != text.data() + text.size() ||
      pid <= 0) {
    return std::nullopt;
  }
  return pid;
}

// O_NONBLOCK: a FIFO put where a pidfile should be must not stall the event loop.
std::optional<int> ReadPidfile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buffer[512];
  bool failed = false;
  while (text.size() <= kPidfileMaxBytes) {
    const ssize_t count = read(fd, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) failed = true;
    if (count <= 0) break;
    text.append(buffer, static_cast<size_t>(count));
  }
  close(fd);
  if (failed || text.size() > kPidfileMaxBytes) return std::nullopt;
  return ParsePidfileText(text);
}

// argv joined by single spaces, built at most once per Match() and only when a regex runs.
// Go's regexp (process-exporter) reads each invalid UTF-8 byte as U+FFFD, which "." and
// character classes match; RE2 in UTF-8 mode matches nothing there. Same meaning for
// both: the regexes see ReplaceInvalidUtf8(argv). Control characters stay as they are.

class JoinedCmdline {
 public:
  explicit JoinedCmdline(const std::vector<std::string>& argv) : argv_(argv) {}
  const std::string& Get() {
    if (!joined_) {
      joined_.emplace();
      for (size_t index = 0; index < argv_.size(); ++index) {
        if (index > 0) joined_->push_back(' ');
        joined_->append(ReplaceInvalidUtf8(argv_[index]));
      }
    }
    return *joined_;
  }

 private:
  const std::vector<std::string>& argv_;
  std::optional<std::string> joined_;
};

bool AnyEqual(const std::vector<std::string>& candidates, std::string_view value) {
  return std::find(candidates.begin(), candidates.end(), value) != candidates.end();
}

// One unanchored regex search. When `captures` is given, the named groups are recorded; a
// later regex overrides an earlier one's group of the same name, as process-exporter's map
// does, and a group that did not participate records "" (Go gives "" too).
bool MatchRegex(const RE2& regex, const std::string& text, Captures* captures) {
  if (captures == nullptr || regex.NamedCapturingGroups().empty()) return RE2::PartialMatch(text, regex);
  std::vector<re2::StringPiece> groups(static_cast<size_t>(regex.NumberOfCapturingGroups()) + 1);
  if (!regex.Match(text, 0, text.size(), RE2::UNANCHORED, groups.data(), static_cast<int>(groups.size()))) {
    return false;
  }
  for (const auto& [name, index] : regex.NamedCapturingGroups()) {
    const re2::StringPiece& group = groups[static_cast<size_t>(index)];
    SetCapture(*captures, name,
               group.data() == nullptr ? std::string() : std::string(group.data(), group.size()));
  }
  return true;
}

}  // namespace

struct ProcessSets::Compiled {
  std::string fixed_name;  // when !is_template
  bool is_template = false;
  std::vector<TemplatePart> name_parts;  // when is_template
  bool name_uses_matches = false;
  // The name renders {{.Unit}} / {{.ContainerID}} / {{.Cgroup}}: a process without one is
  // not taken (a set per container must not gather every host process under "").
  bool name_needs_unit = false;
  bool name_needs_container_id = false;
  bool name_needs_cgroup = false;

  std::vector<std::string> comms;           // truncated to kCommLength
  std::vector<std::string> exe_base_names;  // patterns without '/'
  std::vector<std::string> exe_full_paths;  // patterns with '/'
  std::vector<std::unique_ptr<RE2>> regexes;
  std::vector<uint32_t> user_ids;
  std::vector<std::string> user_names;
  std::vector<std::string> cgroups;  // without trailing '/', except "/" itself
  std::vector<std::string> unit_names;
  std::vector<std::unique_ptr<RE2>> unit_regexes;  // anchored at both ends
  std::string pidfile;
  std::optional<int> pidfile_pid;
  bool children = false;

  // Fill the set from its config; each returns the attributes (kNeed*) its part reads.
  unsigned CompileName(const std::string& name);
  unsigned CompileMatchers(const ProcessSetConfig& config);

  bool CheapMatchersAccept(const ProcessAttributes& process) const;
  bool HasIdentityForName(const ProcessAttributes& process) const;
  bool RegexesAccept(JoinedCmdline& cmdline, Captures* captures) const;

 private:
  bool ExeMatches(const ProcessAttributes& process) const;
  bool UserMatches(const ProcessAttributes& process) const;
  bool CgroupMatches(std::string_view cgroup) const;
  bool UnitMatches(std::string_view cgroup) const;
};

bool ProcessSets::Compiled::UnitMatches(std::string_view cgroup) const {
  const std::string_view unit = UnitOfCgroup(cgroup);
  if (unit.empty()) return false;
  if (AnyEqual(unit_names, unit)) return true;
  return std::any_of(unit_regexes.begin(), unit_regexes.end(),
                     [&](const auto& regex) { return RE2::FullMatch(unit, *regex); });
}

bool ProcessSets::Compiled::HasIdentityForName(const ProcessAttributes& process) const {
  if (name_needs_cgroup && process.cgroup.empty()) return false;
  if (name_needs_unit && UnitOfCgroup(process.cgroup).empty()) return false;
  if (name_needs_container_id && ContainerIdOfCgroup(process.cgroup).empty()) return false;
  return true;
}

bool ProcessSets::Compiled::ExeMatches(const ProcessAttributes& process) const {
  const std::string_view argv0 = process.argv.empty() ? std::string_view() : process.argv[0];
  const std::string_view exe_path = ExePathWithoutDeleted(process.exe_path);
  if (!exe_base_names.empty()) {
    if (!argv0.empty() && AnyEqual(exe_base_names, BaseName(argv0))) return true;
    if (!exe_path.empty() && AnyEqual(exe_base_names, BaseName(exe_path))) return true;
  }
  if (!exe_full_paths.empty()) {
    if (!argv0.empty() && AnyEqual(exe_full_paths, argv0)) return true;
    if (!exe_path.empty() && AnyEqual(exe_full_paths, exe_path)) return true;
  }
  return false;
}

bool ProcessSets::Compiled::UserMatches(const ProcessAttributes& process) const {
  if (std::find(user_ids.begin(), user_ids.end(), process.effective_uid) != user_ids.end()) {
    return true;
  }
  return !process.username.empty() && AnyEqual(user_names, process.username);
}

bool ProcessSets::Compiled::CgroupMatches(std::string_view cgroup) const {
  for (const std::string& prefix : cgroups) {
    if (cgroup.size() < prefix.size() || cgroup.substr(0, prefix.size()) != prefix) continue;
    // A prefix only counts at a path-component boundary: ".../nginx.service" must not
    // take ".../nginx.service2".
    if (cgroup.size() == prefix.size() || prefix == "/" || cgroup[prefix.size()] == '/') return true;
  }
  return false;
}

// Every matcher except the regexes, cheapest first.
bool ProcessSets::Compiled::CheapMatchersAccept(const ProcessAttributes& process) const {
  if (!pidfile.empty() && pidfile_pid != process.pid) return false;
  if (!comms.empty() && !AnyEqual(comms, process.comm)) return false;
  if ((!user_ids.empty() || !user_names.empty()) && !UserMatches(process)) return false;
  if (!cgroups.empty() && !CgroupMatches(process.cgroup)) return false;
  if ((!unit_names.empty() || !unit_regexes.empty()) && !UnitMatches(process.cgroup)) return false;
  if (!HasIdentityForName(process)) return false;
  if ((!exe_base_names.empty() || !exe_full_paths.empty()) && !ExeMatches(process)) return false;
  return true;
}

// All of the set's regexes must match (unanchored, as Go's regexp.MatchString).
bool ProcessSets::Compiled::RegexesAccept(JoinedCmdline& cmdline, Captures* captures) const {
  for (const auto& regex : regexes) {
    if (!MatchRegex(*regex, cmdline.Get(), captures)) return false;
  }
  return true;
}

unsigned ProcessSets::Compiled::CompileName(const std::string& name) {
  is_template = name.find("{{") != std::string::npos;
  if (!is_template) {
    fixed_name = name;
    return 0;
  }
  unsigned needs = 0;
  name_parts = ParseTemplate(name).parts;
  for (const TemplatePart& part : name_parts) {
    switch (part.field) {
      case TemplateField::kExeBase:
      case TemplateField::kExeFull:
        needs |= kNeedExe | kNeedCmdline;
        break;
      case TemplateField::kUsername:
        needs |= kNeedUser;
        break;
      case TemplateField::kMatch:
        name_uses_matches = true;
        needs |= kNeedCmdline;
        break;
      case TemplateField::kUnit:
        name_needs_unit = true;
        needs |= kNeedCgroup;
        break;
      case TemplateField::kContainerId:
        name_needs_container_id = true;
        needs |= kNeedCgroup;
        break;
      case TemplateField::kCgroup:
        name_needs_cgroup = true;
        needs |= kNeedCgroup;
        break;
      default:
        break;
    }
  }
  return needs;
}

unsigned ProcessSets::Compiled::CompileMatchers(const ProcessSetConfig& config) {
  unsigned needs = 0;
  for (const std::string& comm : config.comm) comms.push_back(comm.substr(0, kCommLength));
  for (const std::string& exe : config.exe)
    (exe.find('/') == std::string::npos ? exe_base_names : exe_full_paths).push_back(exe);
  if (!config.exe.empty()) needs |= kNeedExe | kNeedCmdline;
  for (const std::string& pattern : config.cmdline) {
    auto regex = CompileRegex(pattern);
    if (regex->ok()) regexes.push_back(std::move(regex));
  }
  if (!config.cmdline.empty()) needs |= kNeedCmdline;
  for (const std::string& user : config.user) {
    if (auto uid = ParseUid(user)) {
      user_ids.push_back(*uid);
    } else {
      user_names.push_back(user);
    }
  }
  if (!config.user.empty()) needs |= kNeedUser;
  for (std::string cgroup : config.cgroup) {
    while (cgroup.size() > 1 && cgroup.back() == '/') cgroup.pop_back();
    cgroups.push_back(std::move(cgroup));
  }
  if (!config.cgroup.empty()) needs |= kNeedCgroup;
  for (const std::string& unit : config.unit) {
    if (!unit.empty() && unit.front() == kUnitRegexMarker) {
      auto regex = CompileRegex(unit.substr(1));
      if (regex->ok()) unit_regexes.push_back(std::move(regex));
    } else {
      unit_names.push_back(unit);
    }
  }
  if (!config.unit.empty()) needs |= kNeedCgroup;
  pidfile = config.pidfile;
  children = config.children;
  return needs;
}

ProcessSets::ProcessSets(const Config& config) {
  for (const ProcessSetConfig& set_config : config.process_sets) {
    auto set = std::make_unique<Compiled>();
    needs_ |= set->CompileName(set_config.name);
    needs_ |= set->CompileMatchers(set_config);
    sets_.push_back(std::move(set));
  }
  RefreshPidfiles();
}

ProcessSets::~ProcessSets() = default;
ProcessSets::ProcessSets(ProcessSets&&) noexcept = default;
ProcessSets& ProcessSets::operator=(ProcessSets&&) noexcept = default;

unsigned ProcessSets::NeededAttributes() const {
  return needs_;
}

bool ProcessSets::MatchesByPid() const {
  return std::any_of(sets_.begin(), sets_.end(), [](const auto& set) { return !set->pidfile.empty(); });
}

std::optional<MatchResult> ProcessSets::Match(const ProcessAttributes& process) const {
  JoinedCmdline cmdline(process.argv);
  for (size_t index = 0; index < sets_.size(); ++index) {
    const Compiled& set = *sets_[index];
    if (!set.CheapMatchersAccept(process)) continue;
    Captures captures;
    if (!set.RegexesAccept(cmdline, set.name_uses_matches ? &captures : nullptr)) continue;
    MatchResult result;
    result.set_index = index;
    result.name = set.is_template ? RenderTemplate(set.name_parts, process, captures) : set.fixed_name;
    result.children = set.children;
    return result;
  }
  return std::nullopt;
}

std::string ProcessSets::NameForDescendant(size_t set_index, const ProcessAttributes& descendant) const {
  if (set_index >= sets_.size()) return std::string();
  const Compiled& set = *sets_[set_index];
  if (!set.is_template) return set.fixed_name;
  // The descendant need not match the set's regexes (a worker forked by a matched master
  // often has another cmdline); a group it does not produce renders as empty text.
  Captures captures;
  if (set.name_uses_matches) {
    JoinedCmdline cmdline(descendant.argv);
    for (const auto& regex : set.regexes) MatchRegex(*regex, cmdline.Get(), &captures);
  }
  return RenderTemplate(set.name_parts, descendant, captures);
}

std::vector<std::string> ProcessSets::FixedNames() const {
  std::vector<std::string> names;
  for (const auto& set : sets_) {
    if (!set->is_template && !AnyEqual(names, set->fixed_name)) names.push_back(set->fixed_name);
  }
  return names;
}

size_t ProcessSets::size() const {
  return sets_.size();
}

bool ProcessSets::RefreshPidfiles() {
  bool changed = false;
  for (const auto& set : sets_) {
    if (set->pidfile.empty()) continue;
    const std::optional<int> pid = ReadPidfile(set->pidfile);
    if (pid != set->pidfile_pid) {
      set->pidfile_pid = pid;
      changed = true;
    }
  }
  return changed;
}

std::optional<std::string> ProcessSets::ValidateRegex(const std::string& pattern) {
  const auto regex = CompileRegex(pattern);
  if (regex->ok()) return std::nullopt;
  return regex->error();
}

std::optional<std::string> ProcessSets::ValidateUnitPattern(const std::string& pattern) {
  if (pattern.empty()) return "empty unit name";
  if (pattern.front() == kUnitRegexMarker) {
    if (auto error = ValidateRegex(pattern.substr(1)))
      return "invalid regex " + pattern.substr(1) + ": " + *error;
    return std::nullopt;
  }
  if (UnitOfCgroup(pattern) != pattern || pattern.find('/') != std::string::npos) {
    return "a unit name ends in .service or .scope (as in nginx.service); for a pattern write ~REGEX, "
           "as in ~php-fpm@.*\\.service";
  }
  return std::nullopt;
}

std::optional<std::string> ProcessSets::ValidateTemplate(const std::string& name_template) {
  ParsedTemplate parsed = ParseTemplate(name_template);
  if (parsed.error.empty()) return std::nullopt;
  return parsed.error;
}

std::optional<std::string> ProcessSets::ValidateTemplateCaptures(
    const std::string& name_template, const std::vector<std::string>& cmdline_patterns) {
  const ParsedTemplate parsed = ParseTemplate(name_template);
  if (!parsed.error.empty()) return std::nullopt;  // reported by ValidateTemplate
  std::vector<std::string> group_names;
  for (const std::string& pattern : cmdline_patterns) {
    const auto regex = CompileRegex(pattern);
    if (!regex->ok()) continue;
    for (const auto& [name, index] : regex->NamedCapturingGroups()) group_names.push_back(name);
  }
  for (const TemplatePart& part : parsed.parts) {
    if (part.field != TemplateField::kMatch || AnyEqual(group_names, part.text)) continue;
    if (cmdline_patterns.empty()) {
      return "{{.Matches." + part.text + "}} needs a cmdline regex with a group (?P<" + part.text +
             ">...), and this set has no cmdline regex";
    }
    return "{{.Matches." + part.text +
           "}} names no capture group of this set's cmdline regexes (define one with (?P<" + part.text +
           ">...))";
  }
  return std::nullopt;
}

}  // namespace pidfd_exporter
