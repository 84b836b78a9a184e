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

}  // namespace
}  // namespace pidfd_exporter
