// Metrics: sets that come and go (limits.idle_set_timeout, limits.max_sets, "_other") and
// the safety of slot handles across expiry and reuse, read back through /metrics text; and the
// exporter's own process_open_fds.
#include "metrics.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "procfs.h"
#include "prometheus_text.h"
#include "unique_fd.h"

namespace pidfd_exporter {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using Clock = std::chrono::steady_clock;

Config LimitsConfig(size_t max_sets, std::optional<std::chrono::milliseconds> idle_set_timeout) {
  Config config;
  config.max_sets = max_sets;
  config.idle_set_timeout = idle_set_timeout;
  return config;
}

// The value of one series line of the exposition ("name{labels}"), nullopt when absent.
std::optional<double> Sample(const Metrics& metrics, const std::string& series) {
  std::istringstream lines(metrics.Serialize());
  std::string line;
  while (std::getline(lines, line)) {
    if (line.compare(0, series.size() + 1, series + " ") == 0)
      return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

std::optional<double> Starts(const Metrics& metrics, const std::string& set) {
  return Sample(metrics, "pidfd_process_starts_total{set=\"" + set + "\"}");
}

// A process that joined and left: the set has no member, only its counters.
size_t Visit(Metrics& metrics, const std::string& name) {
  const size_t slot = metrics.SetSlot(name, "{{.Comm}}");
  metrics.ProcessJoined(slot);
  metrics.ProcessLeft(slot);
  return slot;
}

class MetricsExpiryTest : public ::testing::Test {
 protected:
  Clock::time_point start_ = Clock::now();
  Clock::time_point At(std::chrono::milliseconds offset) const { return start_ + offset; }
};

TEST_F(MetricsExpiryTest, FullAtMaxSetsThenExpiryGivesANewNameItsOwnSet) {
  Metrics metrics(LimitsConfig(3, 10s));
  for (const char* name : {"a", "b", "c"}) Visit(metrics, name);
  EXPECT_EQ(Sample(metrics, "pidfd_exporter_sets"), 3);
  // Beyond the limit: "_other", counted and logged once per name.
  const size_t other = metrics.SetSlot("d", "{{.Comm}}");
  EXPECT_EQ(metrics.SetName(other), "_other");
  metrics.ProcessJoined(other);  // d's process stays: "_other" lives on
  EXPECT_EQ(metrics.SetSlot("d", "{{.Comm}}"), other);
  EXPECT_EQ(Sample(metrics, "pidfd_exporter_set_overflows_total"), 1);
  EXPECT_EQ(Sample(metrics, "pidfd_exporter_sets"), 3);  // "_other" is not one of max_sets

  EXPECT_THAT(metrics.ExpireIdleSets(At(0s)), IsEmpty());  // first sweep: activity seen now
  EXPECT_THAT(metrics.ExpireIdleSets(At(9999ms)), IsEmpty());
  EXPECT_THAT(metrics.ExpireIdleSets(At(10s)), UnorderedElementsAre("a", "b", "c"));
  EXPECT_EQ(Starts(metrics, "a"), std::nullopt);  // removed with all its series
  EXPECT_EQ(Sample(metrics, "pidfd_exporter_sets_expired_total"), 3);
  EXPECT_EQ(Sample(metrics, "pidfd_exporter_sets"), 0);

  // Three new names get their own sets again; the fourth overflows.
  for (const char* name : {"e", "f", "g"}) EXPECT_EQ(metrics.SetName(Visit(metrics, name)), name);
  EXPECT_EQ(Starts(metrics, "e"), 1);
  EXPECT_EQ(metrics.SetName(metrics.SetSlot("h", "{{.Comm}}")), "_other");
  EXPECT_EQ(Sample(metrics, "pidfd_exporter_set_overflows_total"), 2);
  EXPECT_EQ(metrics.SetCount(), 4u);  // a, b, c's entries were reused: the table did not grow
}

TEST_F(MetricsExpiryTest, ManyNamesOverTimeNeverOverflowWhenFewAreLiveAtOnce) {
  // 1000 names, 10 at a time, with max_sets 10: none goes to "_other".
  Metrics metrics(LimitsConfig(10, 1s));
  std::chrono::milliseconds now = 0ms;
  for (int round = 0; round < 100; ++round) {
    for (int i = 0; i < 10; ++i) {
      const std::string name = "n" + std::to_string(round * 10 + i);
      ASSERT_EQ(metrics.SetName(Visit(metrics, name)), name);
    }
    metrics.ExpireIdleSets(At(now));
    now += 1s;
    EXPECT_EQ(metrics.ExpireIdleSets(At(now)).size(), 10u);
  }
  EXPECT_EQ(Sample(metrics, "pidfd_exporter_set_overflows_total"), 0);
  EXPECT_EQ(Sample(metrics, "pidfd_exporter_sets_expired_total"), 1000);
  EXPECT_LE(metrics.SetCount(), 10u);
}

TEST_F(MetricsExpiryTest, MembersAndZombiesKeepASetAlive) {
  Metrics metrics(LimitsConfig(10, 1s));
  const size_t member = metrics.SetSlot("member", "{{.Comm}}");
  metrics.ProcessJoined(member);
  const size_t zombie = metrics.SetSlot("zombie", "{{.Comm}}");
  metrics.ProcessJoined(zombie);
  metrics.ZombieAdded(zombie, "bash");
  metrics.ProcessLeft(zombie);  // a reload moved the process away while its zombie is counted
  metrics.ExpireIdleSets(At(0s));
  EXPECT_THAT(metrics.ExpireIdleSets(At(1h)), IsEmpty());
  metrics.ZombieRemoved(zombie, "bash");
  metrics.ProcessLeft(member);
  // The last leave is an event: the timeout counts from the sweep that saw it.
  EXPECT_THAT(metrics.ExpireIdleSets(At(1h + 500ms)), IsEmpty());
  EXPECT_THAT(metrics.ExpireIdleSets(At(1h + 1s)), IsEmpty());
  EXPECT_THAT(metrics.ExpireIdleSets(At(1h + 1500ms)), UnorderedElementsAre("member", "zombie"));
}

TEST_F(MetricsExpiryTest, EventsPostponeExpiry) {
  Metrics metrics(LimitsConfig(10, 1s));
  const size_t slot = Visit(metrics, "a");
  metrics.ExpireIdleSets(At(0s));
  metrics.ExitCounted(slot, "exited", "0", 0);  // an exit counted without a member (a ghost)
  EXPECT_THAT(metrics.ExpireIdleSets(At(900ms)), IsEmpty());
  EXPECT_THAT(metrics.ExpireIdleSets(At(1800ms)), IsEmpty());
  EXPECT_THAT(metrics.ExpireIdleSets(At(1900ms)), ElementsAre("a"));
}

TEST_F(MetricsExpiryTest, FixedSetsNeverExpire) {
  Metrics metrics(LimitsConfig(10, 1s));
  metrics.CreateFixedSets({"nginx"});
  Visit(metrics, "templated");
  metrics.ExpireIdleSets(At(0s));
  EXPECT_THAT(metrics.ExpireIdleSets(At(1h)), ElementsAre("templated"));
  EXPECT_EQ(Starts(metrics, "nginx"), 0);
  // A reload that makes "nginx" a templated name lets it expire.
  metrics.CreateFixedSets({});
  metrics.ExpireIdleSets(At(2h));
  EXPECT_THAT(metrics.ExpireIdleSets(At(3h)), ElementsAre("nginx"));
}

TEST_F(MetricsExpiryTest, NoTimeoutMeansNoExpiry) {
  Metrics metrics(LimitsConfig(10, std::nullopt));
  Visit(metrics, "a");
  metrics.ExpireIdleSets(At(0s));
  EXPECT_THAT(metrics.ExpireIdleSets(At(1000h)), IsEmpty());
  metrics.SetIdleSetTimeout(1s);  // a reload
  EXPECT_THAT(metrics.ExpireIdleSets(At(1001h)), ElementsAre("a"));
}

TEST_F(MetricsExpiryTest, ASetThatComesBackStartsFromZero) {
  Metrics metrics(LimitsConfig(10, 1s));
  const size_t slot = Visit(metrics, "a");
  metrics.ExitCounted(slot, "exited", "0", 0);
  metrics.ExitCounted(slot, "exited", "0", 0);
  EXPECT_EQ(Sample(metrics, "pidfd_process_exits_total{code=\"0\",reason=\"exited\",set=\"a\"}"), 2);
  metrics.ExpireIdleSets(At(0s));
  ASSERT_THAT(metrics.ExpireIdleSets(At(1s)), ElementsAre("a"));
  const size_t again = Visit(metrics, "a");
  metrics.ExitCounted(again, "exited", "0", 0);
  EXPECT_EQ(Sample(metrics, "pidfd_process_exits_total{code=\"0\",reason=\"exited\",set=\"a\"}"), 1);
  EXPECT_EQ(Starts(metrics, "a"), 1);
}

TEST_F(MetricsExpiryTest, AStaleHandleNeverTouchesTheSetThatReusedItsEntry) {
  Metrics metrics(LimitsConfig(1, 1s));
  const size_t stale = Visit(metrics, "old");
  metrics.ExpireIdleSets(At(0s));
  ASSERT_THAT(metrics.ExpireIdleSets(At(1s)), ElementsAre("old"));
  const size_t fresh = Visit(metrics, "new");
  EXPECT_NE(fresh, stale);  // same entry, next generation
  EXPECT_EQ(metrics.SetCount(), 1u);
  EXPECT_EQ(metrics.SetName(stale), "unknown");
  metrics.ProcessJoined(stale);
  metrics.ExitCounted(stale, "exited", "1", 0);
  metrics.ZombieAdded(stale, "bash");
  metrics.ReapLatencyObserved(stale, 1.0);
  EXPECT_EQ(Starts(metrics, "new"), 1);
  EXPECT_EQ(Sample(metrics, "pidfd_processes{set=\"new\"}"), 0);
  EXPECT_EQ(Sample(metrics, "pidfd_zombies{set=\"new\"}"), 0);
  EXPECT_EQ(Sample(metrics, "pidfd_exporter_errors_total{op=\"stale_set_slot\"}"), 4);
}

TEST_F(MetricsExpiryTest, OtherExpiresToo_AndANewOverflowEpisodeIsLoggedAgain) {
  Metrics metrics(LimitsConfig(1, 1s));
  const size_t kept = metrics.SetSlot("kept", "{{.Comm}}");
  metrics.ProcessJoined(kept);
  Visit(metrics, "x");  // to "_other"
  Visit(metrics, "x");
  EXPECT_EQ(Sample(metrics, "pidfd_exporter_set_overflows_total"), 1);
  metrics.ExpireIdleSets(At(0s));
  ASSERT_THAT(metrics.ExpireIdleSets(At(1s)), ElementsAre("_other"));
  EXPECT_EQ(Starts(metrics, "_other"), std::nullopt);
  EXPECT_EQ(metrics.SetName(Visit(metrics, "x")), "_other");
  EXPECT_EQ(Sample(metrics, "pidfd_exporter_set_overflows_total"), 2);
}

TEST_F(MetricsExpiryTest, ReloadRemovalSparesSetsWithMembersWhateverInUseSays) {
  Metrics metrics(LimitsConfig(10, std::nullopt));
  const size_t held = metrics.SetSlot("held", "old-template");
  metrics.ProcessJoined(held);
  Visit(metrics, "idle");
  metrics.RemoveSets({"{{.Comm}}"}, {});
  EXPECT_EQ(Starts(metrics, "held"), 1);
  EXPECT_EQ(Starts(metrics, "idle"), 1);  // its origin is still configured
  metrics.RemoveSets({}, {});
  EXPECT_EQ(Starts(metrics, "idle"), std::nullopt);
  EXPECT_EQ(metrics.SetName(held), "held");
}

// Every pidfd_* family the exporter serves is in README.md's metrics table.
TEST(MetricsDocumentationTest, EveryFamilyIsInTheReadmeTable) {
  std::ifstream readme_file(std::string(PIDFD_TEST_FIXTURES_DIR) + "/../../README.md");
  ASSERT_TRUE(readme_file.good());
  const std::string readme((std::istreambuf_iterator<char>(readme_file)), std::istreambuf_iterator<char>());
  Metrics metrics(LimitsConfig(1, 1s));
  const size_t slot = metrics.SetSlot("a", "{{.Comm}}");
  metrics.ProcessJoined(slot);
  metrics.ZombieAdded(slot, "bash");
  metrics.SetOldestZombie(slot, 1.0);
  metrics.ExitCounted(slot, "exited", "0", 0);
  metrics.SetSlot("overflow", "{{.Comm}}");
  std::istringstream lines(metrics.Serialize());
  std::string line;
  int families = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("# TYPE pidfd_", 0) != 0) continue;
    const std::string name = line.substr(7, line.find(' ', 7) - 7);
    ++families;
    EXPECT_NE(readme.find("| `" + name + "` |"), std::string::npos)
        << name << " is not in README.md's metrics table";
  }
  EXPECT_GE(families, 19);  // all of them, as of this test
}

// process_open_fds counts every descriptor the exporter holds, exactly: 100 more are 100 more
// (from Linux 6.2 counted at the scrape; before it, after the refresh the event loop runs).
TEST(MetricsOwnProcessTest, OpenFdsFollowTheDescriptorsExactly) {
  Metrics metrics(LimitsConfig(10, std::nullopt));
  metrics.RefreshOpenFds();
  const std::optional<double> before = Sample(metrics, "process_open_fds");
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(*before, CountOpenDescriptorsByListing());
  std::vector<UniqueFd> extra;
  for (int i = 0; i < 100; ++i) extra.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(std::all_of(extra.begin(), extra.end(), [](const UniqueFd& fd) { return fd.valid(); }));
  metrics.RefreshOpenFds();
  EXPECT_EQ(Sample(metrics, "process_open_fds"), *before + 100);
  extra.clear();
  metrics.RefreshOpenFds();
  EXPECT_EQ(Sample(metrics, "process_open_fds"), *before);
}

// From Linux 6.2 the size of /proc/self/fd is the count: each scrape counts afresh, with no
// listing by the event loop in between.
TEST(MetricsOwnProcessTest, OpenFdsAreCountedAtTheScrapeWhereTheKernelTellsTheCount) {
  struct stat directory {};
  ASSERT_EQ(::stat("/proc/self/fd", &directory), 0);
  if (directory.st_size <= 0) GTEST_SKIP() << "before Linux 6.2: /proc/self/fd reports no size";
  Metrics metrics(LimitsConfig(10, std::nullopt));
  const std::optional<double> before = Sample(metrics, "process_open_fds");
  ASSERT_TRUE(before.has_value());
  const UniqueFd extra(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(extra.valid());
  EXPECT_EQ(Sample(metrics, "process_open_fds"), *before + 1);
}

TEST(MetricsIdleSweepIntervalTest, ATenthOfTheTimeoutWithinBounds) {
  EXPECT_EQ(Metrics::IdleSweepInterval(15min), 60s);
  EXPECT_EQ(Metrics::IdleSweepInterval(100s), 10s);
  EXPECT_EQ(Metrics::IdleSweepInterval(200ms), 100ms);
  EXPECT_EQ(Metrics::IdleSweepInterval(std::nullopt), 60s);
}

// --- The scrape writer (exposition_writer.h) against prometheus-cpp's own serialization ----

// Every kind of per-set series, with names and parent labels that need escaping.
void FillEverySeries(Metrics& metrics) {
  const std::string hostile = std::string("we\"ird\\na") + "\n" + "me\xff";
  for (const std::string& name : {std::string("plain"), hostile, std::string("\xC3\xA9t\xC3\xA9")}) {
    const size_t slot = metrics.SetSlot(name, "{{.Comm}}");
    metrics.ProcessJoined(slot);
    metrics.ExitCounted(slot, "exited", "0", 1.7e9);
    metrics.ExitCounted(slot, "killed", "SIGKILL", 1.7e9);
    metrics.ExitCounted(slot, "oom_killed", "SIGKILL", 1.7e9);
    metrics.ReapLatencyObserved(slot, 0.00042);
    metrics.ReapLatencyObserved(slot, 12.5);
    metrics.LifetimeObserved(slot, 3.0);
    metrics.ExitResourcesObserved(slot, 0.012345678901, 0.003, 4 << 20, 0, 4096);
    metrics.ZombieAdded(slot, "par\"ent\\");
    metrics.ZombieAdded(slot, "par\"ent\\");
    metrics.ZombieAdded(slot, "init");
    metrics.SetOldestZombie(slot, 1796620000.123456);
    metrics.MissedExit(slot);
  }
  metrics.CountError("proc_read");
  metrics.UnattributedExit();
}

// Series for series (name, labels, value) and family for family (type), what the writer
// writes is what prometheus-cpp writes for the same registries.
void ExpectSameSeries(const Metrics& metrics) {
  const integration::ParseResult fast = integration::ParsePrometheusText(metrics.Serialize());
  const integration::ParseResult reference =
      integration::ParsePrometheusText(metrics.SerializeWithPrometheusCpp());
  ASSERT_TRUE(fast.ok()) << fast.error;
  ASSERT_TRUE(reference.ok()) << reference.error;
  auto own_process = [](const integration::SeriesKey& key) { return key.name.starts_with("process_"); };
  std::map<integration::SeriesKey, double> written, expected;
  for (const auto& [key, value] : fast.metrics.series())
    if (!own_process(key)) written.emplace(key, value);
  for (const auto& [key, value] : reference.metrics.series())
    if (!own_process(key)) expected.emplace(key, value);
  ASSERT_EQ(written.size(), expected.size());
  for (const auto& [key, value] : expected) {
    auto found = written.find(key);
    ASSERT_NE(found, written.end()) << "missing " << integration::FormatSeries(key.name, key.labels);
    // prometheus-cpp writes 16 significant digits, the writer the exact shortest form.
    EXPECT_NEAR(found->second, value, std::abs(value) * 1e-15)
        << integration::FormatSeries(key.name, key.labels);
    const std::string family = key.name.substr(0, key.name.find("_bucket"));
    EXPECT_EQ(fast.metrics.Type(family), reference.metrics.Type(family)) << family;
  }
}

TEST(MetricsScrapeWriterTest, WritesWhatPrometheusCppWritesSeriesForSeries) {
  Metrics metrics(LimitsConfig(100, 1000ms));
  FillEverySeries(metrics);
  ASSERT_NO_FATAL_FAILURE(ExpectSameSeries(metrics));
  const std::string text = metrics.Serialize();
  EXPECT_NE(text.find(R"(pidfd_zombies_by_parent{parent="par\"ent\\",set="we\"ird\\na)"
                      "\xEF\xBF\xBD"
                      "me"
                      "\xEF\xBF\xBD"
                      R"("} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(pidfd_reap_latency_seconds_bucket{set="plain",le="0.0001"} 0)"), std::string::npos);
  EXPECT_NE(text.find(R"(pidfd_reap_latency_seconds_bucket{set="plain",le="0.001"} 1)"), std::string::npos);
}

TEST(MetricsScrapeWriterTest, SeriesThatGoLeaveBothOutputsAlike) {
  Metrics metrics(LimitsConfig(100, 1000ms));
  FillEverySeries(metrics);
  const size_t slot = metrics.SetSlot("plain", "{{.Comm}}");
  metrics.ZombieRemoved(slot, "init");
  metrics.ZombieParentChanged(slot, "par\"ent\\", "init");
  metrics.SetOldestZombie(slot, std::nullopt);
  ASSERT_NO_FATAL_FAILURE(ExpectSameSeries(metrics));
  // Every set empties and expires: no series of a set is left in either output.
  for (const std::string& name : {std::string("plain"), std::string("\xC3\xA9t\xC3\xA9")}) {
    const size_t each = metrics.SetSlot(name, "{{.Comm}}");
    metrics.ProcessLeft(each);
    metrics.SetOldestZombie(each, std::nullopt);
  }
  metrics.ZombieRemoved(slot, "init");
  metrics.ZombieRemoved(slot, "par\"ent\\");
  const size_t other = metrics.SetSlot("\xC3\xA9t\xC3\xA9", "{{.Comm}}");
  for (const char* parent : {"init", "par\"ent\\", "par\"ent\\"}) metrics.ZombieRemoved(other, parent);
  const Clock::time_point start = Clock::now();
  metrics.ExpireIdleSets(start);
  EXPECT_THAT(metrics.ExpireIdleSets(start + 2s), UnorderedElementsAre("plain", "\xC3\xA9t\xC3\xA9"));
  ASSERT_NO_FATAL_FAILURE(ExpectSameSeries(metrics));
  EXPECT_EQ(metrics.Serialize().find("set=\"plain\""), std::string::npos);
}

// HTTP threads scrape while the loop thread adds and removes sets, exits, zombies and resource
// series: every scrape parses (under TSan in CI, every shared access is checked as well).
TEST(MetricsScrapeWriterTest, ScrapesStayValidWhileSeriesComeAndGo) {
  Metrics metrics(LimitsConfig(64, 1000ms));
  std::atomic<bool> stop{false};
  std::atomic<int> scrapes{0}, invalid{0};
  std::thread scraper([&] {
    while (!stop.load()) {
      if (!integration::ParsePrometheusText(metrics.Serialize()).ok()) ++invalid;
      ++scrapes;
    }
  });
  const Clock::time_point start = Clock::now();
  for (int round = 0; round < 4000 && (round < 200 || scrapes.load() < 20); ++round) {
    const size_t slot = metrics.SetSlot("churn" + std::to_string(round % 40), "{{.Comm}}");
    const std::string parent = "p" + std::to_string(round % 3);
    metrics.ProcessJoined(slot);
    metrics.ExitCounted(slot, "exited", std::to_string(round % 5), 1.7e9);
    metrics.ExitResourcesObserved(slot, 0.01, 0.01, 1 << 20, 0, 0);
    metrics.ZombieAdded(slot, parent);
    metrics.SetOldestZombie(slot, 1.7e9);
    metrics.ZombieParentChanged(slot, parent, "q");
    metrics.ZombieRemoved(slot, "q");
    metrics.SetOldestZombie(slot, std::nullopt);
    metrics.ProcessLeft(slot);
    if (round % 50 == 49) metrics.ExpireIdleSets(start + std::chrono::seconds(round));
  }
  stop.store(true);
  scraper.join();
  EXPECT_EQ(invalid.load(), 0) << "of " << scrapes.load() << " scrapes";
  EXPECT_GT(scrapes.load(), 0);
}

}  // namespace
}  // namespace pidfd_exporter
