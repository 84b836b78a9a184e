// Reload acceptance tests: POST /-/reload and SIGHUP swap the config on the running exporter
// at once or not at all. Counters of sets that remain keep their values, series of removed
// sets disappear, watched processes are matched again, and a broken file is refused with its
// file:line:col errors while the old config keeps running.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <string>

#include "harness.h"

namespace integration {
namespace {

constexpr char kProcesses[] = "pidfd_processes";
constexpr char kStarts[] = "pidfd_process_starts_total";
constexpr char kExits[] = "pidfd_process_exits_total";
constexpr char kReloadOk[] = "pidfd_exporter_config_last_reload_successful";

Labels Set(const std::string& set) {
  return {{"set", set}};
}
Labels Exit(const std::string& set, int code) {
  return {{"set", set}, {"reason", "exited"}, {"code", std::to_string(code)}};
}

void Rewrite(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::trunc);
  file << text;
}

HttpResponse Post(const ExporterProcess& exporter, const std::string& path) {
  HttpResult result = HttpRequest("POST", "127.0.0.1", exporter.port(), path, {"Content-Length: 0"});
  EXPECT_TRUE(result.response.has_value()) << result.error;
  return result.response.value_or(HttpResponse{});
}

// The config the tests start with: two fixed sets, scan only (the reload semantics do not
// depend on the connector).
std::string FirstConfig() {
  return MakeConfig(CommSet("rl_keep", "rl_keep") + CommSet("rl_gone", "rl_gone"), "off");
}

TEST(ReloadTest, HttpReloadKeepsCountersDropsRemovedSetsAndRematchesProcesses) {
  ExporterProcess exporter;
  ASSERT_TRUE(exporter.Start(FirstConfig()));

  auto keeper = ChildProcess::Spawn({"rl_keep", ""});
  auto mover = ChildProcess::Spawn({"rl_gone", ""});
  ASSERT_TRUE(exporter.WaitFor("both children watched", [](const Metrics& m) {
    return m.Value(kProcesses, Set("rl_keep")) == 1 && m.Value(kProcesses, Set("rl_gone")) == 1;
  }));
  keeper->Exit(4);
  ASSERT_TRUE(keeper->WaitUntilZombie());
  keeper->Reap();
  ASSERT_TRUE(exporter.WaitFor("the first exit counted", [](const Metrics& m) {
    return m.ValueOrZero(kExits, Exit("rl_keep", 4)) == 1;
  }));

  // rl_gone's process now belongs to the new set rl_moved; rl_gone is no longer configured.
  Rewrite(exporter.config_path(),
          MakeConfig(CommSet("rl_keep", "rl_keep") + CommSet("rl_moved", "rl_gone"), "off"));
  const HttpResponse reloaded = Post(exporter, "/-/reload");
  EXPECT_EQ(reloaded.status, 200) << reloaded.body;

  Metrics after;
  ASSERT_TRUE(exporter.Scrape(&after));
  EXPECT_EQ(after.Value(kExits, Exit("rl_keep", 4)), 1) << "a counter of a set that remains was reset";
  EXPECT_EQ(after.Value(kStarts, Set("rl_keep")), 1);
  EXPECT_EQ(after.Value(kProcesses, Set("rl_moved")), 1) << "the watched process was not matched again";
  EXPECT_EQ(after.Value(kStarts, Set("rl_moved")), 1);
  EXPECT_TRUE(after.Find(kProcesses, Set("rl_gone")).empty()) << "series of a removed set remain";
  EXPECT_TRUE(after.Find(kStarts, Set("rl_gone")).empty());
  EXPECT_EQ(after.Value(kReloadOk), 1);

  // A broken file: refused with its position, the running config stays.
  Rewrite(exporter.config_path(), "process_sets:\n  - name: x\n    bogus: 1\n");
  const HttpResponse refused = Post(exporter, "/-/reload");
  EXPECT_EQ(refused.status, 500);
  EXPECT_NE(refused.body.find(exporter.config_path() + ":3:5:"), std::string::npos) << refused.body;
  Metrics kept;
  ASSERT_TRUE(exporter.Scrape(&kept));
  EXPECT_EQ(kept.Value(kReloadOk), 0);
  EXPECT_EQ(kept.Value(kProcesses, Set("rl_moved")), 1);
  EXPECT_EQ(kept.Value(kExits, Exit("rl_keep", 4)), 1);

  // The old config still counts: the moved process exits in its new set.
  mover->Exit(7);
  ASSERT_TRUE(mover->WaitUntilZombie());
  mover->Reap();
  EXPECT_TRUE(exporter.WaitFor("the moved process's exit counted in rl_moved", [](const Metrics& m) {
    return m.ValueOrZero(kExits, Exit("rl_moved", 7)) == 1 && m.Value(kProcesses, Set("rl_moved")) == 0;
  }));

  // GET is not a reload.
  HttpResult get = HttpGet("127.0.0.1", exporter.port(), "/-/reload");
  ASSERT_TRUE(get.response.has_value()) << get.error;
  EXPECT_EQ(get.response->status, 405);
}

TEST(ReloadTest, SighupReloadsAndRefusesABrokenFile) {
  ExporterProcess exporter;
  ASSERT_TRUE(exporter.Start(FirstConfig()));
  auto keeper = ChildProcess::Spawn({"rl_keep", ""});
  ASSERT_TRUE(exporter.WaitFor("child watched",
                               [](const Metrics& m) { return m.Value(kProcesses, Set("rl_keep")) == 1; }));
  keeper->Exit(2);
  ASSERT_TRUE(keeper->WaitUntilZombie());
  keeper->Reap();
  ASSERT_TRUE(exporter.WaitFor(
      "exit counted", [](const Metrics& m) { return m.ValueOrZero(kExits, Exit("rl_keep", 2)) == 1; }));

  Rewrite(exporter.config_path(), "process_sets: [\n");
  ASSERT_EQ(kill(exporter.pid(), SIGHUP), 0);
  EXPECT_TRUE(exporter.WaitFor("reload refused", [](const Metrics& m) { return m.Value(kReloadOk) == 0; }));
  EXPECT_NE(exporter.Log().find("Reload failed, keeping the running config"), std::string::npos);

  Rewrite(exporter.config_path(),
          MakeConfig(CommSet("rl_keep", "rl_keep") + CommSet("rl_added", "rl_added"), "off"));
  ASSERT_EQ(kill(exporter.pid(), SIGHUP), 0);
  EXPECT_TRUE(exporter.WaitFor("reload accepted, new set present, counter kept", [](const Metrics& m) {
    return m.Value(kReloadOk) == 1 && m.Value(kProcesses, Set("rl_added")) == 0 &&
           m.ValueOrZero(kExits, Exit("rl_keep", 2)) == 1 && m.Find(kProcesses, Set("rl_gone")).empty();
  }));
  const auto stopped = exporter.Stop();
  ASSERT_TRUE(stopped.has_value());
  EXPECT_TRUE(WIFEXITED(stopped->status) && WEXITSTATUS(stopped->status) == 0);
}

}  // namespace
}  // namespace integration
