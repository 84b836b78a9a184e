#include "process_set.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config.h"

namespace pidfd_exporter {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

ProcessSets Sets(const std::string& yaml) {
  ConfigResult result = ParseConfig(yaml, "t.yml");
  for (const ConfigError& error : result.errors) ADD_FAILURE() << error.ToString();
  return ProcessSets(result.config.value_or(Config{}));
}

ProcessAttributes Process(std::string comm, std::vector<std::string> argv = {}, std::string exe_path = "") {
  ProcessAttributes process;
  process.pid = 4242;
  process.parent_pid = 1;
  process.comm = std::move(comm);
  process.argv = std::move(argv);
  process.exe_path = std::move(exe_path);
  return process;
}

// "set_index:name", or "none".
std::string MatchOf(const ProcessSets& sets, const ProcessAttributes& process) {
  const auto match = sets.Match(process);
  if (!match) return "none";
  return std::to_string(match->set_index) + ":" + match->name;
}

TEST(ProcessSetsTest, FirstMatchingSetWins) {
  const ProcessSets sets = Sets(R"(
process_sets:
  - name: first
    comm: [nginx]
  - name: second
    comm: [nginx, apache2]
  - name: rest
)");
  EXPECT_EQ(MatchOf(sets, Process("nginx")), "0:first");
  EXPECT_EQ(MatchOf(sets, Process("apache2")), "1:second");
  EXPECT_EQ(MatchOf(sets, Process("bash")), "2:rest");
  EXPECT_EQ(sets.size(), 3u);
}

TEST(ProcessSetsTest, NoMatchersMatchesEveryProcess) {
  const ProcessSets sets = Sets("process_sets:\n  - name: '{{.Comm}}'\n");
  EXPECT_EQ(MatchOf(sets, Process("bash")), "0:bash");
  EXPECT_EQ(MatchOf(sets, Process("")), "0:");
}

TEST(ProcessSetsTest, UnmatchedProcessMatchesNothing) {
  const ProcessSets sets = Sets("process_sets:\n  - comm: [nginx]\n");
  EXPECT_EQ(MatchOf(sets, Process("bash")), "none");
}

TEST(ProcessSetsTest, CommIsExactAndCaseSensitive) {
  const ProcessSets sets = Sets("process_sets:\n  - name: s\n    comm: [nginx]\n");
  EXPECT_EQ(MatchOf(sets, Process("nginx")), "0:s");
  EXPECT_EQ(MatchOf(sets, Process("nginx2")), "none");
  EXPECT_EQ(MatchOf(sets, Process("ngin")), "none");
  EXPECT_EQ(MatchOf(sets, Process("Nginx")), "none");
}

TEST(ProcessSetsTest, CommLongerThanFifteenBytesMatchesTheKernelTruncation) {
  const ProcessSets sets = Sets("process_sets:\n  - name: s\n    comm: [systemd-journald]\n");
  EXPECT_EQ(MatchOf(sets, Process("systemd-journal")), "0:s");
}

TEST(ProcessSetsTest, ExeWithoutSlashMatchesBasenameOfArgv0OrExeLink) {
  const ProcessSets sets = Sets("process_sets:\n  - name: s\n    exe: [postgres]\n");
  EXPECT_EQ(MatchOf(sets, Process("x", {"/usr/lib/postgresql/15/bin/postgres", "-D", "/data"})), "0:s");
  EXPECT_EQ(MatchOf(sets, Process("x", {"postgres"})), "0:s");
  // argv[0] rewritten by the program: the exe link still names the binary.
  EXPECT_EQ(MatchOf(sets, Process("x", {"postgres: checkpointer"}, "/usr/lib/postgresql/15/bin/postgres")),
            "0:s");
  EXPECT_EQ(MatchOf(sets, Process("postgres", {"/usr/bin/postgres-helper"}, "/usr/bin/postgres-helper")),
            "none");
  EXPECT_EQ(MatchOf(sets, Process("postgres")), "none");  // no argv, no exe: exe cannot match
}

TEST(ProcessSetsTest, ExeWithSlashMatchesArgv0OrExeLinkExactly) {
  const ProcessSets sets = Sets("process_sets:\n  - name: s\n    exe: [/usr/sbin/nginx]\n");
  EXPECT_EQ(MatchOf(sets, Process("nginx", {"/usr/sbin/nginx", "-g", "daemon off;"})), "0:s");
  EXPECT_EQ(MatchOf(sets, Process("nginx", {"nginx: worker process"}, "/usr/sbin/nginx")), "0:s");
  EXPECT_EQ(MatchOf(sets, Process("nginx", {"nginx"}, "/usr/local/sbin/nginx")), "none");
  EXPECT_EQ(MatchOf(sets, Process("nginx", {"/opt/usr/sbin/nginx"}, "/opt/usr/sbin/nginx")), "none");
}

TEST(ProcessSetsTest, ExeLinkOfAReplacedBinaryStillMatches) {
  const ProcessSets sets =
      Sets("process_sets:\n  - name: s\n    exe: [/usr/sbin/nginx]\n  - name: b\n    exe: [sshd]\n");
  EXPECT_EQ(MatchOf(sets, Process("nginx", {"nginx: master process"}, "/usr/sbin/nginx (deleted)")), "0:s");
  EXPECT_EQ(MatchOf(sets, Process("sshd", {"sshd: alice [priv]"}, "/usr/sbin/sshd (deleted)")), "1:b");
}

TEST(ProcessSetsTest, CmdlineRegexesAreUnanchoredAndAllMustMatch) {
  const ProcessSets sets = Sets("process_sets:\n  - name: s\n    cmdline: ['--user', 'session']\n");
  EXPECT_EQ(MatchOf(sets, Process("x", {"/sbin/upstart", "--user", "--session"})), "0:s");
  EXPECT_EQ(MatchOf(sets, Process("x", {"/sbin/upstart", "--user"})), "none");
  // argv is joined with single spaces, so a regex may span arguments.
  const ProcessSets spanning = Sets("process_sets:\n  - name: s\n    cmdline: ['^java -jar app\\.jar$']\n");
  EXPECT_EQ(MatchOf(spanning, Process("java", {"java", "-jar", "app.jar"})), "0:s");
  EXPECT_EQ(MatchOf(spanning, Process("java", {"java", "-jar", "app.jar", "x"})), "none");
}

TEST(ProcessSetsTest, CmdlineNamedCapturesFillMatchesFromEveryRegex) {
  const ProcessSets sets = Sets(R"(
process_sets:
  - name: "{{.ExeFull}}:{{.Matches.Cfgfile}}:{{.Matches.port}}"
    exe: [/usr/local/bin/process-exporter]
    cmdline:
      - -config.path\s+(?P<Cfgfile>\S+)
      - -web.listen-address\s+:(?P<port>\d+)
)");
  EXPECT_EQ(MatchOf(sets, Process("process-exporte", {"/usr/local/bin/process-exporter", "-config.path",
                                                      "/etc/pe.yml", "-web.listen-address", ":9256"})),
            "0:/usr/local/bin/process-exporter:/etc/pe.yml:9256");
}

TEST(ProcessSetsTest, OptionalGroupThatDidNotParticipateRendersEmpty) {
  const ProcessSets sets =
      Sets("process_sets:\n  - name: 'w{{.Matches.n}}'\n    cmdline: ['^worker(?P<n>\\d+)?']\n");
  EXPECT_EQ(MatchOf(sets, Process("w", {"worker7"})), "0:w7");
  EXPECT_EQ(MatchOf(sets, Process("w", {"worker"})), "0:w");
}

TEST(ProcessSetsTest, CmdlineRegexSeesInvalidUtf8AsReplacementCharacterLikeGo) {
  // process-exporter's Go regexps read an invalid byte as U+FFFD, which "." matches.
  const ProcessSets sets =
      Sets("process_sets:\n  - name: 'a{{.Matches.x}}'\n    cmdline: ['te(?P<x>.<b>)']\n");
  EXPECT_EQ(MatchOf(sets, Process("t", {"te\xff<b>"})), "0:a\xEF\xBF\xBD<b>");
  EXPECT_EQ(MatchOf(sets, Process("t", {"te\xC3\xA9<b>"})), "0:a\xC3\xA9<b>");
}

TEST(ProcessSetsTest, MatcherKindsAreAnded) {
  const ProcessSets sets =
      Sets("process_sets:\n  - name: s\n    comm: [python3]\n    cmdline: ['manage\\.py']\n");
  EXPECT_EQ(MatchOf(sets, Process("python3", {"python3", "manage.py", "runserver"})), "0:s");
  EXPECT_EQ(MatchOf(sets, Process("python3", {"python3", "other.py"})), "none");
  EXPECT_EQ(MatchOf(sets, Process("bash", {"bash", "manage.py"})), "none");
}

TEST(ProcessSetsTest, UserMatchesByNameOrUid) {
  const ProcessSets sets = Sets("process_sets:\n  - name: s\n    user: [www-data, 0]\n");
  ProcessAttributes process = Process("x");
  process.effective_uid = 33;
  process.username = "www-data";
  EXPECT_EQ(MatchOf(sets, process), "0:s");
  process.effective_uid = 0;
  process.username = "root";
  EXPECT_EQ(MatchOf(sets, process), "0:s");
  process.effective_uid = 1000;
  process.username = "alice";
  EXPECT_EQ(MatchOf(sets, process), "none");
  // A name is not resolved against this host's passwd: the config may come from another.
  process.effective_uid = 33;
  process.username = "33";
  EXPECT_EQ(MatchOf(sets, process), "none");
}

TEST(ProcessSetsTest, CgroupMatchesPrefixAtPathComponentBoundary) {
  const ProcessSets sets = Sets("process_sets:\n  - name: s\n    cgroup: [/system.slice/nginx.service/]\n");
  ProcessAttributes process = Process("nginx");
  process.cgroup = "/system.slice/nginx.service";
  EXPECT_EQ(MatchOf(sets, process), "0:s");
  process.cgroup = "/system.slice/nginx.service/sub";
  EXPECT_EQ(MatchOf(sets, process), "0:s");
  process.cgroup = "/system.slice/nginx.service2";
  EXPECT_EQ(MatchOf(sets, process), "none");
  process.cgroup = "/system.slice";
  EXPECT_EQ(MatchOf(sets, process), "none");
  process.cgroup = "";
  EXPECT_EQ(MatchOf(sets, process), "none");
}

TEST(ProcessSetsTest, RootCgroupMatchesEveryCgroup) {
  const ProcessSets sets = Sets("process_sets:\n  - name: s\n    cgroup: [/]\n");
  ProcessAttributes process = Process("x");
  process.cgroup = "/user.slice/user-1000.slice";
  EXPECT_EQ(MatchOf(sets, process), "0:s");
}

class PidfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempDir() + "/process_set_test_" + std::to_string(getpid()) + ".pid";
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void Write(const std::string& text) { std::ofstream(path_, std::ios::trunc) << text; }
  ProcessAttributes WithPid(int pid) {
    ProcessAttributes process = Process("daemon");
    process.pid = pid;
    return process;
  }
  std::string path_;
};

