// Tests for procfs: the parsers against text recorded from a 6.18 kernel's /proc
// (tests/fixtures/proc/, see tests/fixtures/README.md) and against hostile text; the readers
// against this process's own /proc and a temporary directory.
#include "procfs.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "unique_fd.h"

namespace pidfd_exporter {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using namespace std::string_literals;

// The bytes of tests/fixtures/proc/<process_case>/<file>, exactly as recorded.
std::string Fixture(const std::string& process_case, const std::string& file) {
  const std::string path = std::string(PIDFD_TEST_FIXTURES_DIR) + "/proc/" + process_case + "/" + file;
  std::ifstream stream(path, std::ios::binary);
  EXPECT_TRUE(stream.is_open()) << "missing fixture " << path;
  return std::string(std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>());
}

// The comm that record_proc_fixtures.py gave itself with prctl(PR_SET_NAME).
const std::string kWeirdComm = "a) (b\n\xff\\ c)";

// ---------------------------------------------------------------------------------------
// ParseStat on recorded processes

TEST(ParseStat, OrdinaryProcessFieldsFollowProcFiveNumbering) {
  const auto stat = ParseStat(Fixture("ordinary", "stat"));
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->pid, 5037);
  EXPECT_EQ(stat->comm, "sleep");
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->parent_pid, 4996);
  EXPECT_EQ(stat->flags, 4194560u);
  EXPECT_EQ(stat->flags & kProcessFlagKernelThread, 0u);
  EXPECT_EQ(stat->thread_count, 1);
  EXPECT_EQ(stat->start_time_ticks, 57594u);
  EXPECT_TRUE(stat->has_exit_code);
  EXPECT_EQ(stat->exit_code, 0);
}

TEST(ParseStat, CommWithParenthesesSpacesNewlineAndHighByteEndsAtLastParenthesis) {
  const auto stat = ParseStat(Fixture("weird_comm", "stat"));
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->pid, 5038);
  EXPECT_EQ(stat->comm, kWeirdComm);
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->parent_pid, 4996);
  EXPECT_EQ(stat->thread_count, 1);
  EXPECT_EQ(stat->start_time_ticks, 57595u);
}

TEST(ParseStat, ZombieCarriesRawWaitStatusInFieldFiftyTwo) {
  const auto stat = ParseStat(Fixture("zombie", "stat"));
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->pid, 5039);
  EXPECT_EQ(stat->comm, "python3");
  EXPECT_EQ(stat->state, 'Z');
  EXPECT_EQ(stat->parent_pid, 4996);
  EXPECT_EQ(stat->thread_count, 1);
  EXPECT_EQ(stat->start_time_ticks, 57596u);
  EXPECT_TRUE(stat->has_exit_code);
  EXPECT_EQ(stat->exit_code, 7 << 8);  // _exit(7)
}

TEST(ParseStat, KernelThreadHasKthreadFlag) {
  const auto stat = ParseStat(Fixture("kernel_thread", "stat"));
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->pid, 2);
  EXPECT_EQ(stat->comm, "kthreadd");
  EXPECT_EQ(stat->parent_pid, 0);
  EXPECT_EQ(stat->flags, 2129984u);
  EXPECT_NE(stat->flags & kProcessFlagKernelThread, 0u);
  EXPECT_EQ(stat->start_time_ticks, 25u);
}

TEST(ParseStat, ExitedLeaderShowsZombieStateWhileAnotherThreadRuns) {
  const auto stat = ParseStat(Fixture("leader_exited", "stat"));
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->pid, 5040);
  EXPECT_EQ(stat->state, 'Z');
  EXPECT_EQ(stat->thread_count, 2);
  EXPECT_EQ(stat->exit_code, 0);
}

// ---------------------------------------------------------------------------------------
// ParseStat on hostile or unusual text

// 52 fields in the kernel's format, with the comm and a few fields substituted.
// Appends instead of `" " + std::to_string(...)`: at -O3 GCC 12 inlines operator+(const
// char*, std::string&&) into a memcpy it cannot prove disjoint and warns -Wrestrict on it
// (a false positive; GCC bugs 105329 and 105651), which fails a Release build with -Werror.
std::string MakeStat(const std::string& comm, const std::string& state = "S", const std::string& ppid = "1") {
  std::string text = "42 (" + comm + ") " + state + " " + ppid;
  for (int field = 5; field <= 52; ++field) {
    text += ' ';
    text += std::to_string(field == 22 ? 1234 : field * 10);
  }
  text += '\n';
  return text;
}

