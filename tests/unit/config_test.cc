#include "config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace pidfd_exporter {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using namespace std::chrono_literals;

// The source tree, from the fixtures directory CMake passes (tests/fixtures).
std::filesystem::path SourceDir() {
  return std::filesystem::path(PIDFD_TEST_FIXTURES_DIR) / ".." / "..";
}

// Every error of `text` as "file:line:col: message", in order.
std::vector<std::string> Errors(const std::string& text) {
  const ConfigResult result = ParseConfig(text, "t.yml");
  std::vector<std::string> errors;
  for (const ConfigError& error : result.errors) errors.push_back(error.ToString());
  EXPECT_EQ(result.config.has_value(), errors.empty());
  return errors;
}

Config Parsed(const std::string& text) {
  ConfigResult result = ParseConfig(text, "t.yml");
  for (const ConfigError& error : result.errors) ADD_FAILURE() << error.ToString();
  return result.config.value_or(Config{});
}

// --- Files that ship ----------------------------------------------------------------------

TEST(ConfigTest, ScanIntervalDefaultsPerDiscoveryModeUnlessConfigured) {
  Config config;
  EXPECT_EQ(ScanInterval(config, /*connector_in_use=*/true), 30s);
  EXPECT_EQ(ScanInterval(config, /*connector_in_use=*/false), 5s);
  config.scan_interval = 90min;
  EXPECT_EQ(ScanInterval(config, true), 90min);
  EXPECT_EQ(ScanInterval(config, false), 90min);
}

TEST(ConfigTest, ShippedDefaultConfigParses) {
  const ConfigResult result = LoadConfigFile((SourceDir() / "config" / "pidfd_exporter.yml").string());
  ASSERT_THAT(result.errors, IsEmpty()) << result.errors[0].ToString();
  const Config& config = *result.config;
  ASSERT_EQ(config.process_sets.size(), 1u);
  EXPECT_EQ(config.process_sets[0].name, "{{.Comm}}");
  EXPECT_TRUE(config.process_sets[0].name_is_template);
  EXPECT_THAT(config.process_sets[0].comm, IsEmpty());
  EXPECT_EQ(config.scan_interval, std::nullopt);  // ScanInterval picks the default
  EXPECT_EQ(config.proc_connector, DiscoveryMode::kAuto);
  EXPECT_EQ(config.max_sets, 256u);
  EXPECT_THAT(config.reap_latency_buckets, ElementsAre(0.0001, 0.001, 0.01, 0.1, 1, 10, 60, 600, 3600));
  EXPECT_THAT(config.lifetime_buckets, ElementsAre(0.01, 0.1, 1, 10, 60, 600, 3600, 86400));
}

TEST(ConfigTest, EveryExampleConfigParses) {
  int examples = 0;
  for (const auto& entry : std::filesystem::directory_iterator(SourceDir() / "config" / "examples")) {
    if (entry.path().extension() != ".yml") continue;
    ++examples;
    const ConfigResult result = LoadConfigFile(entry.path().string());
    for (const ConfigError& error : result.errors) ADD_FAILURE() << error.ToString();
    ASSERT_TRUE(result.config.has_value()) << entry.path();
    EXPECT_FALSE(result.config->process_sets.empty()) << entry.path();
  }
  EXPECT_GE(examples, 3);
}

TEST(ConfigTest, ProcessExporterReadmeExampleParsesWithTheSameMeaning) {
  const Config config = Parsed(R"(
process_names:
  # comm is the second field of /proc/<pid>/stat minus parens.
  - comm:
    - bash

  - exe:
    - postgres
    - /usr/local/bin/prometheus

  - name: "{{.ExeFull}}:{{.Matches.Cfgfile}}"
    exe:
    - /usr/local/bin/process-exporter
    cmdline:
    - -config.path\s+(?P<Cfgfile>\S+)
)");
  ASSERT_EQ(config.process_sets.size(), 3u);
  EXPECT_EQ(config.process_sets[0].name, "{{.ExeBase}}");  // process-exporter's default
  EXPECT_THAT(config.process_sets[0].comm, ElementsAre("bash"));
  EXPECT_EQ(config.process_sets[1].name, "{{.ExeBase}}");
  EXPECT_THAT(config.process_sets[1].exe, ElementsAre("postgres", "/usr/local/bin/prometheus"));
  EXPECT_EQ(config.process_sets[2].name, "{{.ExeFull}}:{{.Matches.Cfgfile}}");
  EXPECT_THAT(config.process_sets[2].exe, ElementsAre("/usr/local/bin/process-exporter"));
  EXPECT_THAT(config.process_sets[2].cmdline, ElementsAre(R"(-config.path\s+(?P<Cfgfile>\S+))"));
  EXPECT_FALSE(config.process_sets[2].children);
}