TEST_F(PidfileTest, RefreshMovesTheMatchToTheNewPid) {
  Write("100\n");
  ProcessSets sets = Sets("process_sets:\n  - name: d\n    pidfile: " + path_ + "\n  - name: other\n");
  // The constructor reads the pidfile once.
  EXPECT_EQ(MatchOf(sets, WithPid(100)), "0:d");
  EXPECT_EQ(MatchOf(sets, WithPid(200)), "1:other");
  EXPECT_FALSE(sets.RefreshPidfiles());  // unchanged
  Write("200");
  EXPECT_TRUE(sets.RefreshPidfiles());
  EXPECT_EQ(MatchOf(sets, WithPid(100)), "1:other");
  EXPECT_EQ(MatchOf(sets, WithPid(200)), "0:d");
}

TEST_F(PidfileTest, MissingOrGarbledPidfileMatchesNothing) {
  ProcessSets sets = Sets("process_sets:\n  - name: d\n    pidfile: " + path_ + "\n");
  EXPECT_EQ(MatchOf(sets, WithPid(100)), "none");
  Write("  100  \n");
  EXPECT_TRUE(sets.RefreshPidfiles());
  EXPECT_EQ(MatchOf(sets, WithPid(100)), "0:d");
  for (const char* garbage : {"", "abc", "-100", "0", "100x", "100 200"}) {
    Write(garbage);
    sets.RefreshPidfiles();
    EXPECT_EQ(MatchOf(sets, WithPid(100)), "none") << '"' << garbage << '"';
  }
  Write("100");
  EXPECT_TRUE(sets.RefreshPidfiles());
  std::filesystem::remove(path_);
  EXPECT_TRUE(sets.RefreshPidfiles());
  EXPECT_EQ(MatchOf(sets, WithPid(100)), "none");
}

