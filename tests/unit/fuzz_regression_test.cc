// Regression tests for the fuzzers in fuzz/: every seed and every crash input kept under
// fuzz/corpus/<target>/ goes through the same calls and invariants as the fuzz target, in
// the ordinary (gcc, and ASan/TSan in scripts/sanitizers.sh) test build. A crash found by
// scripts/fuzz.sh is added as a file there (named crash-<what>) and, when it teaches
// something, as a named TEST below.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup_oom_counter.h"
#include "config.h"
#include "kernel_log.h"
#include "proc_connector.h"
#include "procfs.h"
#include "taskstats.h"
#if __has_include("web_config.h")
#include "web_config.h"
#define PIDFD_HAVE_WEB_CONFIG 1
#endif

namespace pidfd_exporter {
namespace {

const std::filesystem::path kCorpusRoot =
    std::filesystem::path(PIDFD_TEST_FIXTURES_DIR) / ".." / ".." / "fuzz" / "corpus";

std::vector<std::string> CorpusFiles(const char* target) {
  std::vector<std::string> files;
  const auto directory = kCorpusRoot / target;
  if (!std::filesystem::is_directory(directory)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The body of fuzz/fuzz_config.cc.
void CheckConfigInput(std::string_view text) {
  ConfigResult result = ParseConfig(text, "fuzz.yml");
  EXPECT_NE(result.config.has_value(), !result.errors.empty()) << "config set exactly when no errors";
  for (const auto& error : result.errors) {
    EXPECT_FALSE(error.message.empty());
    (void)error.ToString();
  }
  (void)ParseDuration(text.substr(0, 64));
}

// The body of fuzz/fuzz_procfs.cc (first byte selects the parser).
void CheckProcfsInput(std::string_view input) {
  if (input.empty()) return;
  const auto selector = static_cast<uint8_t>(input[0]);
  const std::string_view text = input.substr(1);
  switch (selector % 8) {
    case 0:
      if (auto stat = ParseStat(text)) {
        EXPECT_LE(stat->comm.size(), text.size());
      }
      break;
    case 1:
      (void)ParseStatus(text);
      break;
    case 2: {
      size_t total = 0;
      for (const auto& argument : ParseCmdline(text)) total += argument.size();
      EXPECT_LE(total, text.size());
      break;
    }
    case 3:
      (void)ParseCgroup(text);
      break;
    case 4:
      if (auto pid = ParsePidfile(text)) {
        EXPECT_GT(*pid, 0);
      }
      break;
    case 5:
      (void)ParsePidfdFdinfoPid(text);
      break;
    case 6:
      (void)ParseComm(text);
      break;
    default:
      (void)ParseStat(text);
      (void)ParseStatus(text);
      (void)ParseCmdline(text);
      (void)ParseCgroup(text);
      (void)ParsePidfile(text);
      (void)ParsePidfdFdinfoPid(text);
      break;
  }
}

// The body of fuzz/fuzz_connector.cc.
void CheckConnectorInput(std::string_view input) {
  const std::span<const uint8_t> data(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  ConnectorSequenceTracker tracker;
  ConnectorBatch batch;
  ParseConnectorMessages(data, &tracker, &batch);
  EXPECT_LE(batch.events.size() * 16, data.size());
  for (const ProcEvent& event : batch.events) {
    if (event.kind == ProcEvent::Kind::kComm) {
      EXPECT_LE(event.comm.size(), 16u);
    }
  }
  ConnectorBatch plain;
  ParseConnectorMessages(data, nullptr, &plain);
  EXPECT_EQ(plain.events.size(), batch.events.size());
  ConnectorBatch truncated;
  ParseConnectorMessages(data.first(data.size() / 2), nullptr, &truncated);
}

// The body of fuzz/fuzz_taskstats.cc, with its family id (that of the recorded seeds).
constexpr uint16_t kTaskstatsFuzzFamilyId = 0x1f;
// nlmsghdr + genlmsghdr + AGGR_PID header + PID attribute + STATS header + 136 bytes of stats.
constexpr size_t kSmallestTaskstatsRecordBytes = 16 + 4 + 4 + 8 + 4 + 136;

void CheckTaskstatsInput(std::string_view input) {
  const std::span<const uint8_t> data(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  TaskstatsBatch batch;
  ParseTaskstatsMessages(data, kTaskstatsFuzzFamilyId, &batch);
  EXPECT_LE(batch.records.size() * kSmallestTaskstatsRecordBytes, data.size());
  EXPECT_LE(batch.records.size() + batch.malformed, data.size() / 16 + 1);
  for (const TaskExitRecord& record : batch.records) {
    EXPECT_GT(record.pid, 0);
    EXPECT_LE(record.comm.size(), 32u);
    EXPECT_EQ(record.comm.find('\0'), std::string::npos);
  }
  TaskstatsBatch other;
  ParseTaskstatsMessages(data, kTaskstatsFuzzFamilyId + 1, &other);
  EXPECT_EQ(other.records.size() + other.malformed, batch.records.size() + batch.malformed);
  TaskstatsBatch truncated;
  ParseTaskstatsMessages(data.first(data.size() / 2), kTaskstatsFuzzFamilyId, &truncated);
}

// The body of fuzz/fuzz_kernel_log.cc.
void CheckKernelLogInput(std::string_view input) {
  if (input.empty()) return;
  const auto selector = static_cast<uint8_t>(input[0]);
  const std::string_view text = input.substr(1);
  switch (selector % 4) {
    case 0:
      if (auto kill = ParseKernelLogRecord(text)) {
        EXPECT_GT(kill->pid, 0);
        EXPECT_LE(kill->comm.size(), text.size());
      }
      break;
    case 1:
      if (auto mount = ParseMemoryCgroupMount(text)) {
        EXPECT_LE(mount->mount_point.size(), text.size());
      }
      break;
    case 2:
      if (auto path = ParseMemoryCgroupPath(text, selector & 4)) {
        EXPECT_EQ(path->front(), '/');
      }
      break;
    case 3:
      (void)ParseOomKillCount(text);
      break;
  }
}

TEST(FuzzRegression, KernelLogCorpus) {
  const auto files = CorpusFiles("kernel_log");
  EXPECT_FALSE(files.empty());
  for (const auto& file : files) {
    SCOPED_TRACE(file);
    CheckKernelLogInput(ReadAll(file));
  }
}

TEST(FuzzRegression, ConfigCorpus) {
  const auto files = CorpusFiles("config");
  EXPECT_FALSE(files.empty()) << "no corpus under " << kCorpusRoot;
  for (const auto& file : files) {
    SCOPED_TRACE(file);
    CheckConfigInput(ReadAll(file));
  }
}

TEST(FuzzRegression, ProcfsCorpus) {
  const auto files = CorpusFiles("procfs");
  EXPECT_FALSE(files.empty());
  for (const auto& file : files) {
    SCOPED_TRACE(file);
    CheckProcfsInput(ReadAll(file));
  }
}

TEST(FuzzRegression, ConnectorCorpus) {
  const auto files = CorpusFiles("connector");
  EXPECT_FALSE(files.empty());
  for (const auto& file : files) {
    SCOPED_TRACE(file);
    CheckConnectorInput(ReadAll(file));
  }
}

TEST(FuzzRegression, TaskstatsCorpus) {
  const auto files = CorpusFiles("taskstats");
  EXPECT_FALSE(files.empty());
  for (const auto& file : files) {
    SCOPED_TRACE(file);
    CheckTaskstatsInput(ReadAll(file));
  }
}

#ifdef PIDFD_HAVE_WEB_CONFIG
TEST(FuzzRegression, WebConfigCorpus) {
  for (const auto& file : CorpusFiles("web_config")) {
    SCOPED_TRACE(file);
    const std::string text = ReadAll(file);
    WebConfigResult result = ParseWebConfig(text, "/nonexistent-pidfd-fuzz-dir/web.yml");
    EXPECT_NE(result.config.has_value(), !result.errors.empty());
    if (result.config) {
      for (const auto& [user, hash] : result.config->basic_auth_users) {
        EXPECT_TRUE(IsBcryptHash(hash)) << user;
      }
    }
    (void)IsBcryptHash(std::string_view(text).substr(0, 80));
  }
}
#endif

// Hand-made hostile inputs in the spirit of the fuzzers, kept as named cases.
TEST(FuzzRegression, ConfigSurvivesYamlBombsAndOddNodes) {
  // Billion laughs: aliases expand by reference in yaml-cpp; must stay bounded.
  CheckConfigInput(
      "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
      "process_sets: [*d]\n");
  CheckConfigInput("process_sets:\n  - &s {name: a, comm: [x]}\n  - *s\n");
  CheckConfigInput(std::string(2000, '[') + std::string(2000, ']'));
  CheckConfigInput("process_sets: [{name: \"{{.Matches.\", cmdline: ['(?P<']}]\n");
  CheckConfigInput("histograms: {reap_latency_seconds: [.nan, .inf, -.inf, 1e308, -0]}\n");
  CheckConfigInput("discovery: {scan_interval: 99999999999999999999999h}\nlimits: {max_sets: -1}\n");
  CheckConfigInput(std::string_view("process_sets:\n  - name: \"\0\"\n", 26));
}

// Found by fuzz_config and fuzz_web_config (scripts/fuzz.sh, first minute): yaml-cpp 0.7's
// YAML::LoadAll never returns on a stray "," outside any collection (each round yields an
// empty document and consumes nothing: jbeder/yaml-cpp #1040, fixed upstream by #1319 after
// 0.8), allocating until the machine runs out of memory. A typo in a config file must be an
// error, never a hang at start-up or on reload. Each parse runs in a forked child that
// alarm(2) kills, so a regression fails in 2 s instead of eating the test machine's memory.
void ExpectReturnsPromptly(const std::function<void()>& parse) {
  EXPECT_EXIT(
      {
        alarm(2);
        parse();
        _exit(0);
      },
      ::testing::ExitedWithCode(0), "")
      << "the parser did not return within 2 s (yaml-cpp LoadAll loop?)";
}

TEST(FuzzRegression, ConfigStrayCommaIsAnErrorNotAHang) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (const char* text : {",", "&a#*a, *c\xa3\n", "process_sets: []\n,\n", ",\n---\n,"}) {
    SCOPED_TRACE(text);
    ExpectReturnsPromptly([text] {
      ConfigResult result = ParseConfig(text, "fuzz.yml");
      if (result.config || result.errors.empty()) _exit(3);  // must be refused with an error
    });
  }
}

#ifdef PIDFD_HAVE_WEB_CONFIG
TEST(FuzzRegression, WebConfigStrayCommaIsAnErrorNotAHang) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (const char* text : {",", ",\xe9", "basic_auth_users: {}\n,\n"}) {
    SCOPED_TRACE(text);
    ExpectReturnsPromptly([text] {
      WebConfigResult result = ParseWebConfig(text, "/nonexistent-pidfd-fuzz-dir/web.yml");
      if (result.config || result.errors.empty()) _exit(3);
    });
  }
}
#endif

TEST(FuzzRegression, ConnectorSurvivesLengthsThatLie) {
  // nlmsg_len smaller than the header, larger than the buffer, and zero.
  for (uint32_t length : {0u, 1u, 15u, 16u, 17u, 0xffffffffu}) {
    std::string buffer(64, '\0');
    std::memcpy(buffer.data(), &length, sizeof length);
    CheckConnectorInput(buffer);
  }
}

TEST(FuzzRegression, TaskstatsSurvivesLengthsThatLie) {
  // nlmsg_len smaller than the header, larger than the buffer, and zero; then an attribute
  // length of zero, below its header and beyond the message inside a message of our family.
  for (uint32_t length : {0u, 1u, 15u, 16u, 17u, 0xffffffffu}) {
    std::string buffer(64, '\0');
    std::memcpy(buffer.data(), &length, sizeof length);
    CheckTaskstatsInput(buffer);
  }
  for (uint16_t attribute_length : {0, 1, 3, 4, 5, 44, 45, 0xffff}) {
    std::string buffer(64, '\0');
    const uint32_t message_length = 64;
    std::memcpy(buffer.data(), &message_length, sizeof message_length);
    std::memcpy(buffer.data() + 4, &kTaskstatsFuzzFamilyId, sizeof kTaskstatsFuzzFamilyId);
    buffer[16] = 2;  // TASKSTATS_CMD_NEW
    std::memcpy(buffer.data() + 20, &attribute_length, sizeof attribute_length);
    buffer[22] = 4;  // TASKSTATS_TYPE_AGGR_PID
    CheckTaskstatsInput(buffer);
  }
}

}  // namespace
}  // namespace pidfd_exporter