TEST(ParseStat, CommHoldingCloseOpenParenthesisIsKeptWhole) {
  const auto stat = ParseStat(MakeStat("a) (b"));
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->comm, "a) (b");
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->parent_pid, 1);
  EXPECT_EQ(stat->flags, 90u);
  EXPECT_EQ(stat->thread_count, 200);
  EXPECT_EQ(stat->start_time_ticks, 1234u);
  EXPECT_EQ(stat->exit_code, 520);
}

TEST(ParseStat, CommImitatingFieldsCannotSpoofState) {
  // A process named "x) Z 999 1" must not look like a zombie child of PID 999.
  const auto stat = ParseStat(MakeStat("x) Z 999 1", "S", "7"));
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->comm, "x) Z 999 1");
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->parent_pid, 7);
}

TEST(ParseStat, EmptyCommIsAccepted) {
  const auto stat = ParseStat(MakeStat(""));
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->comm, "");
}

TEST(ParseStat, OldKernelWithoutExitCodeFieldHasNoExitCode) {
  // Linux < 3.5 printed 44 fields; keep fields 1..44 of the recorded zombie.
  const std::string zombie = Fixture("zombie", "stat");
  std::string old_kernel = zombie;
  size_t position = zombie.rfind(')') + 1;
  for (int field = 3; field <= 44; ++field) position = zombie.find(' ', position) + 1;
  old_kernel.resize(position - 1);
  const auto stat = ParseStat(old_kernel + "\n");
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->state, 'Z');
  EXPECT_EQ(stat->start_time_ticks, 57596u);
  EXPECT_FALSE(stat->has_exit_code);
  EXPECT_EQ(stat->exit_code, 0);
}

TEST(ParseStat, TextWithoutTrailingNewlineParses) {
  std::string text = Fixture("zombie", "stat");
  text.pop_back();
  const auto stat = ParseStat(text);
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->exit_code, 1792);
}

TEST(ParseStat, TruncatedBeforeStartTimeIsRejected) {
  const std::string full = Fixture("ordinary", "stat");
  // The space between fields 21 and 22: the text must reach field 22 (start time).
  size_t space_before_field_22 = full.rfind(')') + 1;  // the space before field 3
  for (int field = 3; field <= 21; ++field) space_before_field_22 = full.find(' ', space_before_field_22 + 1);
  ASSERT_EQ(full.substr(space_before_field_22 + 1, 6), "57594 ");
  // Every prefix that does not reach field 22 is rejected, whatever byte it stops on.
  for (size_t length = 0; length <= space_before_field_22 + 1; ++length) {
    EXPECT_FALSE(ParseStat(std::string_view(full).substr(0, length)).has_value()) << "length " << length;
  }
  // A cut inside field 22 or later cannot be told from a shorter number: it parses.
  const auto shortest = ParseStat(std::string_view(full).substr(0, space_before_field_22 + 2));
  ASSERT_TRUE(shortest.has_value());
  EXPECT_EQ(shortest->start_time_ticks, 5u);
  EXPECT_FALSE(shortest->has_exit_code);
}

TEST(ParseStat, MissingParenthesesAreRejected) {
  EXPECT_FALSE(ParseStat("").has_value());
  EXPECT_FALSE(
      ParseStat("42 sleep S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n").has_value());
  EXPECT_FALSE(
      ParseStat("42 (sleep S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n").has_value());
  EXPECT_FALSE(
      ParseStat("42 sleep) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n").has_value());
  EXPECT_FALSE(
      ParseStat("42 )sleep( S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n").has_value());
}

TEST(ParseStat, NonNumericFieldsAreRejected) {
  EXPECT_FALSE(ParseStat(MakeStat("x", "S", "abc")).has_value());
  EXPECT_FALSE(ParseStat(MakeStat("x", "S", "0x10")).has_value());
  EXPECT_FALSE(ParseStat(MakeStat("x", "S", "-")).has_value());
  EXPECT_FALSE(ParseStat(MakeStat("x", "S", "")).has_value());  // two spaces in a row
  EXPECT_FALSE(ParseStat(MakeStat("x", "SS")).has_value());
  EXPECT_FALSE(ParseStat(MakeStat("x", "")).has_value());
  std::string bad_pid = MakeStat("x");
  bad_pid.replace(0, 2, "4x");
  EXPECT_FALSE(ParseStat(bad_pid).has_value());
  EXPECT_FALSE(ParseStat("(x)" + MakeStat("x").substr(7)).has_value());  // no pid at all
  std::string bad_flags = MakeStat("x");
  bad_flags.replace(bad_flags.find(" 90 "), 4, " 9z ");
  EXPECT_FALSE(ParseStat(bad_flags).has_value());
}

