// The kernel log parser on recorded /dev/kmsg records, the memory cgroup parsers on recorded
// files, and the OOM correlator's decisions (exporter/oom_attribution.h).
#include "../../exporter/oom_attribution.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "../../exporter/cgroup_oom_counter.h"
#include "../../exporter/kernel_log.h"

namespace pidfd_exporter {
namespace {

std::string ReadFixture(const std::string& name) {
  std::ifstream file(std::string(PIDFD_TEST_FIXTURES_DIR) + "/" + name, std::ios::binary);
  EXPECT_TRUE(file.good()) << name;
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// tests/fixtures/kmsg/memcg_oom.txt: every record of one memcg OOM kill (python3, PID 2262, in
// .../kmsg_fixture), one record per line as read() returned them.
std::vector<OomKill> ParseRecordedKill() {
  std::vector<OomKill> kills;
  std::istringstream lines(ReadFixture("kmsg/memcg_oom.txt"));
  for (std::string line; std::getline(lines, line);)
    if (auto kill = ParseKernelLogRecord(line + "\n")) kills.push_back(*kill);
  return kills;
}

TEST(KernelLogTest, RecordedMemcgKillNamesItsVictimTwice) {
  const std::vector<OomKill> kills = ParseRecordedKill();
  ASSERT_EQ(kills.size(), 2u);  // "oom-kill:" and "Killed process"; the other 79 records are not kills
  EXPECT_EQ(kills[0].pid, 2262);
  EXPECT_EQ(kills[0].comm, "python3");
  EXPECT_EQ(kills[0].memory_cgroup, "/process_api/5f8aaf733de4e5436aef3b81730285bb/kmsg_fixture");
  EXPECT_EQ(kills[0].kernel_microseconds, 916978856u);
  EXPECT_EQ(kills[1].pid, 2262);
  EXPECT_EQ(kills[1].comm, "python3");
  EXPECT_EQ(kills[1].memory_cgroup, "");
  EXPECT_EQ(kills[1].kernel_microseconds, 916978901u);
}

TEST(KernelLogTest, GlobalOomKillLineIsAVictim) {
  // mm/oom_kill.c's format for the global OOM killer ("Out of memory" without a memcg).
  const auto kill = ParseKernelLogRecord(
      "3,900,5000,-;Out of memory: Killed process 4242 (a) (b) total-vm:1000kB, anon-rss:10kB, file-rss:0kB, "
      "shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0\n");
  ASSERT_TRUE(kill);
  EXPECT_EQ(kill->pid, 4242);
  EXPECT_EQ(kill->comm, "a) (b");  // the name ends at the last ") "
}

TEST(KernelLogTest, UserSpaceCannotForgeAVictim) {
  // What `echo ... > /dev/kmsg` produces: facility user (1), priority 12 = 1 << 3 | 4.
  EXPECT_FALSE(
      ParseKernelLogRecord("12,901,5000,-;Memory cgroup out of memory: Killed process 1 (init) x\n"));
  EXPECT_FALSE(
      ParseKernelLogRecord("14,902,5000,-;oom-kill:constraint=CONSTRAINT_NONE,task=init,pid=1,uid=0\n"));
}

TEST(KernelLogTest, MalformedRecordsAreNoVictims) {
  for (const char* record :
       {"", ";", "6,1,2,-;", "x,1,2,-;oom-kill:pid=5", "6,1,2,-;oom-kill:task=a,pid=,uid=0",
        "6,1,2,-;oom-kill:task=a,pid=0,uid=0", "6,1,2,-;oom-kill:task=a,pid=99999999999,uid=0",
        "3,1,2,-;Killed process 12 (x) without the oom-killer's words",
        "3,1,2,-;Out of memory: Killed process ", "3,1,2,-;Out of memory: Killed process abc (x) "}) {
    EXPECT_FALSE(ParseKernelLogRecord(record)) << record;
  }
}

TEST(KernelLogTest, DictionaryLinesAreNotText) {
  const auto kill = ParseKernelLogRecord(
      "6,5,7,-;oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/a,task=w,pid=77,uid=0\n SUBSYSTEM=x\n "
      "pid=1\n");
  ASSERT_TRUE(kill);
  EXPECT_EQ(kill->pid, 77);
  EXPECT_EQ(kill->memory_cgroup, "/a");
}

TEST(KernelLogTest, OpenSeeksPastTheHistoryOfAFile) {
  // Any readable file stands in for /dev/kmsg: what was there before the open is not read.
  const std::string path = ::testing::TempDir() + "/kmsg_history";
  std::ofstream(path) << "6,1,2,-;oom-kill:task=a,pid=5,uid=0\n";
  std::string error;
  auto log = KernelLog::Open(&error, path.c_str());
  ASSERT_TRUE(log) << error;
  std::vector<OomKill> kills;
  EXPECT_EQ(log->Read(&kills, &error), KernelLog::ReadStatus::kDrained);
  EXPECT_TRUE(kills.empty());
}

TEST(CgroupOomCounterTest, RecordedHybridMountinfoHasV1Memory) {
  const auto mount = ParseMemoryCgroupMount(ReadFixture("memcg/mountinfo_hybrid"));
  ASSERT_TRUE(mount);
  EXPECT_EQ(mount->mount_point, "/sys/fs/cgroup/memory");
  EXPECT_EQ(mount->root, "/");
  EXPECT_FALSE(mount->v2);
}

TEST(CgroupOomCounterTest, PureV2MountinfoIsV2) {
  const auto mount = ParseMemoryCgroupMount(
      "25 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n");
  ASSERT_TRUE(mount);
  EXPECT_EQ(mount->mount_point, "/sys/fs/cgroup");
  EXPECT_TRUE(mount->v2);
}

TEST(CgroupOomCounterTest, MemoryPathOfEachVersion) {
  const std::string v1 = ReadFixture("proc/cgroup_containerd_cgroupfs/cgroup");
  EXPECT_TRUE(ParseMemoryCgroupPath(v1, false));
  EXPECT_EQ(ParseMemoryCgroupPath("4:memory:/process_api/x\n0::/\n", false), "/process_api/x");
  EXPECT_EQ(ParseMemoryCgroupPath("4:cpu,memory:/a:b\n", false), "/a:b");
  EXPECT_EQ(ParseMemoryCgroupPath("0::/kubepods/pod1/c\n", true), "/kubepods/pod1/c");
  EXPECT_FALSE(ParseMemoryCgroupPath("4:memoryx:/a\n", false));
  EXPECT_FALSE(ParseMemoryCgroupPath("4:memory:/a\n", true));
  EXPECT_FALSE(ParseMemoryCgroupPath("0::/../../kubepods/pod1\n", true));  // outside our namespace
}

TEST(CgroupOomCounterTest, OomKillCountOfEachFile) {
  EXPECT_EQ(ParseOomKillCount(ReadFixture("memcg/memory.oom_control_after_kill")), 1u);
  EXPECT_EQ(ParseOomKillCount(ReadFixture("memcg/memory.events.local_v2")), 2u);
  EXPECT_FALSE(ParseOomKillCount("oom_kill_disable 0\nunder_oom 0\n"));  // before Linux 4.13
  EXPECT_FALSE(ParseOomKillCount("oom_kill x\n"));
}

// --- the correlator ---

constexpr int64_t kMs = 1'000'000;

SigkillExit Exit(int pid, int64_t exit_ns, std::optional<CgroupOomReading> reading = std::nullopt) {
  SigkillExit exit;
  exit.pid = pid;
  exit.comm = "worker";
  exit.watched_since_ns = 100 * kMs;
  exit.exit_ns = exit_ns;
  exit.reading = std::move(reading);
  return exit;
}

OomKill Victim(int pid, const char* comm = "worker") {
  OomKill kill;
  kill.pid = pid;
  kill.comm = comm;
  return kill;
}

TEST(OomCorrelatorTest, LoggedVictimIsOomKilledOnce) {
  OomCorrelator correlator;
  correlator.VictimLogged(Victim(50), 200 * kMs);
  EXPECT_EQ(correlator.Decide(Exit(50, 201 * kMs), 201 * kMs, true, false), OomVerdict::kOomKilled);
  // The line was spent: the PID's next SIGKILL is not it.
  EXPECT_EQ(correlator.Decide(Exit(50, 300 * kMs), 400 * kMs, true, true), OomVerdict::kKilled);
}

TEST(OomCorrelatorTest, KillWithoutLineWaitsThenIsKilled) {
  OomCorrelator correlator;
  EXPECT_EQ(correlator.Decide(Exit(51, 200 * kMs), 200 * kMs, true, false), OomVerdict::kWait);
  EXPECT_EQ(correlator.Decide(Exit(51, 200 * kMs), 250 * kMs, true, true), OomVerdict::kKilled);
}

TEST(OomCorrelatorTest, LineOfAnEarlierHolderOfThePidIsNotThisProcess) {
  OomCorrelator correlator;
  correlator.VictimLogged(Victim(52), 50 * kMs);  // read before the process was watched (100 ms)
  EXPECT_EQ(correlator.Decide(Exit(52, 200 * kMs), 250 * kMs, true, true), OomVerdict::kKilled);
  correlator.VictimLogged(Victim(53, "other"), 150 * kMs);  // another name
  EXPECT_EQ(correlator.Decide(Exit(53, 200 * kMs), 250 * kMs, true, true), OomVerdict::kKilled);
}

TEST(OomCorrelatorTest, CgroupRiseWithOneSigkillExitIsOomKilled) {
  OomCorrelator correlator;
  correlator.CountersListed({{"/a", 0}}, true, 0);
  const SigkillExit exit = Exit(60, 200 * kMs, CgroupOomReading{"/a", 1});
  correlator.CgroupExitSeen(exit);
  EXPECT_EQ(correlator.Decide(exit, 200 * kMs, false, false), OomVerdict::kWait);
  EXPECT_EQ(correlator.Decide(exit, 250 * kMs, false, true), OomVerdict::kOomKilled);
  // The rise was spent: a later kill -9 in the same cgroup is not an OOM kill.
  const SigkillExit later = Exit(61, 5000 * kMs, CgroupOomReading{"/a", 1});
  correlator.CgroupExitSeen(later);
  EXPECT_EQ(correlator.Decide(later, 5100 * kMs, false, true), OomVerdict::kKilled);
}

TEST(OomCorrelatorTest, CgroupWithoutRiseIsKilled) {
  OomCorrelator correlator;
  correlator.CountersListed({{"/a", 3}}, true, 0);
  const SigkillExit exit = Exit(62, 200 * kMs, CgroupOomReading{"/a", 3});
  correlator.CgroupExitSeen(exit);
  EXPECT_EQ(correlator.Decide(exit, 250 * kMs, false, true), OomVerdict::kKilled);
}

TEST(OomCorrelatorTest, OneRiseAndTwoSigkillExitsIsNeither) {
  OomCorrelator correlator;
  correlator.CountersListed({{"/a", 0}}, true, 0);
  const SigkillExit first = Exit(63, 200 * kMs, CgroupOomReading{"/a", 1});
  const SigkillExit second = Exit(64, 210 * kMs, CgroupOomReading{"/a", 1});
  correlator.CgroupExitSeen(first);
  correlator.CgroupExitSeen(second);
  EXPECT_EQ(correlator.Decide(first, 250 * kMs, false, true), OomVerdict::kKilled);
  EXPECT_EQ(correlator.Decide(second, 260 * kMs, false, true), OomVerdict::kKilled);
}

TEST(OomCorrelatorTest, TwoRisesAndTwoSigkillExitsAreBoth) {
  OomCorrelator correlator;
  correlator.CountersListed({{"/a", 0}}, true, 0);
  const SigkillExit first = Exit(65, 200 * kMs, CgroupOomReading{"/a", 2});
  const SigkillExit second = Exit(66, 210 * kMs, CgroupOomReading{"/a", 2});
  correlator.CgroupExitSeen(first);
  correlator.CgroupExitSeen(second);
  EXPECT_EQ(correlator.Decide(first, 250 * kMs, false, true), OomVerdict::kOomKilled);
  EXPECT_EQ(correlator.Decide(second, 260 * kMs, false, true), OomVerdict::kOomKilled);
}

TEST(OomCorrelatorTest, CgroupCreatedAfterTheListingStartsAtZero) {
  OomCorrelator correlator;
  correlator.CountersListed({{"/a", 0}}, true, 0);
  const SigkillExit exit = Exit(67, 200 * kMs, CgroupOomReading{"/new", 1});
  correlator.CgroupExitSeen(exit);
  EXPECT_EQ(correlator.Decide(exit, 250 * kMs, false, true), OomVerdict::kOomKilled);
}

TEST(OomCorrelatorTest, WithoutAListingThereIsNoBaseline) {
  OomCorrelator correlator;
  const SigkillExit exit = Exit(68, 200 * kMs, CgroupOomReading{"/a", 1});
  correlator.CgroupExitSeen(exit);
  EXPECT_EQ(correlator.Decide(exit, 250 * kMs, false, true), OomVerdict::kKilled);
}

TEST(OomCorrelatorTest, RiseUnclaimedForAPeriodIsAnUnwatchedVictim) {
  OomCorrelator correlator;
  correlator.CountersListed({{"/a", 0}}, true, 0);
  correlator.CountersListed({{"/a", 1}}, true, 0);  // an unwatched process was OOM-killed
  correlator.CountersListed({{"/a", 1}}, true, 0);  // and nothing claimed it for a period
  const SigkillExit exit = Exit(69, 200 * kMs, CgroupOomReading{"/a", 1});
  correlator.CgroupExitSeen(exit);
  EXPECT_EQ(correlator.Decide(exit, 250 * kMs, false, true), OomVerdict::kKilled);
}

TEST(OomCorrelatorTest, RiseListedWellBeforeTheExitIsAnotherProcesssKill) {
  OomCorrelator correlator;
  correlator.CountersListed({{"/a", 0}}, true, 0);
  correlator.CountersListed({{"/a", 1}}, true, 1000 * kMs);  // an unwatched process was OOM-killed
  // A kill -9 of a watched process 5 s after the listing that showed the rise.
  const SigkillExit exit = Exit(73, 6000 * kMs, CgroupOomReading{"/a", 1});
  correlator.CgroupExitSeen(exit);
  EXPECT_EQ(correlator.Decide(exit, 6100 * kMs, false, true), OomVerdict::kKilled);
  // The victim of a rise the listing showed just before its exit is still its kill's.
  correlator.CountersListed({{"/a", 2}}, true, 7000 * kMs);
  const SigkillExit victim = Exit(74, 7100 * kMs, CgroupOomReading{"/a", 2});
  correlator.CgroupExitSeen(victim);
  EXPECT_EQ(correlator.Decide(victim, 7200 * kMs, false, true), OomVerdict::kOomKilled);
}

TEST(OomCorrelatorTest, LostLogRecordsFallBackToTheCgroup) {
  OomCorrelator correlator;
  correlator.CountersListed({{"/a", 0}}, true, 0);
  correlator.LogLost(150 * kMs);
  EXPECT_FALSE(correlator.LogComplete(true, 200 * kMs));
  const SigkillExit exit = Exit(70, 200 * kMs, CgroupOomReading{"/a", 1});
  correlator.CgroupExitSeen(exit);
  EXPECT_EQ(correlator.Decide(exit, 250 * kMs, true, true), OomVerdict::kOomKilled);
  EXPECT_TRUE(correlator.LogComplete(true, 150 * kMs + OomCorrelator::kMemoryNs + 1));
}

TEST(OomCorrelatorTest, CompleteLogOverrulesTheCgroup) {
  // The log names every victim: a rise without a line is an unwatched process's OOM kill.
  OomCorrelator correlator;
  correlator.CountersListed({{"/a", 0}}, true, 0);
  const SigkillExit exit = Exit(71, 200 * kMs, CgroupOomReading{"/a", 1});
  correlator.CgroupExitSeen(exit);
  EXPECT_EQ(correlator.Decide(exit, 250 * kMs, true, true), OomVerdict::kKilled);
}

TEST(OomCorrelatorTest, OldLinesExpire) {
  OomCorrelator correlator;
  correlator.VictimLogged(Victim(72), 200 * kMs);
  correlator.Expire(200 * kMs + OomCorrelator::kMemoryNs + 1);
  EXPECT_EQ(correlator.VictimsHeld(), 0u);
}

}  // namespace
}  // namespace pidfd_exporter