TEST(ConfigTest, ProcessExporterHomeMachineExampleParses) {
  const Config config = Parsed(R"(
process_names:
  - comm:
    - chromium-browse
    - bash
    - prometheus
    - gvim
  - exe:
    - /sbin/upstart
    cmdline:
    - --user
    name: upstart:-user
)");
  ASSERT_EQ(config.process_sets.size(), 2u);
  EXPECT_THAT(config.process_sets[0].comm, ElementsAre("chromium-browse", "bash", "prometheus", "gvim"));
  EXPECT_EQ(config.process_sets[1].name, "upstart:-user");
  EXPECT_FALSE(config.process_sets[1].name_is_template);
  EXPECT_THAT(config.process_sets[1].cmdline, ElementsAre("--user"));
}

// --- The schema -----------------------------------------------------------------------------

TEST(ConfigTest, EveryKeyIsRead) {
  const Config config = Parsed(R"(
process_sets:
  - name: web
    comm: [nginx, apache2]
    exe: [/usr/sbin/nginx]
    cmdline: ['-c\s+(?P<cfg>\S+)', daemon]
    user: [www-data, "33"]
    cgroup: ['/system.slice/nginx.service']
    pidfile: /run/nginx.pid
    children: true
discovery:
  scan_interval: 1h30m
  proc_connector: off
limits:
  max_sets: 10
histograms:
  reap_latency_seconds: [0.5, 1, 2.5]
  lifetime_seconds: [1e-3, 1]
)");
  ASSERT_EQ(config.process_sets.size(), 1u);
  const ProcessSetConfig& set = config.process_sets[0];
  EXPECT_EQ(set.name, "web");
  EXPECT_FALSE(set.name_is_template);
  EXPECT_THAT(set.comm, ElementsAre("nginx", "apache2"));
  EXPECT_THAT(set.exe, ElementsAre("/usr/sbin/nginx"));
  EXPECT_THAT(set.cmdline, ElementsAre(R"(-c\s+(?P<cfg>\S+))", "daemon"));
  EXPECT_THAT(set.user, ElementsAre("www-data", "33"));
  EXPECT_THAT(set.cgroup, ElementsAre("/system.slice/nginx.service"));
  EXPECT_EQ(set.pidfile, "/run/nginx.pid");
  EXPECT_TRUE(set.children);
  EXPECT_EQ(set.position.line, 3);
  EXPECT_EQ(set.position.column, 5);
  EXPECT_EQ(config.scan_interval, 90min);
  EXPECT_EQ(config.proc_connector, DiscoveryMode::kOff);
  EXPECT_EQ(config.max_sets, 10u);
  EXPECT_THAT(config.reap_latency_buckets, ElementsAre(0.5, 1, 2.5));
  EXPECT_THAT(config.lifetime_buckets, ElementsAre(0.001, 1));
  EXPECT_EQ(config.source, "t.yml");
}

TEST(ConfigTest, ScalarMatcherIsAOneElementList) {
  const Config config = Parsed("process_sets:\n  - comm: nginx\n    user: 0\n");
  EXPECT_THAT(config.process_sets[0].comm, ElementsAre("nginx"));
  EXPECT_THAT(config.process_sets[0].user, ElementsAre("0"));
}

TEST(ConfigTest, SetWithoutMatchersOrNameGetsDefaults) {
  const Config config = Parsed("process_sets:\n  - {}\n");
  ASSERT_EQ(config.process_sets.size(), 1u);
  EXPECT_EQ(config.process_sets[0].name, "{{.ExeBase}}");
  EXPECT_TRUE(config.process_sets[0].name_is_template);
  EXPECT_FALSE(config.process_sets[0].children);
}

TEST(ConfigTest, OmittedSectionsKeepDefaults) {
  const Config config = Parsed("process_sets:\n  - name: x\ndiscovery:\nlimits:\n");
  EXPECT_EQ(config.scan_interval, std::nullopt);  // ScanInterval picks the default
  EXPECT_EQ(config.max_sets, 256u);
  EXPECT_EQ(config.reap_latency_buckets.size(), 9u);
}

