// The hidden --debug.disable-kernel-features switch (exporter/pidfd.h DisableKernelFeatures,
// EventLoop::HideReapEvents, Pidfd::IsReaped without poll): the names it takes, and that with
// reap events hidden a real pidfd reports its exit but not its reap, as on Linux 5.3-6.8,
// while IsReaped() still tells (signal 0 and fdinfo).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "event_loop.h"
#include "pidfd.h"

namespace pidfd_exporter {
namespace {

KernelFeatures AllFeatures() {
  KernelFeatures features;
  features.pidfd_open = features.reap_events = features.get_info = features.exit_status = true;
  features.pidfs_identity = features.proc_connector = features.taskstats = true;
  return features;
}

TEST(KernelFallbackSwitchTest, ClearsTheNamedFeaturesOnly) {
  KernelFeatures features = AllFeatures();
  std::string error;
  ASSERT_TRUE(DisableKernelFeatures("reap_events,get_info", &features, &error)) << error;
  EXPECT_FALSE(features.reap_events);
  EXPECT_FALSE(features.get_info);
  EXPECT_TRUE(features.exit_status);
  EXPECT_TRUE(features.pidfs_identity);
  EXPECT_TRUE(features.pidfd_open);
  EXPECT_TRUE(features.proc_connector);
  ASSERT_TRUE(DisableKernelFeatures("pidfs_identity,,exit_status,", &features, &error)) << error;
  EXPECT_FALSE(features.pidfs_identity);
  EXPECT_FALSE(features.exit_status);
}

TEST(KernelFallbackSwitchTest, EmptyListClearsNothing) {
  KernelFeatures features = AllFeatures();
  std::string error;
  ASSERT_TRUE(DisableKernelFeatures("", &features, &error));
  EXPECT_TRUE(features.reap_events && features.get_info && features.exit_status && features.pidfs_identity);
}

TEST(KernelFallbackSwitchTest, UnknownNameIsAnErrorNamingIt) {
  KernelFeatures features = AllFeatures();
  std::string error;
  // pidfd_open and the connector cannot be switched off: without them nothing runs.
  for (const char* list :
       {"reap_events,bogus", "pidfd_open", "proc_connector", "REAP_EVENTS", " reap_events"}) {
    error.clear();
    EXPECT_FALSE(DisableKernelFeatures(list, &features, &error)) << list;
    EXPECT_NE(error.find("unknown kernel feature"), std::string::npos) << error;
  }
}

int64_t MonotonicNow() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// A real child: it exits, is held as a zombie for 50 ms, then reaped. With reap events
// hidden the handler sees one report (EPOLLIN, no EPOLLHUP) however the kernel wakes the
// pidfd; IsReaped() without poll() tells zombie from reaped all the same.
TEST(KernelFallbackSwitchTest, HiddenReapEventsReportTheExitOnly) {
  std::string error;
  auto loop = EventLoop::Create(&error);
  ASSERT_TRUE(loop) << error;
  loop->HideReapEvents();
  Pidfd::SetReapIsPolled(false);  // as main.cc does when reap_events is disabled
  int release[2];
  ASSERT_EQ(pipe(release), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char byte;
    close(release[1]);
    (void)!read(release[0], &byte, 1);
    _exit(0);
  }
  close(release[0]);
  int open_error = 0;
  Pidfd pidfd = Pidfd::Open(child, &open_error);
  ASSERT_TRUE(pidfd.valid()) << open_error;
  std::vector<uint32_t> reports;
  bool zombie_not_reaped = false;
  bool reaped_seen = false;
  loop->SetKeyedHandler([&](uint64_t key, uint32_t events) {
    EXPECT_EQ(key, 42u);
    reports.push_back(events);
  });
  ASSERT_TRUE(loop->AddKeyed(pidfd.fd(), EPOLLIN | EPOLLET, 42));
  const int64_t start = MonotonicNow();
  const int exit_timer = loop->AddDeadlineTimer([&] {
    close(release[1]);  // the child exits
  });
  const int reap_timer = loop->AddDeadlineTimer([&] {
    zombie_not_reaped = !pidfd.IsReaped();
    int status = 0;
    EXPECT_EQ(waitpid(child, &status, 0), child);
  });
  const int stop_timer = loop->AddDeadlineTimer([&] {
    reaped_seen = pidfd.IsReaped();
    loop->Stop();
  });
  loop->ArmTimerAt(exit_timer, start + 20'000'000);
  loop->ArmTimerAt(reap_timer, start + 70'000'000);
  loop->ArmTimerAt(stop_timer, start + 200'000'000);
  loop->Run();
  ASSERT_EQ(reports.size(), 1u) << "the reap must not be reported";
  EXPECT_TRUE(reports[0] & EPOLLIN);
  EXPECT_FALSE(reports[0] & EPOLLHUP);
  EXPECT_TRUE(zombie_not_reaped);
  EXPECT_TRUE(reaped_seen);
  EXPECT_TRUE(pidfd.ReapedPerFdinfo());
  Pidfd::SetReapIsPolled(false);  // the process-wide default: leave it so for other tests
}

}  // namespace
}  // namespace pidfd_exporter