TEST(ProcessSetsTest, TemplatesRenderEveryField) {
  const ProcessSets sets = Sets(
      "process_sets:\n  - name: '{{.Comm}}|{{.ExeBase}}|{{.ExeFull}}|{{.Username}}|{{.PID}}|{{.StartTime}}|"
      "{{.Matches.cfg}}'\n    cmdline: ['-c (?P<cfg>\\S+)']\n");
  ProcessAttributes process =
      Process("nginx", {"/usr/sbin/nginx", "-c", "/etc/nginx.conf"}, "/usr/sbin/nginx");
  process.pid = 31337;
  process.start_time_ticks = 123456;
  process.username = "www-data";
  EXPECT_EQ(MatchOf(sets, process), "0:nginx|nginx|/usr/sbin/nginx|www-data|31337|123456|/etc/nginx.conf");
}

TEST(ProcessSetsTest, TemplatesAllowSpacesInsideBraces) {
  const ProcessSets sets = Sets("process_sets:\n  - name: 'a-{{ .Comm }}-{{\t.PID}}'\n");
  EXPECT_EQ(MatchOf(sets, Process("bash")), "0:a-bash-4242");
}

TEST(ProcessSetsTest, UsernameFallsBackToTheUid) {
  const ProcessSets sets = Sets("process_sets:\n  - name: '{{.Username}}'\n");
  ProcessAttributes process = Process("x");
  process.effective_uid = 1234;
  EXPECT_EQ(MatchOf(sets, process), "0:1234");
}