TEST(ConfigTest, DiscoveryModes) {
  EXPECT_EQ(Parsed("process_sets: [{}]\ndiscovery: {proc_connector: on}\n").proc_connector,
            DiscoveryMode::kOn);
  EXPECT_EQ(Parsed("process_sets: [{}]\ndiscovery: {proc_connector: auto}\n").proc_connector,
            DiscoveryMode::kAuto);
  EXPECT_EQ(Parsed("process_sets: [{}]\n").taskstats, DiscoveryMode::kAuto);
  const Config both = Parsed("process_sets: [{}]\ndiscovery: {proc_connector: on, taskstats: off}\n");
  EXPECT_EQ(both.proc_connector, DiscoveryMode::kOn);
  EXPECT_EQ(both.taskstats, DiscoveryMode::kOff);
  EXPECT_EQ(Parsed("process_sets: [{}]\ndiscovery: {taskstats: on}\n").taskstats, DiscoveryMode::kOn);
  EXPECT_THAT(Errors("process_sets: [{}]\ndiscovery:\n  taskstats: yes\n"),
              ElementsAre("t.yml:3:14: discovery.taskstats: expected auto, on or off, got \"yes\""));
  // Records are paired with the connector's exit events: "on" without the connector is a mistake.
  EXPECT_THAT(
      Errors("process_sets: [{}]\ndiscovery:\n  taskstats: on\n  proc_connector: off\n"),
      ElementsAre(
          "t.yml:3:14: discovery.taskstats: on needs discovery.proc_connector (auto or on), got off"));
  EXPECT_EQ(Parsed("process_sets: [{}]\ndiscovery: {taskstats: auto, proc_connector: off}\n").taskstats,
            DiscoveryMode::kAuto);
}

TEST(ConfigTest, ChildrenAcceptsYamlBooleans) {
  EXPECT_TRUE(Parsed("process_sets: [{children: yes}]\n").process_sets[0].children);
  EXPECT_FALSE(Parsed("process_sets: [{children: false}]\n").process_sets[0].children);
}

TEST(ConfigTest, MaxSetsIsPlainDecimal) {
  // yaml-cpp alone would read "010" as octal 8.
  EXPECT_EQ(Parsed("process_sets: [{}]\nlimits: {max_sets: 010}\n").max_sets, 10u);
}

TEST(ConfigTest, DuplicateTemplatedNamesAreAllowed) {
  EXPECT_THAT(Errors("process_sets:\n  - name: '{{.Comm}}'\n    comm: [a]\n  - name: '{{.Comm}}'\n"),
              IsEmpty());
}

TEST(ConfigTest, ProcessNamesMayRepeatAFixedNameLikeProcessExporter) {
  const Config config =
      Parsed("process_names:\n  - name: java\n    comm: [java]\n  - name: java\n    exe: [java]\n");
  EXPECT_EQ(config.process_sets.size(), 2u);
}

// --- Errors: every kind, with its position ----------------------------------------------------

TEST(ConfigErrorTest, ToStringWithAndWithoutPosition) {
  EXPECT_EQ((ConfigError{"a.yml", 3, 7, "boom"}).ToString(), "a.yml:3:7: boom");
  EXPECT_EQ((ConfigError{"a.yml", 0, 0, "boom"}).ToString(), "a.yml: boom");
}

TEST(ConfigErrorTest, EmptyFileIsAnError) {
  EXPECT_THAT(Errors(""), ElementsAre("t.yml: the file is empty; expected a mapping with \"process_sets\""));
  EXPECT_THAT(Errors("# only a comment\n"),
              ElementsAre("t.yml: the file is empty; expected a mapping with \"process_sets\""));
}

TEST(ConfigErrorTest, RootThatIsNotAMappingIsAnError) {
  EXPECT_THAT(
      Errors("\nhello\n"),
      ElementsAre("t.yml:2:1: expected a mapping with \"process_sets\" at the top level, got \"hello\""));
  EXPECT_THAT(
      Errors("- a\n"),
      ElementsAre("t.yml:1:1: expected a mapping with \"process_sets\" at the top level, got a list"));
}

TEST(ConfigErrorTest, SyntaxErrorReportsParserPosition) {
  EXPECT_THAT(Errors("process_sets:\n  - name: x\n  comm: [a\n"),
              ElementsAre("t.yml:3:3: end of map not found"));
  EXPECT_THAT(Errors("process_sets:\n\t- name: x\n"), ElementsAre("t.yml:2:2: illegal block entry"));
}

TEST(ConfigErrorTest, SecondDocumentIsAnError) {
  EXPECT_THAT(Errors("process_sets: [{}]\n---\nlimits: {}\n"),
              ElementsAre("t.yml:2:1: only one YAML document is allowed; remove the second \"---\""));
}

