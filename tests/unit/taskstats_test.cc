#include "taskstats.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "read_until_closed.h"
#include "skip_policy.h"

namespace pidfd_exporter {
namespace {

using Bytes = std::vector<uint8_t>;

// Values from tests/fixtures/taskstats/README.md (the recorder's output).
constexpr uint16_t kFamilyId = 0x1f;  // the id the recording kernel gave "TASKSTATS"
constexpr int kRecorderPid = 4261;
constexpr int kExecChild = 4303;      // exec'd the symlink fixture_exec -> /bin/sh, exit 3
constexpr int kThreadedChild = 4304;  // fixture_group: one thread, then _exit(4)
constexpr int kThreadOfChild = 4305;  // fixture_thread, ended before its leader
constexpr int kKilledChild = 4306;    // fixture_killed, SIGKILL

// Layout of a recorded single-record datagram (nlmsghdr, genlmsghdr, AGGR_PID { PID, STATS }).
constexpr size_t kAggregateOffset = 16 + 4;
constexpr size_t kPidAttributeOffset = kAggregateOffset + 4;
constexpr size_t kStatsAttributeOffset = kPidAttributeOffset + 8;
constexpr size_t kStatsOffset = kStatsAttributeOffset + 4;
constexpr size_t kRecordBytes = 596;  // one record; group_exit.bin adds the 576-byte AGGR_TGID
constexpr size_t kCommOffset = kStatsOffset + 80;

Bytes ReadFixture(const std::string& name) {
  std::ifstream file(std::string(PIDFD_TEST_FIXTURES_DIR) + "/taskstats/" + name, std::ios::binary);
  EXPECT_TRUE(file.good()) << name;
  return Bytes(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

TaskstatsBatch Parse(const Bytes& bytes, uint16_t family_id = kFamilyId) {
  TaskstatsBatch batch;
  ParseTaskstatsMessages(bytes, family_id, &batch);
  return batch;
}

// One record from one recorded datagram.
TaskExitRecord ParseSingle(const std::string& name) {
  const TaskstatsBatch batch = Parse(ReadFixture(name));
  EXPECT_EQ(batch.records.size(), 1u) << name;
  EXPECT_EQ(batch.malformed, 0u) << name;
  return batch.records.empty() ? TaskExitRecord{} : batch.records[0];
}

uint16_t ReadU16(const Bytes& bytes, size_t offset) {
  uint16_t value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

void WriteU16(Bytes* bytes, size_t offset, uint16_t value) {
  std::memcpy(bytes->data() + offset, &value, sizeof value);
}

void WriteU32(Bytes* bytes, size_t offset, uint32_t value) {
  std::memcpy(bytes->data() + offset, &value, sizeof value);
}

struct Expected {
  const char* file;
  TaskExitRecord record;
};

// What each recorded datagram says, as the recorder printed it.
std::vector<Expected> AllFixtures() {
  return {
      {"exec_exit3.bin", {kExecChild, kExecChild, kRecorderPid, 0x300, true, "fixture_exec"}},
      {"thread_exit.bin", {kThreadOfChild, kThreadedChild, kRecorderPid, 0, false, "fixture_thread"}},
      {"group_exit.bin", {kThreadedChild, kThreadedChild, kRecorderPid, 0x400, true, "fixture_group"}},
      {"signal_kill.bin", {kKilledChild, kKilledChild, kRecorderPid, 0x9, true, "fixture_killed"}},
  };
}

void ExpectRecord(const TaskExitRecord& actual, const TaskExitRecord& expected) {
  EXPECT_EQ(actual.pid, expected.pid);
  EXPECT_EQ(actual.tgid, expected.tgid);
  EXPECT_EQ(actual.parent_tgid, expected.parent_tgid);
  EXPECT_EQ(actual.exit_code, expected.exit_code);
  EXPECT_EQ(actual.group_dead, expected.group_dead);
  EXPECT_EQ(actual.comm, expected.comm);
}

// exec_exit3.bin rebuilt with its STATS payload cut to `stats_bytes` (every length field
// adjusted), as a kernel with an older, shorter struct taskstats would send it.
Bytes WithStatsCutTo(size_t stats_bytes) {
  const Bytes fixture = ReadFixture("exec_exit3.bin");
  EXPECT_EQ(fixture.size(), kRecordBytes);
  EXPECT_EQ(ReadU16(fixture, kAggregateOffset + 2), 4);       // TASKSTATS_TYPE_AGGR_PID
  EXPECT_EQ(ReadU16(fixture, kPidAttributeOffset + 2), 1);    // TASKSTATS_TYPE_PID
  EXPECT_EQ(ReadU16(fixture, kStatsAttributeOffset + 2), 3);  // TASKSTATS_TYPE_STATS
  Bytes message(fixture.begin(), fixture.begin() + static_cast<std::ptrdiff_t>(kStatsOffset + stats_bytes));
  message.resize((message.size() + 3) & ~size_t{3}, 0);
  WriteU32(&message, 0, static_cast<uint32_t>(message.size()));
  WriteU16(&message, kAggregateOffset, static_cast<uint16_t>(4 + 8 + 4 + stats_bytes));
  WriteU16(&message, kStatsAttributeOffset, static_cast<uint16_t>(4 + stats_bytes));
  return message;
}

TEST(TaskstatsParseTest, ExecdProcessIsNamedAfterTheSymlinkItRan) {
  const TaskExitRecord record = ParseSingle("exec_exit3.bin");
  EXPECT_EQ(record.pid, kExecChild);
  EXPECT_EQ(record.tgid, kExecChild);
  EXPECT_EQ(record.parent_tgid, kRecorderPid);
  EXPECT_EQ(record.exit_code, 0x300u);
  EXPECT_TRUE(WIFEXITED(record.exit_code));
  EXPECT_EQ(WEXITSTATUS(record.exit_code), 3);
  EXPECT_TRUE(record.group_dead);
  // The kernel names an exec'd process after the path it was given, not the target (dash).
  EXPECT_EQ(record.comm, "fixture_exec");
}

TEST(TaskstatsParseTest, ThreadExitNamesTheThreadAndItsProcess) {
  const TaskExitRecord record = ParseSingle("thread_exit.bin");
  EXPECT_EQ(record.pid, kThreadOfChild);
  EXPECT_EQ(record.tgid, kThreadedChild);
  // A thread's real parent is its process's parent.
  EXPECT_EQ(record.parent_tgid, kRecorderPid);
  // Only a process leader's record carries the exit status.
  EXPECT_EQ(record.exit_code, 0u);
  EXPECT_FALSE(record.group_dead);
  EXPECT_EQ(record.comm, "fixture_thread");
}

TEST(TaskstatsParseTest, LastTaskOfAThreadGroupIsOneRecordDespiteTheAggregate) {
  const Bytes fixture = ReadFixture("group_exit.bin");
  ASSERT_EQ(fixture.size(), 2 * kRecordBytes - 20);
  EXPECT_EQ(ReadU16(fixture, kRecordBytes + 2), 5);  // TASKSTATS_TYPE_AGGR_TGID follows
  const TaskExitRecord record = ParseSingle("group_exit.bin");
  EXPECT_EQ(record.pid, kThreadedChild);
  EXPECT_EQ(record.tgid, kThreadedChild);
  EXPECT_EQ(record.parent_tgid, kRecorderPid);
  EXPECT_EQ(record.exit_code, 0x400u);
  EXPECT_TRUE(record.group_dead);
  EXPECT_EQ(record.comm, "fixture_group");
}

TEST(TaskstatsParseTest, ExitBySigkillHasWaitStatusNine) {
  const TaskExitRecord record = ParseSingle("signal_kill.bin");
  EXPECT_EQ(record.pid, kKilledChild);
  EXPECT_EQ(record.tgid, kKilledChild);
  EXPECT_EQ(record.parent_tgid, kRecorderPid);
  EXPECT_EQ(record.exit_code, 0x9u);
  EXPECT_TRUE(WIFSIGNALED(record.exit_code));
  EXPECT_EQ(WTERMSIG(record.exit_code), SIGKILL);
  EXPECT_TRUE(record.group_dead);
  EXPECT_EQ(record.comm, "fixture_killed");
}

TEST(TaskstatsParseTest, EveryFixtureParsesToItsRecordedValues) {
  for (const Expected& expected : AllFixtures()) {
    SCOPED_TRACE(expected.file);
    ExpectRecord(ParseSingle(expected.file), expected.record);
  }
}

TEST(TaskstatsParseTest, BufferWithSeveralDatagramsYieldsAllRecordsInOrder) {
  Bytes buffer;
  for (const Expected& expected : AllFixtures()) {
    const Bytes fixture = ReadFixture(expected.file);
    buffer.insert(buffer.end(), fixture.begin(), fixture.end());
  }
  const TaskstatsBatch batch = Parse(buffer);
  EXPECT_EQ(batch.malformed, 0u);
  const std::vector<Expected> fixtures = AllFixtures();
  ASSERT_EQ(batch.records.size(), fixtures.size());
  for (size_t i = 0; i < fixtures.size(); ++i) {
    SCOPED_TRACE(fixtures[i].file);
    ExpectRecord(batch.records[i], fixtures[i].record);
  }
}

TEST(TaskstatsParseTest, EveryTruncationYieldsTheRecordOrIsCountedMalformed) {
  for (const Expected& expected : AllFixtures()) {
    const Bytes fixture = ReadFixture(expected.file);
    for (size_t length = 1; length < fixture.size(); ++length) {
      SCOPED_TRACE(std::string(expected.file) + " cut to " + std::to_string(length));
      // An exactly sized heap copy, so that a sanitizer build catches any read past the end.
      Bytes truncated(fixture.begin(), fixture.begin() + static_cast<std::ptrdiff_t>(length));
      // As cut by a short read (nlmsg_len beyond the buffer), then as a message that claims
      // only what is there (the attribute lengths are what must be checked).
      for (const bool claims_only_what_is_there : {false, true}) {
        if (claims_only_what_is_there) {
          if (length < 16) continue;
          WriteU32(&truncated, 0, static_cast<uint32_t>(length));
        }
        const TaskstatsBatch batch = Parse(truncated);
        ASSERT_LE(batch.records.size(), 1u);
        if (batch.records.empty()) {
          EXPECT_GT(batch.malformed, 0u);
        } else {
          ExpectRecord(batch.records[0], expected.record);
        }
      }
    }
  }
  EXPECT_EQ(Parse(Bytes{}).malformed, 0u);
}

TEST(TaskstatsParseTest, OtherFamilyIdIsMalformedAndNoRecord) {
  const Bytes fixture = ReadFixture("exec_exit3.bin");
  for (const uint16_t family_id : {uint16_t{kFamilyId + 1}, uint16_t{0x10}, uint16_t{0}}) {
    const TaskstatsBatch batch = Parse(fixture, family_id);
    EXPECT_TRUE(batch.records.empty()) << family_id;
    EXPECT_EQ(batch.malformed, 1u) << family_id;
  }
}

TEST(TaskstatsParseTest, ErrorNoopAndDoneMessagesAreSkippedQuietly) {
  Bytes buffer(48, 0);
  for (size_t i = 0; i < 3; ++i) {
    WriteU32(&buffer, 16 * i, 16);                     // header only
    buffer[16 * i + 4] = static_cast<uint8_t>(i + 1);  // NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE
  }
  const Bytes fixture = ReadFixture("signal_kill.bin");
  buffer.insert(buffer.end(), fixture.begin(), fixture.end());
  const TaskstatsBatch batch = Parse(buffer);
  EXPECT_EQ(batch.malformed, 0u);
  ASSERT_EQ(batch.records.size(), 1u);
  EXPECT_EQ(batch.records[0].pid, kKilledChild);
}

TEST(TaskstatsParseTest, MessageOfAnotherCommandIsNotARecord) {
  Bytes message = ReadFixture("exec_exit3.bin");
  message[16] = 1;  // TASKSTATS_CMD_GET: the reply to a query, not an exit record
  const TaskstatsBatch batch = Parse(message);
  EXPECT_TRUE(batch.records.empty());
  EXPECT_EQ(batch.malformed, 1u);
}

TEST(TaskstatsParseTest, ProcessAggregateAloneIsNotARecord) {
  // group_exit.bin without its AGGR_PID: the AGGR_TGID aggregate has no name and is no task.
  const Bytes fixture = ReadFixture("group_exit.bin");
  Bytes message(fixture.begin(), fixture.begin() + static_cast<std::ptrdiff_t>(kAggregateOffset));
  message.insert(message.end(), fixture.begin() + static_cast<std::ptrdiff_t>(kRecordBytes), fixture.end());
  WriteU32(&message, 0, static_cast<uint32_t>(message.size()));
  const TaskstatsBatch batch = Parse(message);
  EXPECT_TRUE(batch.records.empty());
  EXPECT_EQ(batch.malformed, 1u);
}

TEST(TaskstatsParseTest, StatsShorterThanThroughTheParentAreNotARecord) {
  for (const size_t stats_bytes : {size_t{0}, size_t{4}, size_t{132}, size_t{135}}) {
    const TaskstatsBatch batch = Parse(WithStatsCutTo(stats_bytes));
    EXPECT_TRUE(batch.records.empty()) << stats_bytes;
    EXPECT_EQ(batch.malformed, 1u) << stats_bytes;
  }
}

TEST(TaskstatsParseTest, StatsWithoutTgidAreARecordWithTgidZero) {
  // 136 bytes reach through ac_ppid; 360 are a struct taskstats older than version 12.
  for (const size_t stats_bytes : {size_t{136}, size_t{360}, size_t{371}}) {
    SCOPED_TRACE(stats_bytes);
    const TaskstatsBatch batch = Parse(WithStatsCutTo(stats_bytes));
    EXPECT_EQ(batch.malformed, 0u);
    ASSERT_EQ(batch.records.size(), 1u);
    ExpectRecord(batch.records[0], {kExecChild, 0, kRecorderPid, 0x300, true, "fixture_exec"});
  }
  const TaskstatsBatch through_tgid = Parse(WithStatsCutTo(372));
  ASSERT_EQ(through_tgid.records.size(), 1u);
  EXPECT_EQ(through_tgid.records[0].tgid, kExecChild);
}

TEST(TaskstatsParseTest, CommWithoutTerminatorIsBoundedToThirtyTwoBytes) {
  Bytes message = ReadFixture("exec_exit3.bin");
  std::memset(message.data() + kCommOffset, 'x', 32);
  const TaskstatsBatch batch = Parse(message);
  ASSERT_EQ(batch.records.size(), 1u);
  EXPECT_EQ(batch.records[0].comm, std::string(32, 'x'));
  EXPECT_EQ(batch.records[0].parent_tgid, kRecorderPid);  // the field after ac_comm is intact
}

TEST(TaskstatsParseTest, ZeroOrHugeNetlinkLengthStopsParsing) {
  for (const uint32_t length : {0u, 15u, 597u, 0xFFFFFFFFu}) {
    Bytes message = ReadFixture("exec_exit3.bin");
    WriteU32(&message, 0, length);
    const TaskstatsBatch batch = Parse(message);
    EXPECT_TRUE(batch.records.empty()) << length;
    EXPECT_EQ(batch.malformed, 1u) << length;
  }
}

TEST(TaskstatsRequestTest, FamilyLookupIsTheNulTerminatedNamePaddedToFourBytes) {
  const std::vector<uint8_t> request = BuildGenericNetlinkRequest(0x10, 3, 2, "TASKSTATS", 7);
  // nlmsghdr: len 36, type GENL_ID_CTRL, flags NLM_F_REQUEST | NLM_F_ACK, seq 7, pid 0.
  // genlmsghdr: CTRL_CMD_GETFAMILY, version 1. Attribute: len 14 (4 + "TASKSTATS" + NUL), type
  // CTRL_ATTR_FAMILY_NAME, then two bytes of padding.
  const std::vector<uint8_t> expected = {
      36, 0, 0,  0, 0x10, 0, 0x05, 0x00, 7,   0,   0,   0,   0,   0,   0,   0, 3, 1,
      0,  0, 14, 0, 2,    0, 'T',  'A',  'S', 'K', 'S', 'T', 'A', 'T', 'S', 0, 0, 0,
  };
  EXPECT_EQ(request, expected);
}

TEST(TaskstatsRequestTest, RegistrationCarriesTheCpuMask) {
  // "0-1" + NUL fills the attribute to 8 bytes: no padding.
  const std::vector<uint8_t> request = BuildGenericNetlinkRequest(kFamilyId, 1, 3, "0-1", 0x01020304);
  const std::vector<uint8_t> expected = {
      28, 0, 0, 0, kFamilyId, 0, 0x05, 0x00, 4, 3, 2, 1, 0, 0, 0, 0, 1, 1, 0, 0, 8, 0, 3, 0, '0', '-', '1', 0,
  };
  EXPECT_EQ(request, expected);
  // "0" + NUL: two bytes, padded to four.
  const std::vector<uint8_t> one_cpu = BuildGenericNetlinkRequest(kFamilyId, 1, 4, "0", 9);
  ASSERT_EQ(one_cpu.size(), 28u);
  EXPECT_EQ(one_cpu[0], 28);
  EXPECT_EQ(one_cpu[20], 6);  // the attribute's length excludes its padding
  EXPECT_EQ(one_cpu[22], 4);  // TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK
  EXPECT_EQ(std::vector<uint8_t>(one_cpu.begin() + 24, one_cpu.end()), (std::vector<uint8_t>{'0', 0, 0, 0}));
}

// ---- Live tests against this kernel. Registering needs CAP_NET_ADMIN and the initial network,
// PID and user namespaces; elsewhere they skip with Open()'s reason.

uint64_t MonotonicNowNs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000u + static_cast<uint64_t>(now.tv_nsec);
}

// Receives until the record of `pid` arrives or the deadline passes. Every exit on the machine
// is reported, so the others are read and dropped.
std::optional<TaskExitRecord> ReceiveRecordOf(TaskstatsListener* listener, int pid) {
  const uint64_t deadline = MonotonicNowNs() + 5'000'000'000u;
  for (uint64_t now = MonotonicNowNs(); now < deadline; now = MonotonicNowNs()) {
    TaskstatsBatch batch;
    std::string error;
    const TaskstatsListener::ReceiveStatus status = listener->Receive(&batch, &error);
    EXPECT_NE(status, TaskstatsListener::ReceiveStatus::kError) << error;
    if (status == TaskstatsListener::ReceiveStatus::kError) break;
    for (const TaskExitRecord& record : batch.records) {
      if (record.pid == pid) return record;
    }
    if (status == TaskstatsListener::ReceiveStatus::kWouldBlock) {
      pollfd readable{.fd = listener->fd(), .events = POLLIN, .revents = 0};
      poll(&readable, 1, static_cast<int>((deadline - now) / 1'000'000 + 1));
    }
  }
  return std::nullopt;
}

// A directory holding a symlink named `name` to `target`; both removed on destruction.
class ScopedSymlink {
 public:
  ScopedSymlink(const char* name, const char* target) {
    char directory[] = "/tmp/taskstats_test_XXXXXX";
    if (mkdtemp(directory) == nullptr) return;
    directory_ = directory;
    path_ = directory_ + "/" + name;
    if (symlink(target, path_.c_str()) != 0) path_.clear();
  }
  ~ScopedSymlink() {
    if (!path_.empty()) unlink(path_.c_str());
    if (!directory_.empty()) rmdir(directory_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string directory_;
  std::string path_;
};

TEST(TaskstatsListenerTest, RecordsAnExecdChildsNameAndExitCode) {
  if (geteuid() != 0) SKIP_UNLESS_CI("registering for taskstats needs root (CAP_NET_ADMIN)");
  std::string error;
  std::unique_ptr<TaskstatsListener> listener =
      TaskstatsListener::Open(TaskstatsListener::kDefaultReceiveBufferBytes, &error);
  if (listener == nullptr) SKIP_UNLESS_CI("taskstats unavailable: " << error);
  EXPECT_GE(listener->fd(), 0);
  EXPECT_GT(listener->receive_buffer_bytes(), 0u);

  const ScopedSymlink link("ts_unit_exec", "/bin/sh");
  ASSERT_FALSE(link.path().empty()) << "cannot create a symlink under /tmp";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    execl(link.path().c_str(), "ts_unit_exec", "-c", "exit 7", static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_EQ(status, 7 << 8);

  const std::optional<TaskExitRecord> record = ReceiveRecordOf(listener.get(), child);
  ASSERT_TRUE(record.has_value()) << "no exit record for pid " << child << " within 5 s";
  EXPECT_EQ(record->comm, "ts_unit_exec");
  EXPECT_EQ(record->exit_code, 7u << 8);
  EXPECT_EQ(record->tgid, child);
  EXPECT_EQ(record->parent_tgid, getpid());
  EXPECT_TRUE(record->group_dead);
}

// Any local process may unicast to the listener's netlink port: a record it forges must not be
// taken for the kernel's.
TEST(TaskstatsListenerTest, RecordsForgedByAnotherSocketAreRejected) {
  if (geteuid() != 0) SKIP_UNLESS_CI("registering for taskstats needs root (CAP_NET_ADMIN)");
  std::string error;
  std::unique_ptr<TaskstatsListener> listener =
      TaskstatsListener::Open(TaskstatsListener::kDefaultReceiveBufferBytes, &error);
  if (listener == nullptr) SKIP_UNLESS_CI("taskstats unavailable: " << error);
  sockaddr_nl listener_address{};
  socklen_t address_size = sizeof listener_address;
  ASSERT_EQ(getsockname(listener->fd(), reinterpret_cast<sockaddr*>(&listener_address), &address_size), 0);

  // The recorded exit of fixture_exec, retyped with this kernel's family id and given a PID no
  // real task can have, so that only the forgery could produce it.
  Bytes forged = ReadFixture("exec_exit3.bin");
  const uint16_t family = listener->family_id();
  std::memcpy(forged.data() + 4, &family, sizeof family);
  constexpr uint32_t kForgedPid = 0x7ffffff0;  // above any pid_max
  std::memcpy(forged.data() + kPidAttributeOffset + 4, &kForgedPid, sizeof kForgedPid);
  TaskstatsBatch control;
  ParseTaskstatsMessages(forged, family, &control);
  ASSERT_EQ(control.records.size(), 1u) << "the forged bytes are a well-formed record";
  ASSERT_EQ(control.records[0].pid, static_cast<int>(kForgedPid));

  const int sender = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  ASSERT_GE(sender, 0) << strerror(errno);
  sockaddr_nl destination{};
  destination.nl_family = AF_NETLINK;
  destination.nl_pid = listener_address.nl_pid;
  const ssize_t sent = sendto(sender, forged.data(), forged.size(), 0,
                              reinterpret_cast<const sockaddr*>(&destination), sizeof destination);
  const int send_errno = errno;
  close(sender);
  ASSERT_EQ(sent, static_cast<ssize_t>(forged.size())) << strerror(send_errno);

  // Queued now: read everything there is (the host's real records too).
  TaskstatsBatch batch;
  for (;;) {
    const TaskstatsListener::ReceiveStatus status = listener->Receive(&batch, &error);
    ASSERT_NE(status, TaskstatsListener::ReceiveStatus::kError) << error;
    if (status == TaskstatsListener::ReceiveStatus::kWouldBlock) break;
  }
  EXPECT_GE(batch.malformed, 1u) << "the forged datagram was not counted as rejected";
  for (const TaskExitRecord& record : batch.records) EXPECT_NE(record.pid, static_cast<int>(kForgedPid));
}

// Drops CAP_NET_ADMIN from the calling process's effective, permitted and inheritable sets.
bool DropNetAdmin() {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  const size_t index = CAP_TO_INDEX(CAP_NET_ADMIN);
  const uint32_t mask = CAP_TO_MASK(CAP_NET_ADMIN);
  data[index].effective &= ~mask;
  data[index].permitted &= ~mask;
  data[index].inheritable &= ~mask;
  return syscall(SYS_capset, &header, data) == 0;
}

TEST(TaskstatsListenerTest, OpenWithoutCapNetAdminNamesTheCapability) {
  std::string error;
  if (TaskstatsListener::Open(0, &error) == nullptr) SKIP_UNLESS_CI("taskstats unavailable: " << error);
  // Registration works here; a child that lost only CAP_NET_ADMIN reports Open()'s refusal.
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipe_fds[0]);
    if (!DropNetAdmin()) _exit(2);
    std::string child_error;
    if (TaskstatsListener::Open(0, &child_error) != nullptr) child_error = "Open() succeeded";
    if (write(pipe_fds[1], child_error.data(), child_error.size()) < 0) _exit(3);
    _exit(0);
  }
  close(pipe_fds[1]);
  const std::string text = ReadUntilClosed(pipe_fds[0]);
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  EXPECT_NE(text.find("CAP_NET_ADMIN"), std::string::npos) << text;
}

// The usage fields of recorded records (values read from the recordings at the struct
// taskstats offsets: cpu_run_virtual_total 72, ac_utime 152, ac_stime 160, hiwater_rss 200).
TEST(TaskstatsUsageTest, RecordedRecordsCarryUsage) {
  const TaskstatsBatch killed = Parse(ReadFixture("signal_kill.bin"));
  ASSERT_EQ(killed.records.size(), 1u);
  EXPECT_EQ(killed.records[0].runtime_nanoseconds, 729355u);
  EXPECT_EQ(killed.records[0].user_microseconds, 0u);
  EXPECT_EQ(killed.records[0].system_microseconds, 4000u);
  EXPECT_EQ(killed.records[0].peak_rss_kib, 11884u);
  EXPECT_EQ(killed.records[0].read_bytes, 0u);
  const TaskstatsBatch exec = Parse(ReadFixture("exec_exit3.bin"));
  ASSERT_EQ(exec.records.size(), 1u);
  EXPECT_EQ(exec.records[0].runtime_nanoseconds, 619020u);
  EXPECT_EQ(exec.records[0].peak_rss_kib, 1452u);
}

}  // namespace
}  // namespace pidfd_exporter
