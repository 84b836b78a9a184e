// ExitAccounting against a real Metrics registry: what each reported fact does to the
// exposition, the order of exit-status sources, and the zombie board.
#include "exit_accounting.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <time.h>

#include <string>

#include "config.h"
#include "metrics.h"

namespace pidfd_exporter {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

int64_t Now() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

class ExitAccountingTest : public testing::Test {
 protected:
  ExitAccountingTest() : metrics_(ConfigOf()), accounting_(&metrics_) {
    web_ = metrics_.SetSlot("web", "web");
    db_ = metrics_.SetSlot("db", "db");
  }
  static Config ConfigOf() {
    ConfigResult result = ParseConfig("process_sets:\n  - name: web\n  - name: db\n", "t.yml");
    return result.config.value_or(Config{});
  }
  std::string Text() const { return metrics_.Serialize(); }
  ZombieView Zombie(size_t slot, int pid, const std::string& parent, int64_t exit_ns) const {
    ZombieView view;
    view.slot = slot;
    view.pid = pid;
    view.comm = "c" + std::to_string(pid);
    view.parent_pid = 1;
    view.parent_label = parent;
    view.exit = ExitStamp{exit_ns, true};
    return view;
  }

  Metrics metrics_;
  ExitAccounting accounting_;
  size_t web_ = 0;
  size_t db_ = 0;
};

TEST(DecideWaitStatusTest, FirstPresentSourceWinsInTheDocumentedOrder) {
  EXPECT_EQ(DecideWaitStatus({}), std::nullopt);
  EXPECT_EQ(DecideWaitStatus({std::nullopt, std::nullopt, 0x300u}), 0x300u);
  EXPECT_EQ(DecideWaitStatus({std::nullopt, 9u, 0x300u}), 9u);
  EXPECT_EQ(DecideWaitStatus({0x100u, 9u, 0x300u}), 0x100u);
}

TEST_F(ExitAccountingTest, ExitsCountWithReasonAndCode) {
  accounting_.ExitCounted(web_, 0x300u);
  accounting_.ExitCounted(web_, 9u);
  accounting_.ExitCounted(web_, 0x8bu);  // SIGSEGV with a core
  accounting_.ExitCounted(web_, std::nullopt);
  const std::string text = Text();
  EXPECT_THAT(text, HasSubstr("pidfd_process_exits_total{code=\"3\",reason=\"exited\",set=\"web\"} 1"));
  EXPECT_THAT(text, HasSubstr("pidfd_process_exits_total{code=\"SIGKILL\",reason=\"killed\",set=\"web\"} 1"));
  EXPECT_THAT(text, HasSubstr("pidfd_process_exits_total{code=\"SIGSEGV\",reason=\"dumped\",set=\"web\"} 1"));
  EXPECT_THAT(text, HasSubstr("pidfd_process_exits_total{code=\"\",reason=\"unknown\",set=\"web\"} 1"));
}

TEST_F(ExitAccountingTest, ExitWithoutPidfdIsCountedAndMissed) {
  accounting_.ExitWithoutPidfd(db_, 0x700u);
  const std::string text = Text();
  EXPECT_THAT(text, HasSubstr("pidfd_process_exits_total{code=\"7\",reason=\"exited\",set=\"db\"} 1"));
  EXPECT_THAT(text, HasSubstr("pidfd_exporter_missed_exits_total{set=\"db\"} 1"));
  accounting_.UnattributedExit();
  EXPECT_THAT(Text(), HasSubstr("pidfd_exporter_unattributed_exits_total 1"));
}

TEST_F(ExitAccountingTest, ZombiesAppearMoveAndGoWithTheirGauges) {
  const int64_t now = Now();
  accounting_.ZombieAppeared(1, Zombie(web_, 41, "init", now - 2'000'000'000));
  accounting_.ZombieAppeared(2, Zombie(web_, 42, "bash", now - 1'000'000'000));
  std::string text = Text();
  EXPECT_THAT(text, HasSubstr("pidfd_zombies{set=\"web\"} 2"));
  EXPECT_THAT(text, HasSubstr("pidfd_zombies_by_parent{parent=\"init\",set=\"web\"} 1"));
  EXPECT_THAT(text, HasSubstr("pidfd_oldest_zombie_exit_timestamp_seconds{set=\"web\"}"));
  ASSERT_EQ(accounting_.Zombies().size(), 2u);
  EXPECT_EQ(accounting_.Zombies()[0].pid, 41) << "oldest first";
  EXPECT_TRUE(accounting_.IsZombie(1));

  // Key 1 moves to db (it exec'd into another set as a zombie's record said): replaced.
  accounting_.ZombieAppeared(1, Zombie(db_, 41, "init", now - 2'000'000'000));
  text = Text();
  EXPECT_THAT(text, HasSubstr("pidfd_zombies{set=\"web\"} 1"));
  EXPECT_THAT(text, HasSubstr("pidfd_zombies{set=\"db\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("pidfd_zombies_by_parent{parent=\"init\",set=\"web\"}")));

  accounting_.ZombieReparented(2, 1, "init");
  text = Text();
  EXPECT_THAT(text, HasSubstr("pidfd_zombies_by_parent{parent=\"init\",set=\"web\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("parent=\"bash\"")));

  accounting_.ZombieGone(1);
  accounting_.ZombieGone(2);
  accounting_.ZombieGone(2);  // twice: nothing
  text = Text();
  EXPECT_THAT(text, HasSubstr("pidfd_zombies{set=\"web\"} 0"));
  EXPECT_THAT(text, HasSubstr("pidfd_zombies{set=\"db\"} 0"));
  EXPECT_THAT(text, Not(HasSubstr("pidfd_oldest_zombie_exit_timestamp_seconds{")));
  EXPECT_TRUE(accounting_.Zombies().empty());
}

TEST_F(ExitAccountingTest, OldestZombieShowsTheExitOnTheWallClock) {
  const int64_t now = Now();
  timespec wall{};
  clock_gettime(CLOCK_REALTIME, &wall);
  accounting_.ZombieAppeared(7, Zombie(web_, 7, "init", now - 5'000'000'000));
  const auto zombies = accounting_.Zombies();
  ASSERT_EQ(zombies.size(), 1u);
  EXPECT_NEAR(zombies[0].exit_unix_seconds, static_cast<double>(wall.tv_sec) - 5.0, 1.5);
  EXPECT_TRUE(zombies[0].exit_time_known);
}

TEST(ReapLatencyTest, ReleasedAtExitIsZeroElseTheDifference) {
  ReapFacts facts;
  facts.exit = ExitStamp{1'000'000'000, true};
  facts.reaped_monotonic_ns = 1'020'000'000;
  EXPECT_DOUBLE_EQ(ExitAccounting::ReapLatencySeconds(facts), 0.020);
  facts.exit_and_reap_seen_together = true;
  EXPECT_DOUBLE_EQ(ExitAccounting::ReapLatencySeconds(facts), 0.0) << "one wake-up, no kernel stamp";
  facts.exit_stamped_by_kernel = true;
  EXPECT_DOUBLE_EQ(ExitAccounting::ReapLatencySeconds(facts), 0.020) << "the kernel stamped the exit";
  facts.released_at_exit = true;
  EXPECT_DOUBLE_EQ(ExitAccounting::ReapLatencySeconds(facts), 0.0);
  facts.released_at_exit = false;
  facts.parent_ignores_children = true;
  EXPECT_DOUBLE_EQ(ExitAccounting::ReapLatencySeconds(facts), 0.0);
}

TEST_F(ExitAccountingTest, ReapedObservesLatencyAndLifetimeOnlyForObservedExits) {
  ReapFacts facts;
  facts.slot = web_;
  facts.exit = ExitStamp{Now() - 50'000'000, true};
  facts.reaped_monotonic_ns = facts.exit.monotonic_ns + 30'000'000;
  facts.fork_monotonic_ns = facts.exit.monotonic_ns - 2'000'000'000;
  accounting_.Reaped(facts);
  facts.exit.observed = false;  // first sight: no latency, no lifetime
  accounting_.Reaped(facts);
  const std::string text = Text();
  EXPECT_THAT(text, HasSubstr("pidfd_reap_latency_seconds_count{set=\"web\"} 1"));
  EXPECT_THAT(text, HasSubstr("pidfd_reap_latency_seconds_sum{set=\"web\"} 0.03"));
  EXPECT_THAT(text, HasSubstr("pidfd_process_lifetime_seconds_count{set=\"web\"} 1"));
  EXPECT_THAT(text, HasSubstr("pidfd_process_lifetime_seconds_sum{set=\"web\"} 2"));
}

}  // namespace
}  // namespace pidfd_exporter
