// EventLoop deadline timers (exporter/event_loop.h): one-shot, absolute CLOCK_MONOTONIC,
// re-armable and disarmable, on a real epoll loop and real timerfds.
#include <gtest/gtest.h>
#include <time.h>

#include <cstdint>
#include <string>
#include <vector>

#include "event_loop.h"

namespace pidfd_exporter {
namespace {

constexpr int64_t kMillisecond = 1'000'000;

int64_t MonotonicNow() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

struct LoopFixture {
  std::unique_ptr<EventLoop> loop;
  LoopFixture() {
    std::string error;
    loop = EventLoop::Create(&error);
    EXPECT_TRUE(loop) << error;
    // Guard: a broken timer must not hang the test.
    loop->AddTimer(std::chrono::seconds(10), [this] { loop->Stop(); });
  }
};

TEST(EventLoopTimerTest, DeadlineTimerFiresOnceAtItsDeadline) {
  LoopFixture fixture;
  std::vector<int64_t> fired;
  const int timer = fixture.loop->AddDeadlineTimer([&] { fired.push_back(MonotonicNow()); });
  ASSERT_GE(timer, 0);
  const int64_t deadline = MonotonicNow() + 30 * kMillisecond;
  ASSERT_TRUE(fixture.loop->ArmTimerAt(timer, deadline));
  // Stop 100 ms after the deadline: a periodic (not one-shot) timer would fire again by then.
  const int stopper = fixture.loop->AddDeadlineTimer([&] { fixture.loop->Stop(); });
  ASSERT_TRUE(fixture.loop->ArmTimerAt(stopper, deadline + 100 * kMillisecond));
  fixture.loop->Run();
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_GE(fired[0], deadline);
}

TEST(EventLoopTimerTest, ReArmingMovesTheDeadlineAndDisarmingCancels) {
  LoopFixture fixture;
  std::vector<int64_t> moved_fired;
  int disarmed_fired = 0;
  const int moved = fixture.loop->AddDeadlineTimer([&] { moved_fired.push_back(MonotonicNow()); });
  const int disarmed = fixture.loop->AddDeadlineTimer([&] { ++disarmed_fired; });
  const int64_t start = MonotonicNow();
  ASSERT_TRUE(fixture.loop->ArmTimerAt(moved, start + 20 * kMillisecond));
  ASSERT_TRUE(fixture.loop->ArmTimerAt(moved, start + 60 * kMillisecond));  // later: replaces
  ASSERT_TRUE(fixture.loop->ArmTimerAt(disarmed, start + 20 * kMillisecond));
  ASSERT_TRUE(fixture.loop->DisarmTimer(disarmed));
  const int stopper = fixture.loop->AddDeadlineTimer([&] { fixture.loop->Stop(); });
  ASSERT_TRUE(fixture.loop->ArmTimerAt(stopper, start + 150 * kMillisecond));
  fixture.loop->Run();
  ASSERT_EQ(moved_fired.size(), 1u);
  EXPECT_GE(moved_fired[0], start + 60 * kMillisecond);
  EXPECT_EQ(disarmed_fired, 0);
}

// A deadline in the past (or 0) fires at the next round; re-arming from inside the callback
// works (the reap-check loop re-arms at NextDeadline() after every round).
TEST(EventLoopTimerTest, PastDeadlineFiresAndCallbackMayReArm) {
  LoopFixture fixture;
  int fired = 0;
  int timer = -1;
  timer = fixture.loop->AddDeadlineTimer([&] {
    if (++fired < 5) {
      fixture.loop->ArmTimerAt(timer, fired % 2 ? 0 : MonotonicNow() - kMillisecond);
    } else {
      fixture.loop->Stop();
    }
  });
  ASSERT_TRUE(fixture.loop->ArmTimerAt(timer, MonotonicNow() - 1000 * kMillisecond));
  fixture.loop->Run();
  EXPECT_EQ(fired, 5);
}

TEST(EventLoopTimerTest, UnknownTimerIdsAreRejected) {
  LoopFixture fixture;
  EXPECT_FALSE(fixture.loop->ArmTimerAt(-1, 0));
  EXPECT_FALSE(fixture.loop->ArmTimerAt(99, 0));
  EXPECT_FALSE(fixture.loop->DisarmTimer(99));
}

}  // namespace
}  // namespace pidfd_exporter