TEST(ProcessSetsTest, ExeBaseAndExeFullFollowProcessExporterThenFallBack) {
  const ProcessSets sets = Sets("process_sets:\n  - name: '{{.ExeBase}}|{{.ExeFull}}'\n");
  // argv[0] as written, even when the program rewrote it (as process-exporter renders it).
  EXPECT_EQ(MatchOf(sets, Process("nginx", {"nginx: master process /usr/sbin/nginx"}, "/usr/sbin/nginx")),
            "0:nginx|nginx: master process /usr/sbin/nginx");
  EXPECT_EQ(MatchOf(sets, Process("bash", {"bash"}, "/usr/bin/bash")), "0:bash|bash");
  // No argv (a process that cleared it): the exe link, without " (deleted)".
  EXPECT_EQ(MatchOf(sets, Process("x", {}, "/usr/bin/foo (deleted)")), "0:foo|/usr/bin/foo");
  // Nothing else readable: comm.
  EXPECT_EQ(MatchOf(sets, Process("kworker")), "0:kworker|kworker");
}

TEST(ProcessSetsTest, DefaultNameIsExeBase) {
  const ProcessSets sets = Sets("process_names:\n  - comm: [bash]\n");
  EXPECT_EQ(MatchOf(sets, Process("bash", {"/bin/bash", "-l"})), "0:bash");
  EXPECT_THAT(sets.FixedNames(), IsEmpty());
}

