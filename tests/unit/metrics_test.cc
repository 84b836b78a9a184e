// Metrics: sets that come and go (limits.idle_set_timeout, limits.max_sets, "_other") and
// the safety of slot handles across expiry and reuse, read back through /metrics text.
#include "metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>

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

TEST(MetricsIdleSweepIntervalTest, ATenthOfTheTimeoutWithinBounds) {
  EXPECT_EQ(Metrics::IdleSweepInterval(15min), 60s);
  EXPECT_EQ(Metrics::IdleSweepInterval(100s), 10s);
  EXPECT_EQ(Metrics::IdleSweepInterval(200ms), 100ms);
  EXPECT_EQ(Metrics::IdleSweepInterval(std::nullopt), 60s);
}

}  // namespace
}  // namespace pidfd_exporter
