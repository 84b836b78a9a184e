// Sets that come and go, on the real binary: with limits.max_sets 2 and a short
// limits.idle_set_timeout, a third name goes to "_other" while two sets are live (logged and
// counted once), and gets its own set once the two were idle long enough to be removed.
#include <signal.h>

#include <fstream>
#include <string>

#include "harness.h"

namespace integration {
namespace {

constexpr char kProcesses[] = "pidfd_processes";
constexpr char kStarts[] = "pidfd_process_starts_total";
constexpr char kExits[] = "pidfd_process_exits_total";
constexpr char kOverflows[] = "pidfd_exporter_set_overflows_total";
constexpr char kExpired[] = "pidfd_exporter_sets_expired_total";
constexpr char kSets[] = "pidfd_exporter_sets";

Labels Set(const std::string& name) {
  return {{"set", name}};
}

void EndAndReap(ChildProcess& child, int code) {
  child.Exit(code);
  ASSERT_TRUE(child.WaitUntilZombie());
  child.Reap();
}

TEST(SetExpiryTest, ANewNameGetsASetAfterIdleSetsExpiredAtMaxSets) {
  ExporterProcess exporter;
  ASSERT_TRUE(exporter.Start(MakeConfig("  - name: \"{{.Comm}}\"\n    comm: [ex_a, ex_b, ex_c]\n", "auto") +
                             "limits:\n  max_sets: 2\n  idle_set_timeout: 500ms\n"));
  auto a = ChildProcess::Spawn({"ex_a", ""});
  auto b = ChildProcess::Spawn({"ex_b", ""});
  ASSERT_TRUE(exporter.WaitFor("max_sets sets live", [](const Metrics& m) {
    return m.Value(kProcesses, Set("ex_a")) == 1 && m.Value(kProcesses, Set("ex_b")) == 1;
  }));
  // Full: the third name is counted under "_other", logged and counted once.
  auto c = ChildProcess::Spawn({"ex_c", ""});
  Metrics full;
  ASSERT_TRUE(exporter.WaitFor(
      "the third name under _other", [](const Metrics& m) { return m.Value(kProcesses, Set("_other")) == 1; },
      &full));
  EXPECT_EQ(full.Value(kOverflows), 1);
  EXPECT_EQ(full.Value(kSets), 2);
  EXPECT_TRUE(full.Find(kStarts, Set("ex_c")).empty());
  EXPECT_NE(exporter.Log().find("set=ex_c"), std::string::npos) << exporter.LogTail();

  // Members keep their sets: well past the timeout, both are still there.
  EXPECT_FALSE(exporter.WaitFor(
      "no expiry while members live", [](const Metrics& m) { return m.ValueOrZero(kExpired) > 0; }, nullptr,
      std::chrono::milliseconds(1500)));

  EndAndReap(*a, 1);
  EndAndReap(*b, 2);
  EndAndReap(*c, 3);
  Metrics expired;
  ASSERT_TRUE(exporter.WaitFor(
      "the idle sets removed with their series",
      [](const Metrics& m) {
        return m.ValueOrZero(kExpired) >= 3 && m.Find(kStarts, Set("ex_a")).empty() &&
               m.Find(kStarts, Set("ex_b")).empty() && m.Find(kStarts, Set("_other")).empty();
      },
      &expired));
  EXPECT_EQ(expired.Value(kExpired), 3);  // ex_a, ex_b and _other
  EXPECT_EQ(expired.Value(kSets), 0);
  EXPECT_TRUE(expired.Find(kExits, Set("ex_a")).empty());

  // The name that overflowed before now gets its own set, starting from 0.
  auto c_again = ChildProcess::Spawn({"ex_c", ""});
  ASSERT_TRUE(exporter.WaitFor("ex_c in its own set",
                               [](const Metrics& m) { return m.Value(kProcesses, Set("ex_c")) == 1; }));
  EndAndReap(*c_again, 7);
  Metrics last;
  ASSERT_TRUE(exporter.WaitFor(
      "its exit counted in its own set",
      [](const Metrics& m) {
        return m.ValueOrZero(kExits, {{"set", "ex_c"}, {"reason", "exited"}, {"code", "7"}}) == 1;
      },
      &last));
  EXPECT_EQ(last.Value(kStarts, Set("ex_c")), 1);
  EXPECT_EQ(last.Value(kOverflows), 1);
  EXPECT_TRUE(last.Find(kProcesses, Set("_other")).empty());
}

TEST(SetExpiryTest, FixedSetsStayWhileTemplatedOnesExpire) {
  ExporterProcess exporter;
  ASSERT_TRUE(exporter.Start(
      MakeConfig(CommSet("ex_fixed", "ex_fixed") + "  - name: \"{{.Comm}}\"\n    comm: [ex_templated]\n",
                 "auto") +
      "limits:\n  idle_set_timeout: 300ms\n"));
  auto templated = ChildProcess::Spawn({"ex_templated", ""});
  ASSERT_TRUE(exporter.WaitFor(
      "the templated set", [](const Metrics& m) { return m.Value(kProcesses, Set("ex_templated")) == 1; }));
  EndAndReap(*templated, 0);
  Metrics last;
  ASSERT_TRUE(exporter.WaitFor(
      "the templated set removed",
      [](const Metrics& m) { return m.Find(kStarts, Set("ex_templated")).empty(); }, &last));
  EXPECT_EQ(last.Value(kStarts, Set("ex_fixed")), 0);
  EXPECT_EQ(last.Value(kProcesses, Set("ex_fixed")), 0);
}

// main.cc applies limits.idle_set_timeout at a reload: "0s" keeps an idle set, a reload to a
// short timeout removes it.
TEST(SetExpiryTest, AReloadTurnsExpiryOn) {
  ExporterProcess exporter;
  const std::string sets = "  - name: \"{{.Comm}}\"\n    comm: [ex_reload]\n";
  ASSERT_TRUE(exporter.Start(MakeConfig(sets, "auto") + "limits:\n  idle_set_timeout: 0s\n"));
  auto child = ChildProcess::Spawn({"ex_reload", ""});
  ASSERT_TRUE(exporter.WaitFor("the set",
                               [](const Metrics& m) { return m.Value(kProcesses, Set("ex_reload")) == 1; }));
  EndAndReap(*child, 0);
  EXPECT_FALSE(exporter.WaitFor(
      "no expiry with 0s", [](const Metrics& m) { return m.Find(kStarts, Set("ex_reload")).empty(); },
      nullptr, std::chrono::milliseconds(1500)));
  {
    std::ofstream file(exporter.config_path(), std::ios::trunc);
    file << MakeConfig(sets, "auto") << "limits:\n  idle_set_timeout: 300ms\n";
  }
  ASSERT_EQ(kill(exporter.pid(), SIGHUP), 0);
  Metrics last;
  ASSERT_TRUE(exporter.WaitFor(
      "the idle set removed after the reload",
      [](const Metrics& m) { return m.Find(kStarts, Set("ex_reload")).empty(); }, &last));
  EXPECT_EQ(last.Value(kExpired), 1);
}

}  // namespace
}  // namespace integration