TEST(ProcessSetsTest, FixedNamesAreListedOnceInConfigOrder) {
  const ProcessSets sets = Sets(
      "process_names:\n  - name: web\n    comm: [a]\n  - name: '{{.Comm}}'\n  - name: db\n    comm: [b]\n"
      "  - name: web\n    comm: [c]\n");
  EXPECT_THAT(sets.FixedNames(), ElementsAre("web", "db"));
  EXPECT_EQ(MatchOf(sets, Process("c")), "1:c");
}

TEST(ProcessSetsTest, ChildrenFlagIsReported) {
  const ProcessSets sets =
      Sets("process_sets:\n  - name: cron\n    comm: [cron]\n    children: true\n  - name: x\n");
  EXPECT_TRUE(sets.Match(Process("cron"))->children);
  EXPECT_FALSE(sets.Match(Process("bash"))->children);
}

TEST(ProcessSetsTest, NameForDescendantRendersTheSetTemplate) {
  const ProcessSets sets = Sets(R"(
process_sets:
  - name: cron
    comm: [cron]
    children: true
  - name: "job:{{.Comm}}:{{.Matches.script}}"
    cmdline: ['run-job (?P<script>\S+)']
    children: true
)");
  EXPECT_EQ(sets.NameForDescendant(0, Process("backup.sh", {"/bin/sh", "backup.sh"})), "cron");
  EXPECT_EQ(sets.NameForDescendant(1, Process("sh", {"sh", "-c", "run-job nightly"})), "job:sh:nightly");
  // A descendant that does not match the regexes still gets the template, groups empty.
  EXPECT_EQ(sets.NameForDescendant(1, Process("rsync", {"rsync", "-a"})), "job:rsync:");
  EXPECT_EQ(sets.NameForDescendant(7, Process("x")), "");
}

TEST(ProcessSetsTest, NeededAttributesFollowMatchersAndTemplates) {
  EXPECT_EQ(Sets("process_sets:\n  - name: '{{.Comm}}'\n").NeededAttributes(), 0u);
  EXPECT_EQ(Sets("process_sets:\n  - name: '{{.PID}}-{{.StartTime}}'\n    comm: [a]\n").NeededAttributes(),
            0u);
  EXPECT_EQ(Sets("process_sets:\n  - name: x\n    exe: [a]\n").NeededAttributes(), kNeedExe | kNeedCmdline);
  EXPECT_EQ(Sets("process_sets:\n  - name: x\n    cmdline: [a]\n").NeededAttributes(),
            unsigned{kNeedCmdline});
  EXPECT_EQ(Sets("process_sets:\n  - name: x\n    user: [root]\n").NeededAttributes(), unsigned{kNeedUser});
  EXPECT_EQ(Sets("process_sets:\n  - name: x\n    cgroup: [/a]\n").NeededAttributes(), unsigned{kNeedCgroup});
  EXPECT_EQ(Sets("process_sets:\n  - name: '{{.Username}}'\n").NeededAttributes(), unsigned{kNeedUser});
  EXPECT_EQ(Sets("process_sets:\n  - name: '{{.ExeFull}}'\n").NeededAttributes(), kNeedExe | kNeedCmdline);
  // The default name is {{.ExeBase}}.
  EXPECT_EQ(Sets("process_sets:\n  - comm: [a]\n").NeededAttributes(), kNeedExe | kNeedCmdline);
  EXPECT_EQ(Sets("process_sets:\n  - name: a\n    comm: [a]\n  - name: b\n    user: [0]\n  - name: c\n    "
                 "cgroup: [/]\n")
                .NeededAttributes(),
            kNeedUser | kNeedCgroup);
}