TEST(ParseStat, NegativeFieldsSuchAsTtyProcessGroupAreAccepted) {
  // Field 8 (tpgid) is -1 without a terminal; the recorded ordinary process shows it.
  EXPECT_NE(Fixture("ordinary", "stat").find(" -1 "), std::string::npos);
  EXPECT_TRUE(ParseStat(Fixture("ordinary", "stat")).has_value());
}

TEST(ParseStat, ArbitraryBytesNeverCrash) {
  // Mutations of a real stat line: flipped bytes, cuts and inserted parentheses. Only the
  // absence of a crash (and of sanitizer reports in sanitizer builds) is checked.
  std::mt19937 random(12345);
  const std::string original = Fixture("weird_comm", "stat");
  const std::string specials = "() \n\0-9"s;
  for (int round = 0; round < 20000; ++round) {
    std::string text = original;
    const int edits = 1 + static_cast<int>(random() % 8);
    for (int edit = 0; edit < edits && !text.empty(); ++edit) {
      const size_t position = random() % text.size();
      switch (random() % 4) {
        case 0:
          text[position] = static_cast<char>(random() % 256);
          break;
        case 1:
          text[position] = specials[random() % specials.size()];
          break;
        case 2:
          text.erase(position, random() % 16);
          break;
        default:
          text.insert(position, 1, specials[random() % specials.size()]);
          break;
      }
    }
    (void)ParseStat(text);
    (void)ParseStatus(text);
    (void)ParseCgroup(text);
    (void)ParsePidfdFdinfoPid(text);
  }
}

// ---------------------------------------------------------------------------------------
// ParseStatus

TEST(ParseStatus, OrdinaryProcessSeparatesRealAndEffectiveUid) {
  const auto status = ParseStatus(Fixture("ordinary", "status"));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->name, "sleep");
  EXPECT_EQ(status->state, 'S');
  EXPECT_EQ(status->parent_pid, 4996);
  EXPECT_EQ(status->tracer_pid, 0);
  EXPECT_EQ(status->real_uid, 1000u);
  EXPECT_EQ(status->effective_uid, 65534u);
  EXPECT_EQ(status->thread_count, 1);
}

TEST(ParseStatus, EscapedNameIsUnescapedToTheRealComm) {
  // The kernel writes '\n' as "\n" and '\\' as "\\" in Name:, and 0xff raw.
  const std::string text = Fixture("weird_comm", "status");
  ASSERT_NE(text.find("Name:\ta) (b\\n\xff\\\\ c)\n"), std::string::npos);
  const auto status = ParseStatus(text);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->name, kWeirdComm);
  EXPECT_EQ(status->state, 'S');
  EXPECT_EQ(status->real_uid, 0u);
  EXPECT_EQ(status->effective_uid, 0u);
}

TEST(ParseStatus, RealZombieHasOneThread) {
  const auto status = ParseStatus(Fixture("zombie", "status"));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->name, "python3");
  EXPECT_EQ(status->state, 'Z');
  EXPECT_EQ(status->parent_pid, 4996);
  EXPECT_EQ(status->thread_count, 1);
}

TEST(ParseStatus, ExitedLeaderWithLiveThreadHasTwoThreads) {
  const auto status = ParseStatus(Fixture("leader_exited", "status"));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->state, 'Z');
  EXPECT_EQ(status->thread_count, 2);
}

TEST(ParseStatus, KernelThread) {
  const auto status = ParseStatus(Fixture("kernel_thread", "status"));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->name, "kthreadd");
  EXPECT_EQ(status->parent_pid, 0);
}

constexpr std::string_view kMinimalStatus =
    "Name:\t  lead\\tx\\q\\\n"
    "State:\tt (tracing stop)\n"
    "PPid:\t10\n"
    "TracerPid:\t11\n"
    "Uid:\t12\t13\t14\t15\n"
    "Threads:\t3";