TEST(ConfigErrorTest, StrayCommaIsAnErrorNotAnEndlessLoop) {
  // yaml-cpp's LoadAll never returns on these inputs, allocating until memory runs out.
  EXPECT_THAT(Errors(","), ElementsAre("t.yml:1:1: unexpected \",\" outside of a list or mapping"));
  EXPECT_THAT(Errors("# comment\n, x\n"),
              ElementsAre("t.yml:2:1: unexpected \",\" outside of a list or mapping"));
  EXPECT_THAT(Errors("[{}]\n,\n"), ElementsAre("t.yml:2:1: unexpected \",\" outside of a list or mapping"));
}

TEST(ConfigErrorTest, MissingProcessSetsIsAnError) {
  EXPECT_THAT(Errors("discovery:\n  scan_interval: 5s\n"),
              ElementsAre("t.yml:1:1: missing \"process_sets\" (or process-exporter's \"process_names\")"));
}

TEST(ConfigErrorTest, EmptyProcessSetsIsAnError) {
  EXPECT_THAT(Errors("process_sets: []\n"),
              ElementsAre("t.yml:1:15: process_sets: must list at least one process set"));
  EXPECT_THAT(Errors("process_sets:\n"), ElementsAre("t.yml:1:1: process_sets: must not be empty"));
  EXPECT_THAT(Errors("process_sets: nginx\n"),
              ElementsAre("t.yml:1:15: process_sets: expected a list of process sets, got \"nginx\""));
  EXPECT_THAT(Errors("process_sets: [nginx]\n"),
              ElementsAre("t.yml:1:16: process_sets[0]: expected a mapping (a process set), got \"nginx\""));
}

TEST(ConfigErrorTest, UnknownTopLevelKeyReportsKeyPosition) {
  EXPECT_THAT(
      Errors("process_sets: [{}]\nprocess_set: []\n"),
      ElementsAre("t.yml:2:1: config: unknown key \"process_set\" (allowed: process_sets, process_names, "
                  "discovery, limits, histograms)"));
}

TEST(ConfigErrorTest, UnknownKeyInSetReportsLineAndColumn) {
  EXPECT_THAT(
      Errors("process_sets:\n  - name: web\n    comn: [nginx]\n"),
      ElementsAre("t.yml:3:5: process_sets[0]: unknown key \"comn\" (allowed: name, comm, exe, cmdline, "
                  "user, cgroup, unit, pidfile, children)"));
}

TEST(ConfigTest, PeakRssBucketsAreConfigurable) {
  const ConfigResult result =
      ParseConfig("process_sets: [{}]\nhistograms:\n  peak_rss_bytes: [1024, 1048576]\n", "t.yml");
  ASSERT_TRUE(result.config);
  EXPECT_EQ(result.config->peak_rss_buckets, (std::vector<double>{1024, 1048576}));
  EXPECT_THAT(Errors("process_sets: [{}]\nhistograms:\n  peak_rss_bytes: [2, 1]\n"),
              ElementsAre(::testing::HasSubstr("strictly increasing")));
}

TEST(ConfigErrorTest, UnknownKeyInSectionsReportsLineAndColumn) {
  EXPECT_THAT(
      Errors("process_sets: [{}]\ndiscovery:\n  interval: 5s\nlimits:\n  max: 1\nhistograms:\n  "
             "reap_seconds: [1]\n"),
      ElementsAre("t.yml:3:3: discovery: unknown key \"interval\" (allowed: scan_interval, proc_connector, "
                  "taskstats)",
                  "t.yml:5:3: limits: unknown key \"max\" (allowed: max_sets, idle_set_timeout)",
                  "t.yml:7:3: histograms: unknown key \"reap_seconds\" (allowed: reap_latency_seconds, "
                  "lifetime_seconds, peak_rss_bytes)"));
}

TEST(ConfigErrorTest, DuplicateKeyPointsAtTheSecond) {
  EXPECT_THAT(Errors("process_sets:\n  - name: a\n    comm: [x]\n    name: b\n"),
              ElementsAre("t.yml:4:5: process_sets[0]: duplicate key \"name\" (first at line 2)"));
  EXPECT_THAT(Errors("process_sets: [{}]\nlimits: {}\nlimits: {}\n"),
              ElementsAre("t.yml:3:1: config: duplicate key \"limits\" (first at line 2)"));
}

TEST(ConfigErrorTest, DuplicateFixedSetNamePointsAtTheSecond) {
  EXPECT_THAT(Errors("process_sets:\n  - name: web\n    comm: [nginx]\n  - name: web\n    comm: [apache2]\n"),
              ElementsAre("t.yml:4:11: process_sets[1].name: duplicate set name \"web\" (first at line 2)"));
}