TEST(ProcessSetsTest, MovedSetsStillMatch) {
  ProcessSets original = Sets("process_sets:\n  - name: s\n    cmdline: ['x']\n");
  ProcessSets moved(std::move(original));
  EXPECT_EQ(MatchOf(moved, Process("a", {"x"})), "0:s");
  ProcessSets assigned = Sets("process_sets:\n  - name: t\n");
  assigned = std::move(moved);
  EXPECT_EQ(MatchOf(assigned, Process("a", {"x"})), "0:s");
}

TEST(ProcessSetsValidationTest, ValidateRegexReturnsRe2Error) {
  EXPECT_EQ(ProcessSets::ValidateRegex("a(?P<x>b)"), std::nullopt);
  EXPECT_EQ(ProcessSets::ValidateRegex("(abc"), "missing ): (abc");
}

TEST(ProcessSetsValidationTest, ValidateTemplateAcceptsEveryField) {
  EXPECT_EQ(ProcessSets::ValidateTemplate("plain"), std::nullopt);
  EXPECT_EQ(
      ProcessSets::ValidateTemplate("{{.Comm}}{{.ExeBase}}{{.ExeFull}}{{.Username}}{{.PID}}{{.StartTime}}"
                                    "{{.Matches.a_1}}"),
      std::nullopt);
  EXPECT_EQ(ProcessSets::ValidateTemplate("a }} b"), std::nullopt);  // Go treats a lone }} as text
  EXPECT_EQ(ProcessSets::ValidateTemplate("{{.Matches.}}"),
            "unknown field \"{{.Matches.}}\" (known: .Comm .ExeBase .ExeFull .Username .PID .StartTime "
            ".Matches.NAME .Unit .Cgroup .ContainerID)");
  EXPECT_EQ(
      ProcessSets::ValidateTemplate("{{.comm}}"),
      "unknown field \"{{.comm}}\" (known: .Comm .ExeBase .ExeFull .Username .PID .StartTime .Matches.NAME "
      ".Unit .Cgroup .ContainerID)");
}

TEST(ProcessSetsValidationTest, ValidateTemplateCapturesNeedsAGroupOfThatName) {
  EXPECT_EQ(ProcessSets::ValidateTemplateCaptures("{{.Matches.a}}", {"x", "(?P<a>y)"}), std::nullopt);
  EXPECT_EQ(ProcessSets::ValidateTemplateCaptures("{{.Comm}}", {}), std::nullopt);
  EXPECT_EQ(
      ProcessSets::ValidateTemplateCaptures("{{.Matches.b}}", {"(?P<a>y)"}),
      "{{.Matches.b}} names no capture group of this set's cmdline regexes (define one with (?P<b>...))");
}

}  // namespace
}  // namespace pidfd_exporter