TEST(ParseStatus, LeadingBlanksUnknownEscapesAndMissingFinalNewlineAreKept) {
  const auto status = ParseStatus(kMinimalStatus);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->name, "  lead\tx\\q\\");
  EXPECT_EQ(status->state, 't');
  EXPECT_EQ(status->parent_pid, 10);
  EXPECT_EQ(status->tracer_pid, 11);
  EXPECT_EQ(status->real_uid, 12u);
  EXPECT_EQ(status->effective_uid, 13u);
  EXPECT_EQ(status->thread_count, 3);
}

TEST(ParseStatus, MissingOrMalformedRequiredLineIsRejected) {
  const std::string minimal(kMinimalStatus);
  for (const std::string_view key : {"Name:", "State:", "PPid:", "TracerPid:", "Uid:", "Threads:"}) {
    std::string without = minimal;
    const size_t start = without.find(key);
    without.erase(start, without.find('\n', start) - start);
    EXPECT_FALSE(ParseStatus(without).has_value()) << "without " << key;
  }
  auto replaced = [&minimal](std::string_view from, std::string_view to) {
    std::string text = minimal;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  EXPECT_FALSE(ParseStatus(replaced("Uid:\t12\t13\t14\t15", "Uid:\t12")).has_value());
  EXPECT_FALSE(ParseStatus(replaced("Uid:\t12\t13", "Uid:\t-12\t13")).has_value());
  EXPECT_FALSE(ParseStatus(replaced("PPid:\t10", "PPid:\tten")).has_value());
  EXPECT_FALSE(ParseStatus(replaced("Threads:\t3", "Threads:\t")).has_value());
  EXPECT_FALSE(ParseStatus(replaced("State:\tt (tracing stop)", "State:\t")).has_value());
  EXPECT_FALSE(ParseStatus("").has_value());
}

// ---------------------------------------------------------------------------------------
// ParseCmdline

TEST(ParseCmdline, ArgumentsSplitAtNul) {
  EXPECT_THAT(ParseCmdline(Fixture("ordinary", "cmdline")), ElementsAre("sleep", "1000"));
  EXPECT_THAT(ParseCmdline(Fixture("weird_comm", "cmdline")),
              ElementsAre("/root/.pyenv/versions/3.11.7/bin/python3",
                          "/work/main/tests/fixtures/record_proc_fixtures.py", "rec"));
}

TEST(ParseCmdline, ZombieAndKernelThreadHaveNoArguments) {
  EXPECT_THAT(Fixture("zombie", "cmdline"), IsEmpty());
  EXPECT_THAT(ParseCmdline(Fixture("zombie", "cmdline")), IsEmpty());
  EXPECT_THAT(ParseCmdline(Fixture("kernel_thread", "cmdline")), IsEmpty());
  EXPECT_THAT(ParseCmdline(""), IsEmpty());
  EXPECT_THAT(ParseCmdline("\0\0"s), IsEmpty());
}

TEST(ParseCmdline, LastArgumentWithoutTrailingNulIsKept) {
  EXPECT_THAT(ParseCmdline("a\0bc"s), ElementsAre("a", "bc"));
}

TEST(ParseCmdline, RewrittenArgvIsOneArgument) {
  EXPECT_THAT(ParseCmdline("nginx: master process /usr/sbin/nginx -g daemon off;"),
              ElementsAre("nginx: master process /usr/sbin/nginx -g daemon off;"));
  EXPECT_THAT(ParseCmdline("postgres: checkpointer\0\0\0\0"s), ElementsAre("postgres: checkpointer"));
}

TEST(ParseCmdline, EmptyArgumentInTheMiddleIsKept) {
  EXPECT_THAT(ParseCmdline("a\0\0b\0"s), ElementsAre("a", "", "b"));
}

// ---------------------------------------------------------------------------------------
// ParseCgroup

TEST(ParseCgroup, HybridHostUsesTheUnifiedLineEvenWhenListedLast) {
  const std::string text = Fixture("ordinary", "cgroup");
  ASSERT_NE(text.find("4:memory:/process_api/"), std::string::npos);
  EXPECT_EQ(ParseCgroup(text), "/");
}

TEST(ParseCgroup, PureV2Host) {
  EXPECT_EQ(ParseCgroup(Fixture("cgroup_v2", "cgroup")), "/system.slice/nginx.service");
}

TEST(ParseCgroup, V1HostUsesTheSystemdHierarchy) {
  // Listed first is "11:cpuset:/", which says nothing about the unit.
  EXPECT_EQ(ParseCgroup(Fixture("cgroup_v1", "cgroup")), "/system.slice/nginx.service");
}

TEST(ParseCgroup, V1HostWithoutSystemdUsesTheFirstHierarchy) {
  EXPECT_EQ(ParseCgroup("3:memory:/docker/abc\n2:cpu,cpuacct:/other\n"), "/docker/abc");
}

TEST(ParseCgroup, PathMayContainColons) {
  EXPECT_EQ(ParseCgroup("0::/kubepods/pod:1:2"), "/kubepods/pod:1:2");
}

TEST(ParseCgroup, NoWellFormedLineIsNullopt) {
  EXPECT_EQ(ParseCgroup(""), std::nullopt);
  EXPECT_EQ(ParseCgroup("\n\n"), std::nullopt);
  EXPECT_EQ(ParseCgroup("garbage\n0:no-second-colon\n"), std::nullopt);
}

// ---------------------------------------------------------------------------------------
// ParseComm

TEST(ParseComm, OnlyTheKernelsTrailingNewlineIsRemoved) {
  EXPECT_EQ(ParseComm(Fixture("ordinary", "comm")), "sleep");
  EXPECT_EQ(ParseComm(Fixture("kernel_thread", "comm")), "kthreadd");
  EXPECT_EQ(ParseComm(Fixture("weird_comm", "comm")), kWeirdComm);
  EXPECT_EQ(ParseComm("ends in newline\n\n"), "ends in newline\n");
  EXPECT_EQ(ParseComm("no newline"), "no newline");
  EXPECT_EQ(ParseComm(""), "");
}

// ---------------------------------------------------------------------------------------
// ParsePidfile

TEST(ParsePidfile, DecimalWithSurroundingWhitespace) {
  EXPECT_EQ(ParsePidfile("123"), 123);
  EXPECT_EQ(ParsePidfile("123\n"), 123);
  EXPECT_EQ(ParsePidfile("  123\n"), 123);
  EXPECT_EQ(ParsePidfile("\t4194304\r\n"), 4194304);
}

TEST(ParsePidfile, AnythingElseIsRejected) {
  EXPECT_EQ(ParsePidfile(""), std::nullopt);
  EXPECT_EQ(ParsePidfile(" \n"), std::nullopt);
  EXPECT_EQ(ParsePidfile("12ab"), std::nullopt);
  EXPECT_EQ(ParsePidfile("12 34"), std::nullopt);
  EXPECT_EQ(ParsePidfile("-5"), std::nullopt);
  EXPECT_EQ(ParsePidfile("+5"), std::nullopt);
  EXPECT_EQ(ParsePidfile("0"), std::nullopt);
  EXPECT_EQ(ParsePidfile("2147483648"), std::nullopt);
  EXPECT_EQ(ParsePidfile("99999999999999999999999999"), std::nullopt);
  EXPECT_EQ(ParsePidfile("0x10"), std::nullopt);
  EXPECT_EQ(ParsePidfile("12\0"s), std::nullopt);
}

// ---------------------------------------------------------------------------------------
// ParsePidfdFdinfoPid

TEST(ParsePidfdFdinfoPid, ZombieShowsItsPid) {
  EXPECT_EQ(ParsePidfdFdinfoPid(Fixture("pidfd_zombie", "fdinfo")), 5042);
}

TEST(ParsePidfdFdinfoPid, ReapedProcessShowsMinusOne) {
  EXPECT_EQ(ParsePidfdFdinfoPid(Fixture("pidfd_reaped", "fdinfo")), -1);
}

TEST(ParsePidfdFdinfoPid, OtherPidNamespaceShowsZero) {
  EXPECT_EQ(ParsePidfdFdinfoPid("pos:\t0\nflags:\t02000002\nmnt_id:\t4\nino:\t46106\nPid:\t0\nNSpid:\t0\n"),
            0);
}

TEST(ParsePidfdFdinfoPid, MissingOrMalformedPidLineIsNullopt) {
  EXPECT_EQ(ParsePidfdFdinfoPid(""), std::nullopt);
  EXPECT_EQ(ParsePidfdFdinfoPid("pos:\t0\nNSpid:\t17\n"), std::nullopt);  // only NSpid
  EXPECT_EQ(ParsePidfdFdinfoPid("Pid:\tabc\n"), std::nullopt);
  EXPECT_EQ(ParsePidfdFdinfoPid("Pid:\t\n"), std::nullopt);
}

// ---------------------------------------------------------------------------------------
// Readers

// A fresh directory under the test temp dir, removed at the end of the test.
class TemporaryDirectory {
 public:
  TemporaryDirectory() {
    std::string pattern = ::testing::TempDir() + "procfs_test.XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TemporaryDirectory() {
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ReadFileAt, ReadsOwnStatThroughAProcDirectoryFd) {
  const UniqueFd self(::open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(self.valid());
  int error = -1;
  const auto text = ReadFileAt(self.get(), "stat", 65536, &error);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(error, 0);
  const auto stat = ParseStat(*text);
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->pid, ::getpid());
  EXPECT_EQ(stat->parent_pid, ::getppid());
}

TEST(ReadFileAt, AbsolutePathWithAtFdcwd) {
  const auto text = ReadFileAt(AT_FDCWD, "/proc/self/stat");
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(ParseStat(*text)->pid, ::getpid());
}

TEST(ReadFileAt, MissingFileSetsEnoent) {
  int error = 0;
  EXPECT_EQ(ReadFileAt(AT_FDCWD, "/proc/self/no-such-file", 65536, &error), std::nullopt);
  EXPECT_EQ(error, ENOENT);
  EXPECT_EQ(ReadFileAt(AT_FDCWD, "/proc/self/no-such-file"), std::nullopt);  // no error pointer
}

TEST(ReadFileAt, ReadsPastOnePageUntilEndOfFile) {
  TemporaryDirectory directory;
  ASSERT_FALSE(directory.path().empty());
  std::string content;
  for (int line = 0; content.size() < 20000; ++line) content += "line " + std::to_string(line) + "\n";
  const std::string path = directory.path() + "/big";
  std::ofstream(path, std::ios::binary) << content;
  EXPECT_EQ(ReadFileAt(AT_FDCWD, path.c_str()), content);
  EXPECT_EQ(ReadFileAt(AT_FDCWD, path.c_str(), 5000), content.substr(0, 5000));
  EXPECT_EQ(ReadFileAt(AT_FDCWD, path.c_str(), 0), "");
}

TEST(ReadRecordAt, ReadsOwnStatAndCommThroughAProcDirectoryFd) {
  const UniqueFd self(::open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(self.valid());
  int error = -1;
  const auto stat_text = ReadRecordAt(self.get(), "stat", 4096, &error);
  ASSERT_TRUE(stat_text.has_value());
  EXPECT_EQ(error, 0);
  const auto stat = ParseStat(*stat_text);
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->pid, ::getpid());
  // comm is the thread's own: read the calling thread's (gtest may run on a thread of its own).
  const std::string comm_path = "/proc/thread-self/comm";
  EXPECT_EQ(ReadRecordAt(AT_FDCWD, comm_path.c_str(), 256), ReadFileAt(AT_FDCWD, comm_path.c_str(), 256));
}

TEST(ReadRecordAt, OneReadReturnsWithoutWaitingForEndOfFile) {
  // A FIFO whose write end stays open: reading to end of file would block. A watchdog closes
  // it only after a long wait, so a ReadRecordAt that waited for EOF returns after `closed`
  // was set and fails below instead of hanging.
  TemporaryDirectory directory;
  ASSERT_FALSE(directory.path().empty());
  const std::string path = directory.path() + "/fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  UniqueFd write_end(::open(path.c_str(), O_RDWR | O_CLOEXEC));  // O_RDWR: does not wait for a reader
  ASSERT_TRUE(write_end.valid());
  ASSERT_EQ(::write(write_end.get(), "abc", 3), 3);
  std::mutex mutex;
  std::condition_variable done;
  bool read_returned = false;
  std::atomic<bool> closed{false};
  std::thread watchdog([&] {
    std::unique_lock lock(mutex);
    if (!done.wait_for(lock, std::chrono::seconds(20), [&] { return read_returned; })) {
      closed = true;
      write_end.Reset();
    }
  });
  int error = -1;
  const auto text = ReadRecordAt(AT_FDCWD, path.c_str(), 4096, &error);
  const bool closed_before_return = closed;
  {
    std::lock_guard lock(mutex);
    read_returned = true;
  }
  done.notify_all();
  watchdog.join();
  EXPECT_EQ(text, "abc");
  EXPECT_EQ(error, 0);
  EXPECT_FALSE(closed_before_return);
}

TEST(ReadRecordAt, ReadsAPidfdsFdinfoWholeAsReadFileAtDoes) {
  const UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
  ASSERT_TRUE(pidfd.valid());
  const std::string name = "/proc/self/fdinfo/" + std::to_string(pidfd.get());
  const auto whole = ReadFileAt(AT_FDCWD, name.c_str(), 4096);
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(ReadRecordAt(AT_FDCWD, name.c_str(), 4096), whole);
  EXPECT_EQ(ParsePidfdFdinfoPid(*ReadRecordAt(AT_FDCWD, name.c_str(), 4096)), ::getpid());
}

TEST(ReadRecordAt, LongerTextIsCutAtMaxBytesAndMissingFileSetsEnoent) {
  TemporaryDirectory directory;
  ASSERT_FALSE(directory.path().empty());
  const std::string content(5000, 'x');
  const std::string path = directory.path() + "/long";
  std::ofstream(path, std::ios::binary) << content;
  EXPECT_EQ(ReadRecordAt(AT_FDCWD, path.c_str(), 4096), content.substr(0, 4096));
  EXPECT_EQ(ReadRecordAt(AT_FDCWD, path.c_str(), 10), content.substr(0, 10));
  EXPECT_EQ(ReadRecordAt(AT_FDCWD, path.c_str(), 100000), content.substr(0, 4096));  // one page at most
  int error = 0;
  EXPECT_EQ(ReadRecordAt(AT_FDCWD, "/proc/self/no-such-file", 4096, &error), std::nullopt);
  EXPECT_EQ(error, ENOENT);
}

// Open descriptors counted by asking fcntl about each number: opens nothing of its own.
long ProbeOpenDescriptors() {
  rlimit limit{};
  EXPECT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  const int highest = static_cast<int>(std::min<rlim_t>(limit.rlim_cur, rlim_t{1} << 20));
  long count = 0;
  for (int descriptor = 0; descriptor < highest; ++descriptor) {
    if (::fcntl(descriptor, F_GETFD) != -1) ++count;
  }
  return count;
}

TEST(CountOpenDescriptors, ByListingCountsEveryDescriptorExactly) {
  std::vector<UniqueFd> extra;
  for (int i = 0; i < 50; ++i) extra.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_EQ(CountOpenDescriptorsByListing(), ProbeOpenDescriptors());
}

TEST(CountOpenDescriptors, FromSizeCountsEveryDescriptorExactlyFromLinux62) {
  if (!CountOpenDescriptorsFromSize()) GTEST_SKIP() << "before Linux 6.2: /proc/self/fd reports no size";
  std::vector<UniqueFd> extra;
  for (int i = 0; i < 50; ++i) extra.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_EQ(CountOpenDescriptorsFromSize(), ProbeOpenDescriptors());
}

TEST(ReadLinkAt, LongTargetIsReturnedWhole) {
  TemporaryDirectory directory;
  ASSERT_FALSE(directory.path().empty());
  const std::string target = "/" + std::string(1500, 'x') + "/end";  // beyond any first buffer
  const std::string link = directory.path() + "/link";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  int error = -1;
  EXPECT_EQ(ReadLinkAt(AT_FDCWD, link.c_str(), &error), target);
  EXPECT_EQ(error, 0);
}

TEST(ReadLinkAt, ReadsOwnExeThroughAProcDirectoryFd) {
  const UniqueFd self(::open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(self.valid());
  const auto exe = ReadLinkAt(self.get(), "exe");
  ASSERT_TRUE(exe.has_value());
  EXPECT_EQ(*exe, std::filesystem::read_symlink("/proc/self/exe").string());
}

TEST(ReadLinkAt, MissingLinkSetsEnoentAndRegularFileSetsEinval) {
  int error = 0;
  EXPECT_EQ(ReadLinkAt(AT_FDCWD, "/proc/self/no-such-link", &error), std::nullopt);
  EXPECT_EQ(error, ENOENT);
  EXPECT_EQ(ReadLinkAt(AT_FDCWD, "/proc/self/stat", &error), std::nullopt);
  EXPECT_EQ(error, EINVAL);
}

TEST(ClockTicksPerSecond, MatchesSysconf) {
  EXPECT_EQ(ClockTicksPerSecond(), ::sysconf(_SC_CLK_TCK));
  EXPECT_GT(ClockTicksPerSecond(), 0);
}

}  // namespace
}  // namespace pidfd_exporter