TEST(ConfigErrorTest, DuplicateFixedSetNameIsReportedBesideOtherErrorsOfTheSet) {
  EXPECT_THAT(
      Errors("process_sets:\n  - name: web\n    comn: x\n  - name: web\n"),
      ElementsAre("t.yml:3:5: process_sets[0]: unknown key \"comn\" (allowed: name, comm, exe, cmdline, "
                  "user, cgroup, unit, pidfile, children)",
                  "t.yml:4:11: process_sets[1].name: duplicate set name \"web\" (first at line 2)"));
}

TEST(ConfigErrorTest, ProcessNamesCannotBeCombinedWithProcessSets) {
  EXPECT_THAT(
      Errors("process_sets: [{}]\nprocess_names: [{}]\n"),
      ElementsAre("t.yml:2:1: \"process_names\" cannot be combined with \"process_sets\" (line 1); use "
                  "one list"));
}

TEST(ConfigErrorTest, ProcessNamesRejectsKeysProcessExporterDoesNotHave) {
  EXPECT_THAT(
      Errors("process_names:\n  - comm: [bash]\n    user: [root]\n"),
      ElementsAre("t.yml:3:5: process_names[0]: unknown key \"user\" (allowed: name, comm, exe, cmdline)"));
}

TEST(ConfigErrorTest, EmptyValueReportsTheKey) {
  // yaml-cpp places a missing value at the next token; the key is where the mistake is.
  EXPECT_THAT(Errors("process_sets:\n  - name:\n    comm: [a]\n"),
              ElementsAre("t.yml:2:5: process_sets[0].name: must not be empty"));
  EXPECT_THAT(Errors("process_sets:\n  - name: ''\n"),
              ElementsAre("t.yml:2:11: process_sets[0].name: must not be empty"));
  EXPECT_THAT(Errors("process_sets:\n  - comm: []\n"),
              ElementsAre("t.yml:2:11: process_sets[0].comm: must list at least one value"));
  EXPECT_THAT(Errors("process_sets:\n  - comm: [a, ~]\n"),
              ElementsAre("t.yml:2:15: process_sets[0].comm[1]: must not be empty"));
}

TEST(ConfigErrorTest, WrongTypesAreReportedAtTheValue) {
  EXPECT_THAT(Errors("process_sets:\n  - name: [a, b]\n"),
              ElementsAre("t.yml:2:11: process_sets[0].name: expected a string, got a list"));
  EXPECT_THAT(
      Errors("process_sets:\n  - comm: {a: b}\n"),
      ElementsAre("t.yml:2:11: process_sets[0].comm: expected a string or a list of strings, got a mapping"));
  EXPECT_THAT(Errors("process_sets:\n  - exe: [[a]]\n"),
              ElementsAre("t.yml:2:11: process_sets[0].exe[0]: expected a string, got a list"));
  EXPECT_THAT(Errors("process_sets:\n  - pidfile: [/run/a.pid]\n"),
              ElementsAre("t.yml:2:14: process_sets[0].pidfile: expected a string, got a list"));
  EXPECT_THAT(Errors("process_sets: [{}]\ndiscovery: 5s\n"),
              ElementsAre("t.yml:2:12: discovery: expected a mapping, got \"5s\""));
}

TEST(ConfigErrorTest, ChildrenMustBeABoolean) {
  EXPECT_THAT(Errors("process_sets:\n  - children: maybe\n"),
              ElementsAre("t.yml:2:15: process_sets[0].children: expected true or false, got \"maybe\""));
  EXPECT_THAT(Errors("process_sets:\n  - children: [true]\n"),
              ElementsAre("t.yml:2:15: process_sets[0].children: expected true or false, got a list"));
}

TEST(ConfigErrorTest, MaxSetsMustBeAPositiveInteger) {
  EXPECT_THAT(Errors("process_sets: [{}]\nlimits:\n  max_sets: abc\n"),
              ElementsAre("t.yml:3:13: limits.max_sets: expected a positive integer, got \"abc\""));
  EXPECT_THAT(Errors("process_sets: [{}]\nlimits:\n  max_sets: 0\n"),
              ElementsAre("t.yml:3:13: limits.max_sets: expected a positive integer, got \"0\""));
  EXPECT_THAT(Errors("process_sets: [{}]\nlimits:\n  max_sets: -5\n"),
              ElementsAre("t.yml:3:13: limits.max_sets: expected a positive integer, got \"-5\""));
  EXPECT_THAT(Errors("process_sets: [{}]\nlimits:\n  max_sets: 1.5\n"),
              ElementsAre("t.yml:3:13: limits.max_sets: expected a positive integer, got \"1.5\""));
}