namespace pidfd_exporter {
namespace {

// --- Service and container identity ({{.Unit}}, {{.Cgroup}}, {{.ContainerID}}, unit:) ---------

constexpr char kContainerId[] = "2327a2aec169e25cf05f2a901486b7463fdb513ae097fc0ae6a3ca94381ddc42";

ProcessAttributes InCgroup(std::string comm, std::string cgroup) {
  ProcessAttributes process = Process(std::move(comm));
  process.cgroup = std::move(cgroup);
  return process;
}

TEST(ProcessSetsIdentityTest, IdentityFieldsNeedTheCgroupRead) {
  EXPECT_EQ(Sets("process_sets:\n  - name: '{{.Unit}}'\n").NeededAttributes(), unsigned{kNeedCgroup});
  EXPECT_EQ(Sets("process_sets:\n  - name: '{{.Cgroup}}'\n").NeededAttributes(), unsigned{kNeedCgroup});
  EXPECT_EQ(Sets("process_sets:\n  - name: 'c-{{.ContainerID}}'\n").NeededAttributes(),
            unsigned{kNeedCgroup});
  EXPECT_EQ(Sets("process_sets:\n  - name: x\n    unit: [a.service]\n").NeededAttributes(),
            unsigned{kNeedCgroup});
  EXPECT_EQ(Sets("process_sets:\n  - name: '{{.Comm}}'\n").NeededAttributes(), 0u);
}

TEST(ProcessSetsIdentityTest, TemplatesRenderUnitCgroupAndContainerId) {
  const ProcessSets sets = Sets("process_sets:\n  - name: '{{.Unit}}|{{.ContainerID}}|{{.Cgroup}}'\n");
  const std::string cgroup =
      std::string("/kubepods.slice/kubepods-pod1.slice/cri-containerd-") + kContainerId + ".scope";
  EXPECT_EQ(MatchOf(sets, InCgroup("pause", cgroup)),
            "0:cri-containerd-" + std::string(kContainerId) + ".scope|" + kContainerId + "|" + cgroup);
}

TEST(ProcessSetsIdentityTest, ASetNamedByAnIdentityTakesOnlyProcessesThatHaveOne) {
  const ProcessSets sets = Sets(
      "process_sets:\n  - name: '{{.ContainerID}}'\n  - name: '{{.Unit}}'\n  - name: '{{.Cgroup}}'\n"
      "  - name: rest\n");
  EXPECT_EQ(MatchOf(sets, InCgroup("node", std::string("/docker/") + kContainerId)),
            std::string("0:") + kContainerId);
  EXPECT_EQ(MatchOf(sets, InCgroup("nginx", "/system.slice/nginx.service")), "1:nginx.service");
  EXPECT_EQ(MatchOf(sets, InCgroup("bash", "/user.slice/user-1000.slice")), "2:/user.slice/user-1000.slice");
  // Not read (or unreadable): no set that needs it, the next one takes it.
  EXPECT_EQ(MatchOf(sets, InCgroup("ghost", "")), "3:rest");
}

TEST(ProcessSetsIdentityTest, UnitMatcherTakesExactNamesAndAnchoredRegexes) {
  const ProcessSets sets = Sets(
      "process_sets:\n  - name: web\n    unit: [nginx.service, '~php-fpm@.*\\.service']\n"
      "  - name: '{{.Unit}}'\n    unit: ['~.+\\.service']\n");
  EXPECT_EQ(MatchOf(sets, InCgroup("nginx", "/system.slice/nginx.service")), "0:web");
  EXPECT_EQ(MatchOf(sets, InCgroup("php", "/system.slice/system-php.slice/php-fpm@8.2.service")), "0:web");
  // Anchored: "xphp-fpm@1.service" and "nginx.service.d" are other units.
  EXPECT_EQ(MatchOf(sets, InCgroup("php", "/system.slice/xphp-fpm@1.service")), "1:xphp-fpm@1.service");
  EXPECT_EQ(MatchOf(sets, InCgroup("sshd", "/system.slice/ssh.service")), "1:ssh.service");
  // The unit of a process in a sub-cgroup of a service is that service.
  EXPECT_EQ(MatchOf(sets, InCgroup("nginx", "/system.slice/nginx.service/worker")), "0:web");
  EXPECT_EQ(MatchOf(sets, InCgroup("bash", "/user.slice/user-1000.slice/session-3.scope")), "none");
  EXPECT_EQ(MatchOf(sets, InCgroup("init", "/")), "none");
}

TEST(ProcessSetsIdentityTest, ValidateUnitPattern) {
  EXPECT_EQ(ProcessSets::ValidateUnitPattern("nginx.service"), std::nullopt);
  EXPECT_EQ(ProcessSets::ValidateUnitPattern("session-1.scope"), std::nullopt);
  EXPECT_EQ(ProcessSets::ValidateUnitPattern("~.*"), std::nullopt);
  EXPECT_EQ(ProcessSets::ValidateUnitPattern("~(a"), "invalid regex (a: missing ): (a");
  EXPECT_NE(ProcessSets::ValidateUnitPattern("nginx"), std::nullopt);
  EXPECT_NE(ProcessSets::ValidateUnitPattern("system.slice/nginx.service"), std::nullopt);
  EXPECT_NE(ProcessSets::ValidateUnitPattern(""), std::nullopt);
}

}  // namespace
}  // namespace pidfd_exporter
