// ReapWatch (exporter/reap_watch.h): the check schedule of zombies on kernels without reap
// events, its accuracy bound max(1 ms, 2 %), the global cap, and add/remove bookkeeping. A
// simulated clock drives it: every check runs exactly when NextDeadline() says (or late, where
// a test says so), and a simulated parent reaps each zombie at a known time.
#include "reap_watch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

namespace pidfd_exporter {
namespace {

constexpr int64_t kMillisecond = 1'000'000;
constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kHour = 3600 * kSecond;

int64_t AllowedError(int64_t true_latency_ns) {
  return std::max<int64_t>(kMillisecond, true_latency_ns / 50);
}

struct Zombie {
  int64_t exit_ns;
  int64_t reap_ns;
};

struct SimulationResult {
  std::map<uint64_t, int64_t> reported;  // key -> reported latency
  uint64_t checks = 0;
  int64_t end_ns = 0;
};

// Runs the watch until every zombie is found reaped. `lateness_ns` delays every check run
// after its deadline (a busy loop). The exporter is told of each exit at its exit time.
SimulationResult Simulate(ReapWatch& watch, const std::map<uint64_t, Zombie>& zombies,
                          int64_t lateness_ns = 0) {
  SimulationResult result;
  for (const auto& [key, zombie] : zombies) watch.Add(key, zombie.exit_ns, zombie.exit_ns);
  std::vector<uint64_t> due;
  int64_t now = 0;
  while (auto deadline = watch.NextDeadline()) {
    now = std::max(now, *deadline + lateness_ns);
    watch.TakeDue(now, &due);
    result.checks += due.size();
    for (uint64_t key : due) {
      if (zombies.at(key).reap_ns <= now) {
        result.reported[key] = watch.FoundReaped(key, now)->latency_ns;
      } else {
        watch.CheckedStillZombie(key, now);
      }
    }
  }
  result.end_ns = now;
  return result;
}

TEST(ReapWatchTest, IntervalIsOneMillisecondWhileYoungThenTwoPercentOfAge) {
  ReapWatch watch;
  EXPECT_EQ(watch.Interval(0), kMillisecond);
  EXPECT_EQ(watch.Interval(-5), kMillisecond);
  EXPECT_EQ(watch.Interval(49 * kMillisecond), kMillisecond);
  EXPECT_EQ(watch.Interval(50 * kMillisecond), kMillisecond);
  EXPECT_EQ(watch.Interval(300 * kMillisecond), 6 * kMillisecond);
  EXPECT_EQ(watch.Interval(kHour), 72 * kSecond);
  for (int64_t age = 0; age <= 5 * kHour; age = age * 3 + 1) {
    EXPECT_LE(watch.Interval(age), std::max<int64_t>(kMillisecond, age / 50)) << age;
  }
}

TEST(ReapWatchTest, ReportedLatencyIsTheMidpointOfTheLastZombieCheckAndTheReapedCheck) {
  EXPECT_EQ(ReapWatch::ReportedLatency(100, 300, 500), 300);
  EXPECT_EQ(ReapWatch::ReportedLatency(100, 100, 101), 0);  // rounds down, never negative
  EXPECT_EQ(ReapWatch::ReportedLatency(100, 100, 100), 0);
  // A last-zombie time before the exit or a reaped time before it cannot make it negative.
  EXPECT_EQ(ReapWatch::ReportedLatency(100, 50, 300), 100);
  EXPECT_EQ(ReapWatch::ReportedLatency(100, 400, 200), 300);
}

// The bound from 0 to hours: reaps at fixed ages spanning 0 .. 5 h, checks on time.
TEST(ReapWatchTest, ReportedLatencyWithinBoundForAgesFromZeroToHours) {
  const std::vector<int64_t> latencies = {0,
                                          300'000,
                                          kMillisecond,
                                          kMillisecond + 1,
                                          20 * kMillisecond,
                                          50 * kMillisecond,
                                          51 * kMillisecond,
                                          300 * kMillisecond,
                                          kSecond,
                                          10 * kSecond,
                                          60 * kSecond,
                                          kHour,
                                          5 * kHour};
  std::map<uint64_t, Zombie> zombies;
  for (size_t i = 0; i < latencies.size(); ++i)
    zombies[i + 1] = {1000 * kSecond, 1000 * kSecond + latencies[i]};
  ReapWatch watch;
  const SimulationResult result = Simulate(watch, zombies);
  ASSERT_EQ(result.reported.size(), zombies.size());
  for (const auto& [key, zombie] : zombies) {
    const int64_t truth = zombie.reap_ns - zombie.exit_ns;
    const int64_t error = std::abs(result.reported.at(key) - truth);
    // On time, the midpoint halves the interval: max(0.5 ms, 1 %).
    EXPECT_LE(error, AllowedError(truth) / 2 + 1) << "latency " << truth;
  }
  EXPECT_TRUE(watch.size() == 0);
}

// Random reap times (log-uniform from 10 µs to 3 h) and checks that run late by up to a
// whole minimum interval: still within max(1 ms, 2 %).
TEST(ReapWatchTest, ReportedLatencyWithinBoundForRandomAgesAndLateChecks) {
  std::mt19937_64 random(17);
  std::uniform_real_distribution<double> exponent(4, 13.03);  // 10^4 ns .. ~3 h
  for (int64_t lateness : {int64_t{0}, 300'000L, kMillisecond}) {
    std::map<uint64_t, Zombie> zombies;
    for (uint64_t key = 1; key <= 300; ++key) {
      const int64_t exit = kSecond + static_cast<int64_t>(key) * 7 * kMillisecond;
      zombies[key] = {exit, exit + static_cast<int64_t>(std::pow(10.0, exponent(random)))};
    }
    ReapWatch watch(ReapWatchOptions{.max_checks_per_second = 0});
    const SimulationResult result = Simulate(watch, zombies, lateness);
    ASSERT_EQ(result.reported.size(), zombies.size());
    for (const auto& [key, zombie] : zombies) {
      const int64_t truth = zombie.reap_ns - zombie.exit_ns;
      EXPECT_LE(std::abs(result.reported.at(key) - truth), AllowedError(truth))
          << "latency " << truth << " lateness " << lateness;
    }
  }
}

// The bound is what makes the schedule necessary: checking less often breaks it, which
// shows the test above can fail.
TEST(ReapWatchTest, SlowerScheduleBreaksTheBound) {
  std::map<uint64_t, Zombie> zombies;
  for (uint64_t key = 1; key <= 50; ++key) {
    zombies[key] = {0, static_cast<int64_t>(key) * 13 * kMillisecond + 400'000};
  }
  ReapWatch watch(ReapWatchOptions{.min_interval_ns = 5 * kMillisecond, .age_fraction = 0.1});
  const SimulationResult result = Simulate(watch, zombies);
  int violations = 0;
  for (const auto& [key, zombie] : zombies) {
    const int64_t truth = zombie.reap_ns - zombie.exit_ns;
    if (std::abs(result.reported.at(key) - truth) > AllowedError(truth)) ++violations;
  }
  EXPECT_GT(violations, 10);
}

// Number of checks a zombie costs: ~50 while younger than 50 ms, then ~50 per e-fold of age.
TEST(ReapWatchTest, ChecksPerZombieGrowLogarithmicallyWithAge) {
  for (int64_t latency : {10 * kMillisecond, 50 * kMillisecond, kSecond, kHour}) {
    ReapWatch watch(ReapWatchOptions{.max_checks_per_second = 0});
    const SimulationResult result = Simulate(watch, {{1, {0, latency}}});
    const double young = static_cast<double>(std::min(latency, 50 * kMillisecond)) / kMillisecond;
    const double old = latency > 50 * kMillisecond
                           ? 50.0 * std::log(static_cast<double>(latency) / (50.0 * kMillisecond))
                           : 0.0;
    EXPECT_NEAR(static_cast<double>(result.checks), young + old, 0.05 * (young + old) + 2) << latency;
  }
}

TEST(ReapWatchTest, FirstCheckIsOneIntervalAfterAddAndDeadlinesAreEarliestFirst) {
  ReapWatch watch(ReapWatchOptions{.max_checks_per_second = 0});
  EXPECT_FALSE(watch.NextDeadline());
  watch.Add(1, 0, 10 * kSecond);                       // age 10 s: next in 200 ms
  watch.Add(2, 10 * kSecond, 10 * kSecond);            // new: next in 1 ms
  watch.Add(3, 10 * kSecond - kSecond, 10 * kSecond);  // age 1 s: next in 20 ms
  EXPECT_EQ(watch.NextDeadline(), 10 * kSecond + kMillisecond);
  std::vector<uint64_t> due;
  watch.TakeDue(10 * kSecond + kMillisecond - 1, &due);
  EXPECT_TRUE(due.empty());
  watch.TakeDue(10 * kSecond + 500 * kMillisecond, &due);
  EXPECT_EQ(due, (std::vector<uint64_t>{2, 3, 1}));
  // Handed out and not answered yet: no deadline.
  EXPECT_FALSE(watch.NextDeadline());
  EXPECT_EQ(watch.size(), 3u);
}

TEST(ReapWatchTest, RemoveAndReAddAndUnknownKeys) {
  ReapWatch watch;
  watch.Add(1, 0, 0);
  watch.Add(2, 0, 0);
  watch.Remove(1);
  watch.Remove(99);
  EXPECT_FALSE(watch.Contains(1));
  EXPECT_EQ(watch.size(), 1u);
  EXPECT_FALSE(watch.CheckedStillZombie(1, kMillisecond));
  EXPECT_FALSE(watch.FoundReaped(1, kMillisecond));
  std::vector<uint64_t> due;
  watch.TakeDue(kSecond, &due);
  EXPECT_EQ(due, std::vector<uint64_t>{2});
  // Re-adding restarts the key (a new exit time): the old deadline is dropped.
  watch.CheckedStillZombie(2, kSecond);  // age 1 s: next at 1.02 s
  watch.Add(2, 2 * kSecond, 2 * kSecond);
  EXPECT_EQ(watch.NextDeadline(), 2 * kSecond + kMillisecond);
  watch.TakeDue(3 * kSecond, &due);
  EXPECT_EQ(due, std::vector<uint64_t>{2});
  const auto reap = watch.FoundReaped(2, 2 * kSecond + 3 * kMillisecond);
  ASSERT_TRUE(reap);
  EXPECT_EQ(reap->latency_ns, kMillisecond + kMillisecond / 2);
  EXPECT_EQ(reap->reap_ns, 2 * kSecond + kMillisecond + kMillisecond / 2);
  EXPECT_FALSE(watch.NextDeadline());
  EXPECT_EQ(watch.size(), 0u);
  // A key found reaped without being handed out (reap seen another way) goes too.
  watch.Add(3, 0, 0);
  EXPECT_EQ(watch.FoundReaped(3, 4 * kMillisecond)->latency_ns, 2 * kMillisecond);
  EXPECT_FALSE(watch.NextDeadline());
}

// Removing most keys leaves stale heap items; the heap stays proportional to the live set
// and the survivors keep their deadlines.
TEST(ReapWatchTest, ManyAddsAndRemovesKeepTheSurvivorsSchedule) {
  ReapWatch watch(ReapWatchOptions{.max_checks_per_second = 0});
  for (uint64_t key = 0; key < 10'000; ++key) watch.Add(key, 0, static_cast<int64_t>(key) * kMillisecond);
  for (uint64_t key = 0; key < 10'000; ++key) {
    if (key % 100 != 7) watch.Remove(key);
  }
  EXPECT_EQ(watch.size(), 100u);
  std::vector<uint64_t> due;
  watch.TakeDue(1000 * kSecond, &due);
  ASSERT_EQ(due.size(), 100u);
  EXPECT_TRUE(std::is_sorted(due.begin(), due.end()));  // deadlines grow with the key here
  for (uint64_t key : due) EXPECT_EQ(key % 100, 7u);
}

// The cap: 10,000 young zombies want 10 M checks/s; no more than the cap (plus one burst)
// is handed out in any second, NextDeadline() waits for the budget, and every zombie still
// gets checked (earliest deadline first, nobody starves).
TEST(ReapWatchTest, CapLimitsChecksPerSecondAndSpreadsThem) {
  const int64_t cap = 5'000;
  const int64_t burst = 50;
  ReapWatch watch(ReapWatchOptions{.max_checks_per_second = cap, .burst_checks = burst});
  for (uint64_t key = 0; key < 10'000; ++key) watch.Add(key, 0, 0);
  std::map<uint64_t, int> checks_per_key;
  std::vector<int64_t> check_times;
  std::vector<uint64_t> due;
  int64_t now = 0;
  while (now < 4 * kSecond) {
    const auto deadline = watch.NextDeadline();
    ASSERT_TRUE(deadline);
    ASSERT_GT(*deadline, now) << "the deadline must move on once the budget is spent";
    now = *deadline;
    watch.TakeDue(now, &due);
    ASSERT_LE(static_cast<int64_t>(due.size()), burst);
    for (uint64_t key : due) {
      ++checks_per_key[key];
      check_times.push_back(now);
      watch.CheckedStillZombie(key, now);
    }
  }
  // Any one-second window: at most cap + burst checks.
  for (size_t begin = 0, end = 0; begin < check_times.size(); ++begin) {
    while (end < check_times.size() && check_times[end] < check_times[begin] + kSecond) ++end;
    ASSERT_LE(static_cast<int64_t>(end - begin), cap + burst) << "window at " << check_times[begin];
  }
  EXPECT_GE(static_cast<int64_t>(check_times.size()), 4 * cap - burst);
  EXPECT_EQ(checks_per_key.size(), 10'000u);  // everyone was checked
  EXPECT_GT(watch.cap_reached(), 0u);
}

// Without a cap every due key is handed out at once.
TEST(ReapWatchTest, NoCapHandsOutEveryDueKey) {
  ReapWatch watch(ReapWatchOptions{.max_checks_per_second = 0});
  for (uint64_t key = 0; key < 10'000; ++key) watch.Add(key, 0, 0);
  std::vector<uint64_t> due;
  watch.TakeDue(kMillisecond, &due);
  EXPECT_EQ(due.size(), 10'000u);
  EXPECT_EQ(watch.cap_reached(), 0u);
}

// 10,000 zombies lingering for an hour with the default cap (ages 0-10 s at the start).
// At first they want ~490,000 checks/s, so the cap holds them back; once their ages have
// grown (demand ~50 * 10,000 / age), every check runs on time. Total checks are what the
// schedule predicts, and never more than the cap allows.
TEST(ReapWatchTest, TenThousandLingeringZombiesForAnHour) {
  ReapWatch watch;  // defaults: 20,000 checks/s, burst 200
  const int64_t start = 100 * kSecond;
  std::map<uint64_t, int64_t> exit_of;
  std::map<uint64_t, int64_t> last_check;
  for (uint64_t key = 0; key < 10'000; ++key) {
    exit_of[key] = start - static_cast<int64_t>(key) * kMillisecond;
    watch.Add(key, exit_of[key], start);
    last_check[key] = start;
  }
  std::vector<uint64_t> due;
  int64_t now = start;
  uint64_t checks = 0;
  int64_t worst_late_after_a_minute = 0;
  while (now < start + kHour) {
    now = *watch.NextDeadline();
    watch.TakeDue(now, &due);
    checks += due.size();
    for (uint64_t key : due) {
      const int64_t planned = last_check[key] + watch.Interval(last_check[key] - exit_of[key]);
      if (now > start + 60 * kSecond)
        worst_late_after_a_minute = std::max(worst_late_after_a_minute, now - planned);
      last_check[key] = now;
      watch.CheckedStillZombie(key, now);
    }
  }
  const double seconds = static_cast<double>(now - start) / kSecond;
  EXPECT_LE(static_cast<double>(checks), 20'000 * seconds + 200);
  EXPECT_GT(watch.cap_reached(), 0u);
  // On time, give or take the wait for a batch of budget (20 checks = 1 ms at the cap).
  EXPECT_LE(worst_late_after_a_minute, 2 * kMillisecond);
  EXPECT_LT(checks, 10'000u * 700u);
  EXPECT_GT(checks, 10'000u * 250u);
  for (const auto& [key, last] : last_check) ASSERT_GT(last, start + kHour - 80 * kSecond) << key;
}

}  // namespace
}  // namespace pidfd_exporter