TEST(ConfigErrorTest, BadRegexReportsRe2Message) {
  EXPECT_THAT(Errors("process_sets:\n  - cmdline: [ok, '(abc']\n"),
              ElementsAre("t.yml:2:19: process_sets[0].cmdline[1]: invalid regex \"(abc\": missing ): (abc"));
  EXPECT_THAT(
      Errors("process_sets:\n  - cmdline: 'a**'\n"),
      ElementsAre("t.yml:2:14: process_sets[0].cmdline: invalid regex \"a**\": bad repetition operator: **"));
}

TEST(ConfigErrorTest, BadTemplatesAreReportedAtTheName) {
  EXPECT_THAT(
      Errors("process_sets:\n  - name: 'x-{{.Foo}}'\n"),
      ElementsAre("t.yml:2:11: process_sets[0].name: unknown field \"{{.Foo}}\" (known: .Comm .ExeBase "
                  ".ExeFull .Username .PID .StartTime .Matches.NAME .Unit .Cgroup .ContainerID)"));
  EXPECT_THAT(Errors("process_sets:\n  - name: 'x-{{.Comm'\n"),
              ElementsAre("t.yml:2:11: process_sets[0].name: unclosed \"{{\" in \"{{.Comm\""));
  EXPECT_THAT(Errors("process_sets:\n  - name: '{{ }}'\n"),
              ElementsAre("t.yml:2:11: process_sets[0].name: empty action \"{{ }}\""));
  EXPECT_THAT(Errors("process_sets:\n  - name: '{{if .Comm}}x{{end}}'\n"),
              ElementsAre("t.yml:2:11: process_sets[0].name: unsupported action \"{{if .Comm}}\": only field "
                          "references such as {{.Comm}} are supported"));
}

TEST(ConfigErrorTest, MatchesNameMustBeDefinedByACmdlineRegex) {
  EXPECT_THAT(
      Errors("process_sets:\n  - name: '{{.Matches.pool}}'\n    cmdline: ['pool (?P<name>\\S+)']\n"),
      ElementsAre("t.yml:2:11: process_sets[0].name: {{.Matches.pool}} names no capture group of this "
                  "set's cmdline regexes (define one with (?P<pool>...))"));
  EXPECT_THAT(
      Errors("process_sets:\n  - name: '{{.Matches.pool}}'\n    comm: [php-fpm]\n"),
      ElementsAre("t.yml:2:11: process_sets[0].name: {{.Matches.pool}} needs a cmdline regex with a group "
                  "(?P<pool>...), and this set has no cmdline regex"));
}

TEST(ConfigErrorTest, BadDurationsAreReported) {
  EXPECT_THAT(
      Errors("process_sets: [{}]\ndiscovery:\n  scan_interval: 5\n"),
      ElementsAre("t.yml:3:18: discovery.scan_interval: invalid duration \"5\" (expected a number and a unit "
                  "among ms, s, m, h, d, w, y, as in 5s or 1m30s)"));
  EXPECT_THAT(Errors("process_sets: [{}]\ndiscovery:\n  scan_interval: 0s\n"),
              ElementsAre("t.yml:3:18: discovery.scan_interval: must be greater than zero, got \"0s\""));
  EXPECT_THAT(
      Errors("process_sets: [{}]\ndiscovery:\n  scan_interval: 99999999999999999999y\n"),
      ElementsAre("t.yml:3:18: discovery.scan_interval: duration too long: \"99999999999999999999y\""));
}

TEST(ConfigErrorTest, ProcConnectorMustBeAutoOnOrOff) {
  EXPECT_THAT(Errors("process_sets: [{}]\ndiscovery:\n  proc_connector: true\n"),
              ElementsAre("t.yml:3:19: discovery.proc_connector: expected auto, on or off, got \"true\""));
}

TEST(ConfigErrorTest, BucketsMustBePositiveFiniteAndIncreasing) {
  EXPECT_THAT(
      Errors("process_sets: [{}]\nhistograms:\n  lifetime_seconds: [1, 10, 10, 5]\n"),
      ElementsAre("t.yml:3:29: histograms.lifetime_seconds[2]: buckets must be strictly increasing, got 10 "
                  "after 10",
                  "t.yml:3:33: histograms.lifetime_seconds[3]: buckets must be strictly increasing, got 5 "
                  "after 10"));
  EXPECT_THAT(
      Errors("process_sets: [{}]\nhistograms:\n  reap_latency_seconds: [0, -1, .inf, abc]\n"),
      ElementsAre(
          "t.yml:3:26: histograms.reap_latency_seconds[0]: expected a positive finite number, got \"0\"",
          "t.yml:3:29: histograms.reap_latency_seconds[1]: expected a positive finite number, got \"-1\"",
          "t.yml:3:33: histograms.reap_latency_seconds[2]: expected a positive finite number, got "
          "\".inf\"",
          "t.yml:3:39: histograms.reap_latency_seconds[3]: expected a positive finite number, got "
          "\"abc\""));
  EXPECT_THAT(Errors("process_sets: [{}]\nhistograms:\n  lifetime_seconds: []\n"),
              ElementsAre("t.yml:3:21: histograms.lifetime_seconds: must list at least one bucket"));
  EXPECT_THAT(
      Errors("process_sets: [{}]\nhistograms:\n  lifetime_seconds: 1\n"),
      ElementsAre(
          "t.yml:3:21: histograms.lifetime_seconds: expected a list of bucket upper bounds, got \"1\""));
}

