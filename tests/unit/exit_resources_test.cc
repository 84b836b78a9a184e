// Summing taskstats records by thread group and meeting claims (exporter/exit_resources.h).
#include "../../exporter/exit_resources.h"

#include <gtest/gtest.h>

#include <vector>

namespace pidfd_exporter {
namespace {

struct Delivered {
  size_t slot;
  ProcessResources resources;
};

TaskExitRecord Record(int pid, int tgid, bool group_dead, uint64_t user_us, uint64_t system_us,
                      uint64_t runtime_ns, uint64_t rss_kib, uint64_t read = 0, uint64_t write = 0) {
  TaskExitRecord record;
  record.pid = pid;
  record.tgid = tgid;
  record.group_dead = group_dead;
  record.exit_code = 0x9;
  record.user_microseconds = user_us;
  record.system_microseconds = system_us;
  record.runtime_nanoseconds = runtime_ns;
  record.peak_rss_kib = rss_kib;
  record.read_bytes = read;
  record.write_bytes = write;
  return record;
}

class ExitResourcesTest : public ::testing::Test {
 protected:
  std::vector<Delivered> delivered_;
  ExitResources resources_{[this](size_t slot, const ProcessResources& r) {
    delivered_.push_back({slot, r});
  }};
};

TEST_F(ExitResourcesTest, ThreadsAreSummedByThreadGroup) {
  resources_.RecordRead(Record(101, 100, false, 30000, 10000, 40'000'000, 2048, 4096, 1024), 1);
  resources_.RecordRead(Record(100, 100, true, 60000, 20000, 80'000'000, 4096, 1024, 0), 2);
  resources_.Claim(100, 0x9, 7, 3);
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_EQ(delivered_[0].slot, 7u);
  // 0.12 s of run time split 3:1 like getrusage() does.
  EXPECT_DOUBLE_EQ(delivered_[0].resources.user_seconds, 0.09);
  EXPECT_DOUBLE_EQ(delivered_[0].resources.system_seconds, 0.03);
  EXPECT_EQ(delivered_[0].resources.peak_rss_bytes, 4096u * 1024);  // the largest, not the sum
  EXPECT_EQ(delivered_[0].resources.read_bytes, 5120u);
  EXPECT_EQ(delivered_[0].resources.write_bytes, 1024u);
}

TEST_F(ExitResourcesTest, ClaimBeforeTheRecordsWaitsForTheLast) {
  resources_.Claim(200, 0x9, 3, 1);
  resources_.RecordRead(Record(201, 200, false, 1000, 0, 1'000'000, 10), 2);
  EXPECT_TRUE(delivered_.empty());
  resources_.RecordRead(Record(200, 200, true, 1000, 0, 1'000'000, 10), 3);
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_DOUBLE_EQ(delivered_[0].resources.user_seconds, 0.002);
  EXPECT_FALSE(resources_.HasClaims());
}

TEST_F(ExitResourcesTest, UnclaimedSumIsReplacedWhenThePidIsReused) {
  resources_.RecordRead(Record(300, 300, true, 0, 5000, 5'000'000, 100), 1);  // not watched
  resources_.RecordRead(Record(300, 300, true, 7000, 0, 7'000'000, 200), 2);  // the PID's next process
  resources_.Claim(300, 0x9, 1, 3);
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_DOUBLE_EQ(delivered_[0].resources.user_seconds, 0.007);
  EXPECT_EQ(delivered_[0].resources.peak_rss_bytes, 200u * 1024);
}

TEST_F(ExitResourcesTest, OtherStatusIsAnotherProcess) {
  resources_.RecordRead(Record(400, 400, true, 1, 1, 2000, 1), 1);
  resources_.Claim(400, 0x100, 1, 2);
  EXPECT_TRUE(delivered_.empty());
}

TEST_F(ExitResourcesTest, SampledTimesAloneWithoutDelayAccounting) {
  resources_.RecordRead(Record(500, 500, true, 4000, 8000, 0, 1), 1);
  resources_.Claim(500, std::nullopt, 1, 2);
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_DOUBLE_EQ(delivered_[0].resources.user_seconds, 0.004);
  EXPECT_DOUBLE_EQ(delivered_[0].resources.system_seconds, 0.008);
}

TEST_F(ExitResourcesTest, RunTimeWithoutSamplesIsUserTime) {
  resources_.RecordRead(Record(600, 600, true, 0, 0, 3'000'000, 1), 1);
  resources_.Claim(600, 0x9, 1, 2);
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_DOUBLE_EQ(delivered_[0].resources.user_seconds, 0.003);
  EXPECT_DOUBLE_EQ(delivered_[0].resources.system_seconds, 0);
}

TEST_F(ExitResourcesTest, OldClaimsAndSumsExpire) {
  resources_.Claim(700, 0x9, 1, 0);
  resources_.RecordRead(Record(701, 701, false, 1, 1, 1, 1), 0);
  EXPECT_EQ(resources_.Expire(ExitResources::kMaxAgeNs + 1), 1u);
  EXPECT_EQ(resources_.SumsHeld(), 0u);
  EXPECT_FALSE(resources_.HasClaims());
}

// --- Final run times (exporter/final_runtime_probe.h) ---

FinalRuntime Freed(int pid, int tgid, uint64_t runtime_ns, uint64_t user_ns, uint64_t system_ns,
                   uint32_t exit_code = 0x9, uint64_t start_boottime_ns = 0) {
  return FinalRuntime{pid, tgid, runtime_ns, user_ns, system_ns, start_boottime_ns, exit_code};
}

class FinalRuntimeTest : public ExitResourcesTest {
 protected:
  FinalRuntimeTest() {
    resources_.ExpectFinalRuntimes([this](size_t slot, const FinalCpu& cpu) {
      final_.push_back({slot, cpu});
    });
  }
  struct DeliveredCpu {
    size_t slot;
    FinalCpu cpu;
  };
  std::vector<DeliveredCpu> final_;
};

TEST_F(FinalRuntimeTest, RestOfTheExitComesWhenTheMainThreadIsFreed) {
  resources_.RecordRead(Record(100, 100, true, 16000, 4000, 20'000'000, 4096), 1);
  resources_.Claim(100, 0x9, 5, 2);
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_TRUE(final_.empty());
  EXPECT_TRUE(resources_.AwaitsFinalRuntimes());
  // 0.6 ms more, and one more system tick (4 ms) came after the record: all of it is system time.
  resources_.FinalRuntimeRead(Freed(100, 100, 20'600'000, 16'000'000, 8'000'000), 3);
  ASSERT_EQ(final_.size(), 1u);
  EXPECT_EQ(final_[0].slot, 5u);
  EXPECT_DOUBLE_EQ(final_[0].cpu.user_seconds, 0);
  EXPECT_DOUBLE_EQ(final_[0].cpu.system_seconds, 0.0006);
  EXPECT_FALSE(resources_.AwaitsFinalRuntimes());
}

TEST_F(FinalRuntimeTest, NoTickAfterTheRecordCountsAsSystemTime) {
  resources_.RecordRead(Record(110, 110, true, 16000, 4000, 20'000'000, 1), 1);
  resources_.Claim(110, 0x9, 1, 2);
  resources_.FinalRuntimeRead(Freed(110, 110, 20'500'000, 16'000'000, 4'000'000), 3);
  ASSERT_EQ(final_.size(), 1u);
  EXPECT_DOUBLE_EQ(final_[0].cpu.user_seconds, 0);
  EXPECT_DOUBLE_EQ(final_[0].cpu.system_seconds, 0.0005);
}

TEST_F(FinalRuntimeTest, TicksAfterTheRecordSplitTheRest) {
  resources_.RecordRead(Record(120, 120, true, 0, 0, 1'000'000, 1), 1);
  resources_.Claim(120, 0x9, 1, 2);
  // 3 ms more; a user tick and a system tick came after the record (2 ms each): half and half.
  resources_.FinalRuntimeRead(Freed(120, 120, 4'000'000, 2'000'000, 2'000'000), 3);
  ASSERT_EQ(final_.size(), 1u);
  EXPECT_DOUBLE_EQ(final_[0].cpu.user_seconds, 0.0015);
  EXPECT_DOUBLE_EQ(final_[0].cpu.system_seconds, 0.0015);
}

TEST_F(FinalRuntimeTest, FreedBeforeTheClaimIsKeptForIt) {
  // The exporter read the free before the exit event (a busy loop): the claim finds both.
  resources_.FinalRuntimeRead(Freed(130, 130, 2'500'000, 0, 0), 1);
  resources_.RecordRead(Record(130, 130, true, 2000, 0, 2'000'000, 1), 2);
  EXPECT_TRUE(final_.empty());
  resources_.Claim(130, 0x9, 2, 3);
  ASSERT_EQ(delivered_.size(), 1u);
  ASSERT_EQ(final_.size(), 1u);
  EXPECT_DOUBLE_EQ(final_[0].cpu.system_seconds, 0.0005);
  EXPECT_FALSE(resources_.AwaitsFinalRuntimes());
}

TEST_F(FinalRuntimeTest, FreedBeforeItsRecordsAreReadIsKeptForTheClaim) {
  resources_.Claim(140, 0x9, 2, 1);
  resources_.FinalRuntimeRead(Freed(140, 140, 3'000'000, 0, 0), 2);
  resources_.RecordRead(Record(140, 140, true, 2000, 0, 2'000'000, 1), 3);
  ASSERT_EQ(delivered_.size(), 1u);
  ASSERT_EQ(final_.size(), 1u);
  EXPECT_DOUBLE_EQ(final_[0].cpu.system_seconds, 0.001);
}

TEST_F(FinalRuntimeTest, OnlyTheMainThreadCounts) {
  resources_.RecordRead(Record(151, 150, false, 1000, 0, 1'000'000, 1), 1);
  resources_.RecordRead(Record(150, 150, true, 1000, 0, 1'000'000, 1), 2);
  resources_.Claim(150, 0x9, 1, 3);
  resources_.FinalRuntimeRead(Freed(151, 150, 9'000'000, 0, 0), 4);  // a thread: not followed
  EXPECT_TRUE(final_.empty());
  resources_.FinalRuntimeRead(Freed(150, 150, 1'200'000, 0, 0), 5);
  ASSERT_EQ(final_.size(), 1u);
  EXPECT_DOUBLE_EQ(final_[0].cpu.system_seconds, 0.0002);
}

TEST_F(FinalRuntimeTest, EarlierProcessWithThePidIsRejected) {
  // The PID's earlier holder is freed only after the new one exited and was counted: its exit
  // status, its smaller run time or its start tells it apart. Each check alone (the start is
  // this process's in the first two).
  resources_.RecordRead(Record(160, 160, true, 50000, 0, 50'000'000, 1), 1);
  resources_.Claim(160, 0x9, 1, 2, /*start_time_ticks=*/500);
  resources_.FinalRuntimeRead(Freed(160, 160, 60'000'000, 0, 0, 0x700, 5'000'000'000), 3);  // other status
  resources_.FinalRuntimeRead(Freed(160, 160, 10'000'000, 0, 0, 0x9, 5'000'000'000), 4);    // ran less
  resources_.FinalRuntimeRead(Freed(160, 160, 60'000'000, 0, 0, 0x9, 4'990'000'000), 5);    // tick 499
  EXPECT_TRUE(final_.empty());
  EXPECT_TRUE(resources_.AwaitsFinalRuntimes());
  resources_.FinalRuntimeRead(Freed(160, 160, 50'100'000, 0, 0, 0x9, 5'000'000'000), 6);
  ASSERT_EQ(final_.size(), 1u);
  EXPECT_DOUBLE_EQ(final_[0].cpu.system_seconds, 0.0001);
}

TEST_F(FinalRuntimeTest, RejectedFreeWaitsForTheNextHolderOfThePid) {
  // Process 162 waits for its free; the next holder of the PID is freed first (its exit event
  // not read yet). The wait goes on, and the next holder's claim finds its own free.
  resources_.RecordRead(Record(162, 162, true, 1000, 0, 1'000'000, 1), 1);
  resources_.Claim(162, 0x9, 1, 2, 100);
  resources_.RecordRead(Record(162, 162, true, 2000, 0, 2'000'000, 1), 3);
  resources_.FinalRuntimeRead(Freed(162, 162, 2'300'000, 0, 0, 0x9, 2'000'000'000), 4);  // tick 200
  EXPECT_TRUE(final_.empty());
  resources_.Claim(162, 0x9, 2, 5, 200);
  ASSERT_EQ(final_.size(), 1u);
  EXPECT_EQ(final_[0].slot, 2u);
  EXPECT_DOUBLE_EQ(final_[0].cpu.system_seconds, 0.0003);
}

TEST_F(FinalRuntimeTest, WithoutDelayAccountingTheSampledTimesWereDelivered) {
  // cpu_run_virtual_total is 0: 3 ms of samples were counted, the rest is final - 3 ms.
  resources_.RecordRead(Record(164, 164, true, 2000, 1000, 0, 1), 1);
  resources_.Claim(164, 0x9, 1, 2);
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_DOUBLE_EQ(delivered_[0].resources.user_seconds + delivered_[0].resources.system_seconds, 0.003);
  resources_.FinalRuntimeRead(Freed(164, 164, 3'400'000, 2'000'000, 1'000'000), 3);
  ASSERT_EQ(final_.size(), 1u);
  EXPECT_DOUBLE_EQ(final_[0].cpu.user_seconds + final_[0].cpu.system_seconds, 0.0004);
}

TEST_F(FinalRuntimeTest, NanosecondsTheRecordRoundedAwayAreNoTick) {
  // The record has 16 ms and 4 ms in whole microseconds; the task's own figures have 999 ns more
  // each (steal or IRQ time accounting makes them any nanosecond): no tick came after the record.
  resources_.RecordRead(Record(166, 166, true, 16000, 4000, 20'000'000, 1), 1);
  resources_.Claim(166, 0x9, 1, 2);
  resources_.FinalRuntimeRead(Freed(166, 166, 20'500'000, 16'000'999, 4'000'999), 3);
  ASSERT_EQ(final_.size(), 1u);
  EXPECT_DOUBLE_EQ(final_[0].cpu.user_seconds, 0);
  EXPECT_DOUBLE_EQ(final_[0].cpu.system_seconds, 0.0005);
}

TEST_F(FinalRuntimeTest, UnreapedZombiesAreCountedAsLost) {
  resources_.RecordRead(Record(168, 168, true, 1000, 0, 1'000'000, 1), 0);
  resources_.Claim(168, 0x9, 1, 0);
  EXPECT_EQ(resources_.TakeFinalRuntimesLost(), 0u);
  resources_.Expire(ExitResources::kFinalMaxAgeNs + 1);
  EXPECT_EQ(resources_.TakeFinalRuntimesLost(), 1u);
  EXPECT_EQ(resources_.TakeFinalRuntimesLost(), 0u);
}

TEST_F(FinalRuntimeTest, EarlierHolderFreedBeforeTheClaimIsNotTaken) {
  resources_.FinalRuntimeRead(Freed(165, 165, 80'000'000, 0, 0, 0x9, 1'000'000'000), 1);  // tick 100
  resources_.RecordRead(Record(165, 165, true, 1000, 0, 1'000'000, 1), 2);
  resources_.Claim(165, 0x9, 1, 3, /*start_time_ticks=*/300);
  EXPECT_TRUE(final_.empty());
  EXPECT_TRUE(resources_.AwaitsFinalRuntimes());
  resources_.FinalRuntimeRead(Freed(165, 165, 1'100'000, 0, 0, 0x9, 3'000'000'000), 4);
  ASSERT_EQ(final_.size(), 1u);
  EXPECT_DOUBLE_EQ(final_[0].cpu.system_seconds, 0.0001);
}

TEST_F(FinalRuntimeTest, UnreapedZombieStopsWaitingAfterAMinute) {
  resources_.RecordRead(Record(170, 170, true, 1000, 0, 1'000'000, 1), 0);
  resources_.Claim(170, 0x9, 1, 0);
  resources_.Expire(ExitResources::kFinalMaxAgeNs - 1);
  EXPECT_TRUE(resources_.AwaitsFinalRuntimes());
  resources_.Expire(ExitResources::kFinalMaxAgeNs + 1);
  EXPECT_FALSE(resources_.AwaitsFinalRuntimes());
  resources_.FinalRuntimeRead(Freed(170, 170, 2'000'000, 0, 0), ExitResources::kFinalMaxAgeNs + 2);
  EXPECT_TRUE(final_.empty());
}

TEST_F(FinalRuntimeTest, AtMostKMaxSumsWaitAndTheNextIsCountedLost) {
  // At the cap every process still waits; past it, within the minute, the next one is lost
  // (counted), and the ones waiting keep waiting.
  constexpr int kFirst = 100000;
  for (int pid = kFirst; pid < kFirst + static_cast<int>(ExitResources::kMaxSums); ++pid) {
    resources_.RecordRead(Record(pid, pid, true, 1000, 0, 1'000'000, 1), 1);
    resources_.Claim(pid, 0x9, 1, 1);
  }
  EXPECT_EQ(resources_.TakeFinalRuntimesLost(), 0u);
  const int past = kFirst + static_cast<int>(ExitResources::kMaxSums);
  resources_.RecordRead(Record(past, past, true, 1000, 0, 1'000'000, 1), 2);
  resources_.Claim(past, 0x9, 1, 2);
  EXPECT_EQ(resources_.TakeFinalRuntimesLost(), 1u);
  resources_.FinalRuntimeRead(Freed(past, past, 2'000'000, 0, 0), 3);
  resources_.FinalRuntimeRead(Freed(kFirst, kFirst, 1'500'000, 0, 0), 3);
  ASSERT_EQ(final_.size(), 1u);  // the first waiter's; none for the lost one
  EXPECT_DOUBLE_EQ(final_[0].cpu.system_seconds, 0.0005);
  // A minute later the waiters that were never freed are counted lost too.
  resources_.Expire(ExitResources::kFinalMaxAgeNs + 2);
  EXPECT_EQ(resources_.TakeFinalRuntimesLost(), ExitResources::kMaxSums - 1);
  EXPECT_FALSE(resources_.AwaitsFinalRuntimes());
}

TEST_F(ExitResourcesTest, WithoutTheProbeNothingWaits) {
  resources_.RecordRead(Record(180, 180, true, 1000, 0, 1'000'000, 1), 1);
  resources_.Claim(180, 0x9, 1, 2);
  EXPECT_FALSE(resources_.AwaitsFinalRuntimes());
  resources_.FinalRuntimeRead(Freed(180, 180, 2'000'000, 0, 0), 3);  // ignored
  EXPECT_EQ(resources_.SumsHeld(), 0u);
}

}  // namespace
}  // namespace pidfd_exporter