TEST(ConfigErrorTest, PidfileMustBeAbsoluteAndCgroupMustStartWithSlash) {
  EXPECT_THAT(Errors("process_sets:\n  - pidfile: run/a.pid\n    cgroup: [/ok, system.slice]\n"),
              ElementsAre("t.yml:2:14: process_sets[0].pidfile: must be an absolute path, got \"run/a.pid\"",
                          "t.yml:3:19: process_sets[0].cgroup[1]: a cgroup path starts with \"/\" (as in "
                          "/proc/PID/cgroup), got \"system.slice\""));
}

TEST(ConfigErrorTest, AllErrorsAreCollectedInFileOrder) {
  EXPECT_THAT(
      Errors(R"(process_sets:
  - name: x
    comn: a
    cmdline: ["(abc", ok]
  - name: x
  - name: "{{.Foo}}"
    children: maybe
limits: {max_sets: abc}
discovery:
  scan_interval: 5
  proc_connector: maybe
)"),
      ElementsAre(
          "t.yml:3:5: process_sets[0]: unknown key \"comn\" (allowed: name, comm, exe, cmdline, user, "
          "cgroup, unit, pidfile, children)",
          "t.yml:4:15: process_sets[0].cmdline[0]: invalid regex \"(abc\": missing ): (abc",
          "t.yml:5:11: process_sets[1].name: duplicate set name \"x\" (first at line 2)",
          "t.yml:6:11: process_sets[2].name: unknown field \"{{.Foo}}\" (known: .Comm .ExeBase "
          ".ExeFull .Username .PID .StartTime .Matches.NAME .Unit .Cgroup .ContainerID)",
          "t.yml:7:15: process_sets[2].children: expected true or false, got \"maybe\"",
          "t.yml:8:20: limits.max_sets: expected a positive integer, got \"abc\"",
          "t.yml:10:18: discovery.scan_interval: invalid duration \"5\" (expected a number and a unit "
          "among ms, s, m, h, d, w, y, as in 5s or 1m30s)",
          "t.yml:11:19: discovery.proc_connector: expected auto, on or off, got \"maybe\""));
}

TEST(ConfigErrorTest, MissingFileNamesFileAndErrno) {
  const ConfigResult result = LoadConfigFile("/nonexistent/pidfd_exporter.yml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].ToString(),
            "/nonexistent/pidfd_exporter.yml: cannot open: No such file or directory");
  EXPECT_FALSE(result.config.has_value());
}

TEST(ConfigErrorTest, LoadConfigFileReportsPositionsWithThePath) {
  const std::string path = testing::TempDir() + "/config_test_" + std::to_string(getpid()) + ".yml";
  std::ofstream(path) << "process_sets:\n  - comn: x\n";
  const ConfigResult result = LoadConfigFile(path);
  std::filesystem::remove(path);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].ToString(),
            path +
                ":2:5: process_sets[0]: unknown key \"comn\" (allowed: name, comm, "
                "exe, cmdline, user, cgroup, unit, pidfile, children)");
}

// --- Durations ---------------------------------------------------------------------------------

TEST(ParseDurationTest, AcceptsPrometheusDurations) {
  EXPECT_EQ(ParseDuration("200ms"), 200ms);
  EXPECT_EQ(ParseDuration("5s"), 5s);
  EXPECT_EQ(ParseDuration("1m"), 1min);
  EXPECT_EQ(ParseDuration("1h30m"), 90min);
  EXPECT_EQ(ParseDuration("1d"), 24h);
  EXPECT_EQ(ParseDuration("2w"), 14 * 24h);
  EXPECT_EQ(ParseDuration("1y"), 365 * 24h);
  EXPECT_EQ(ParseDuration("1h1m1s1ms"), 1h + 1min + 1s + 1ms);
  EXPECT_EQ(ParseDuration("90s"), 90s);
}

TEST(ParseDurationTest, RejectsZeroAndGarbage) {
  for (const char* text : {"", "0", "0s", "0h0m", "5", "s", "1.5s", "-1s", " 5s", "5s ", "5S", "5sx", "1m1h",
                           "1s1s", "1ms1s", "5 s", "1h 30m"}) {
    EXPECT_EQ(ParseDuration(text), std::nullopt) << '"' << text << '"';
  }
}

}  // namespace
}  // namespace pidfd_exporter

namespace pidfd_exporter {
namespace {

// --- limits.idle_set_timeout and unit: ----------------------------------------------------

TEST(ConfigIdleSetTimeoutTest, DefaultIsFifteenMinutes) {
  EXPECT_EQ(Parsed("process_sets: [{}]\n").idle_set_timeout, std::chrono::minutes(15));
}

TEST(ConfigIdleSetTimeoutTest, DurationOrZeroForNever) {
  EXPECT_EQ(Parsed("process_sets: [{}]\nlimits: {idle_set_timeout: 90s}\n").idle_set_timeout,
            std::chrono::seconds(90));
  EXPECT_EQ(Parsed("process_sets: [{}]\nlimits: {idle_set_timeout: 1h30m}\n").idle_set_timeout,
            std::chrono::minutes(90));
  EXPECT_EQ(Parsed("process_sets: [{}]\nlimits: {idle_set_timeout: 0s}\n").idle_set_timeout, std::nullopt);
  const Config both = Parsed("process_sets: [{}]\nlimits:\n  max_sets: 3\n  idle_set_timeout: 200ms\n");
  EXPECT_EQ(both.max_sets, 3u);
  EXPECT_EQ(both.idle_set_timeout, std::chrono::milliseconds(200));
}

TEST(ConfigIdleSetTimeoutTest, BadDurationsNamePosition) {
  EXPECT_THAT(
      Errors("process_sets: [{}]\nlimits:\n  idle_set_timeout: 10\n"),
      ElementsAre("t.yml:3:21: limits.idle_set_timeout: invalid duration \"10\" (expected a number and "
                  "a unit among ms, s, m, h, d, w, y, as in 5s or 1m30s)"));
  EXPECT_THAT(Errors("process_sets: [{}]\nlimits:\n  idle_set_timeout: [5m]\n"), testing::SizeIs(1));
  EXPECT_THAT(
      Errors("process_sets: [{}]\nlimits:\n  idle_set_timeout: 99999999999999999999y\n"),
      ElementsAre("t.yml:3:21: limits.idle_set_timeout: duration too long: \"99999999999999999999y\""));
  // The scan interval keeps refusing zero.
  EXPECT_THAT(Errors("process_sets: [{}]\ndiscovery:\n  scan_interval: 0s\n"),
              ElementsAre("t.yml:3:18: discovery.scan_interval: must be greater than zero, got \"0s\""));
}

TEST(ConfigUnitTest, UnitMatcherParses) {
  const Config config =
      Parsed("process_sets:\n  - name: '{{.Unit}}'\n    unit: [nginx.service, '~php-fpm@.*\\.service']\n");
  EXPECT_THAT(config.process_sets[0].unit, ElementsAre("nginx.service", "~php-fpm@.*\\.service"));
  EXPECT_THAT(Parsed("process_sets:\n  - unit: ssh.service\n").process_sets[0].unit,
              ElementsAre("ssh.service"));
}

TEST(ConfigUnitTest, BadUnitsNameTheirPosition) {
  EXPECT_THAT(
      Errors("process_sets:\n  - name: x\n    unit: [nginx.service, nginx, '~(a']\n"),
      ElementsAre(
          "t.yml:3:27: process_sets[0].unit[1]: \"nginx\": a unit name ends in .service or .scope (as "
          "in nginx.service); for a pattern write ~REGEX, as in ~php-fpm@.*\\.service",
          "t.yml:3:34: process_sets[0].unit[2]: \"~(a\": invalid regex (a: missing ): (a"));
  EXPECT_THAT(Errors("process_sets:\n  - name: x\n    unit: []\n"),
              ElementsAre("t.yml:3:11: process_sets[0].unit: must list at least one value"));
  // process-exporter's format has no unit matcher.
  EXPECT_THAT(
      Errors("process_names:\n  - unit: [a.service]\n"),
      ElementsAre("t.yml:2:5: process_names[0]: unknown key \"unit\" (allowed: name, comm, exe, cmdline)"));
}

TEST(ConfigUnitTest, IdentityTemplatesAreValid) {
  EXPECT_THAT(Errors("process_sets:\n  - name: '{{.Unit}}/{{ .ContainerID }}/{{.Cgroup}}'\n"), IsEmpty());
}

}  // namespace
}  // namespace pidfd_exporter
