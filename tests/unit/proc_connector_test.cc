#include "proc_connector.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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
using Kind = ProcEvent::Kind;

// Values from tests/fixtures/connector/README.md (the recorder's output).
constexpr int kRecorderPid = 7210;
constexpr int kChildA = 7211;  // renames itself, runs one thread, _exit(3)
constexpr int kThreadOfA = 7212;
constexpr int kChildB = 7213;  // execs sleep, killed by SIGKILL
constexpr size_t kMessageSize = 76;

Bytes ReadFixture(const std::string& name) {
  std::ifstream file(std::string(PIDFD_TEST_FIXTURES_DIR) + "/connector/" + name, std::ios::binary);
  EXPECT_TRUE(file.good()) << name;
  return Bytes(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

ConnectorBatch Parse(const Bytes& bytes, ConnectorSequenceTracker* tracker = nullptr) {
  ConnectorBatch batch;
  ParseConnectorMessages(bytes, tracker, &batch);
  return batch;
}

// One event from one recorded message.
ProcEvent ParseSingle(const std::string& name) {
  const ConnectorBatch batch = Parse(ReadFixture(name));
  EXPECT_EQ(batch.events.size(), 1u) << name;
  EXPECT_EQ(batch.malformed, 0u) << name;
  return batch.events.empty() ? ProcEvent{} : batch.events[0];
}

void WriteU32(Bytes* bytes, size_t offset, uint32_t value) {
  std::memcpy(bytes->data() + offset, &value, sizeof value);
}

// Offsets inside one 76-byte message.
constexpr size_t kSequenceOffset = 16 + 8;
constexpr size_t kCpuOffset = 36 + 4;

TEST(ProcConnectorParseTest, ForkEventNamesParentAndChild) {
  const ProcEvent event = ParseSingle("message_01.bin");
  EXPECT_EQ(event.kind, Kind::kFork);
  EXPECT_EQ(event.what, 0x1u);
  EXPECT_EQ(event.cpu, 0);
  EXPECT_EQ(event.timestamp_ns, 812968175308u);
  EXPECT_EQ(event.parent_pid, kRecorderPid);
  EXPECT_EQ(event.parent_tgid, kRecorderPid);
  EXPECT_EQ(event.pid, kChildA);
  EXPECT_EQ(event.tgid, kChildA);
  EXPECT_FALSE(event.IsThreadEvent());
}

TEST(ProcConnectorParseTest, CommEventCarriesTheNewName) {
  const ProcEvent event = ParseSingle("message_02.bin");
  EXPECT_EQ(event.kind, Kind::kComm);
  EXPECT_EQ(event.pid, kChildA);
  EXPECT_EQ(event.tgid, kChildA);
  EXPECT_EQ(event.comm, "cn_fixture");
  EXPECT_EQ(event.timestamp_ns, 812968247366u);
}

TEST(ProcConnectorParseTest, ThreadCreationIsAThreadEventWithTheProcessParent) {
  const ProcEvent event = ParseSingle("message_03.bin");
  EXPECT_EQ(event.kind, Kind::kFork);
  EXPECT_EQ(event.pid, kThreadOfA);
  EXPECT_EQ(event.tgid, kChildA);
  EXPECT_TRUE(event.IsThreadEvent());
  // The kernel names the parent of the thread's process, not the creating thread.
  EXPECT_EQ(event.parent_pid, kRecorderPid);
  EXPECT_EQ(event.parent_tgid, kRecorderPid);
}

TEST(ProcConnectorParseTest, ThreadExitIsAThreadEventWithoutParentOrSignal) {
  const ProcEvent event = ParseSingle("message_04.bin");
  EXPECT_EQ(event.kind, Kind::kExit);
  EXPECT_EQ(event.pid, kThreadOfA);
  EXPECT_EQ(event.tgid, kChildA);
  EXPECT_TRUE(event.IsThreadEvent());
  EXPECT_EQ(event.exit_code, 0u);
  EXPECT_EQ(event.exit_signal, -1);
  EXPECT_EQ(event.parent_pid, 0);
  EXPECT_EQ(event.parent_tgid, 0);
}

TEST(ProcConnectorParseTest, ExitEventCarriesRawWaitStatusOfExitThree) {
  const ProcEvent event = ParseSingle("message_05.bin");
  EXPECT_EQ(event.kind, Kind::kExit);
  EXPECT_EQ(event.pid, kChildA);
  EXPECT_EQ(event.tgid, kChildA);
  EXPECT_FALSE(event.IsThreadEvent());
  EXPECT_EQ(event.exit_code, 0x300u);
  EXPECT_TRUE(WIFEXITED(event.exit_code));
  EXPECT_EQ(WEXITSTATUS(event.exit_code), 3);
  EXPECT_EQ(event.exit_signal, SIGCHLD);
  EXPECT_EQ(event.parent_pid, kRecorderPid);
  EXPECT_EQ(event.parent_tgid, kRecorderPid);
  EXPECT_EQ(event.timestamp_ns, 812968435929u);
}

TEST(ProcConnectorParseTest, ExecEventNamesTheProcess) {
  const ProcEvent event = ParseSingle("message_07.bin");
  EXPECT_EQ(event.kind, Kind::kExec);
  EXPECT_EQ(event.what, 0x2u);
  EXPECT_EQ(event.pid, kChildB);
  EXPECT_EQ(event.tgid, kChildB);
}

TEST(ProcConnectorParseTest, ExitBySigkillHasWaitStatusNine) {
  const ProcEvent event = ParseSingle("message_08.bin");
  EXPECT_EQ(event.kind, Kind::kExit);
  EXPECT_EQ(event.pid, kChildB);
  EXPECT_EQ(event.exit_code, 0x9u);
  EXPECT_TRUE(WIFSIGNALED(event.exit_code));
  EXPECT_EQ(WTERMSIG(event.exit_code), SIGKILL);
  EXPECT_EQ(event.exit_signal, SIGCHLD);
  EXPECT_EQ(event.parent_tgid, kRecorderPid);
}

TEST(ProcConnectorParseTest, AcknowledgementIsReportedAsAckNotAsEvent) {
  const ConnectorBatch batch = Parse(ReadFixture("message_00.bin"));
  EXPECT_TRUE(batch.events.empty());
  ASSERT_EQ(batch.acks.size(), 1u);
  EXPECT_EQ(batch.acks[0].acknowledge, 42u);  // the recorder sent ack 41
  EXPECT_EQ(batch.acks[0].error, 0u);
  EXPECT_EQ(batch.malformed, 0u);
}

TEST(ProcConnectorParseTest, BufferWithSeveralMessagesYieldsAllEventsInOrder) {
  ConnectorSequenceTracker tracker;
  const ConnectorBatch batch = Parse(ReadFixture("stream.bin"), &tracker);
  EXPECT_FALSE(batch.lost);
  EXPECT_EQ(batch.malformed, 0u);
  EXPECT_EQ(batch.acks.size(), 1u);
  ASSERT_EQ(batch.events.size(), 8u);
  const std::vector<Kind> kinds = {Kind::kFork, Kind::kComm, Kind::kFork, Kind::kExit,
                                   Kind::kExit, Kind::kFork, Kind::kExec, Kind::kExit};
  const std::vector<int> pids = {kChildA, kChildA, kThreadOfA, kThreadOfA,
                                 kChildA, kChildB, kChildB,    kChildB};
  for (size_t i = 0; i < batch.events.size(); ++i) {
    EXPECT_EQ(batch.events[i].kind, kinds[i]) << i;
    EXPECT_EQ(batch.events[i].pid, pids[i]) << i;
  }
  for (size_t i = 1; i < batch.events.size(); ++i) {
    EXPECT_LT(batch.events[i - 1].timestamp_ns, batch.events[i].timestamp_ns) << i;
  }
}

TEST(ProcConnectorParseTest, DroppedMessageIsReportedAsSequenceGap) {
  const Bytes stream = ReadFixture("stream.bin");
  // Remove message 4 (the thread's exit, sequence 27) as the kernel would on overflow.
  Bytes with_gap(stream.begin(), stream.begin() + 4 * kMessageSize);
  with_gap.insert(with_gap.end(), stream.begin() + 5 * kMessageSize, stream.end());
  ConnectorSequenceTracker tracker;
  const ConnectorBatch batch = Parse(with_gap, &tracker);
  EXPECT_TRUE(batch.lost);
  EXPECT_EQ(batch.events.size(), 7u);
  EXPECT_EQ(batch.malformed, 0u);
}

TEST(ProcConnectorParseTest, GapAcrossTwoBuffersIsReportedOnTheSecond) {
  const Bytes stream = ReadFixture("stream.bin");
  ConnectorSequenceTracker tracker;
  EXPECT_FALSE(Parse(Bytes(stream.begin(), stream.begin() + 3 * kMessageSize), &tracker).lost);
  EXPECT_FALSE(Parse(ReadFixture("message_03.bin"), &tracker).lost);
  EXPECT_TRUE(Parse(ReadFixture("message_05.bin"), &tracker).lost);   // 27 is missing
  EXPECT_FALSE(Parse(ReadFixture("message_06.bin"), &tracker).lost);  // 29 follows 28
}

TEST(ProcConnectorParseTest, AcknowledgementWithoutCpuIsNotSequenceTracked) {
  // Older kernels stamp acks with cpu -1 and the request's own sequence number.
  Bytes stream = ReadFixture("stream.bin");
  WriteU32(&stream, kCpuOffset, 0xFFFFFFFF);
  WriteU32(&stream, kSequenceOffset, 7);
  ConnectorSequenceTracker tracker;
  const ConnectorBatch batch = Parse(stream, &tracker);
  EXPECT_FALSE(batch.lost);
  EXPECT_EQ(batch.acks.size(), 1u);
  EXPECT_EQ(batch.events.size(), 8u);
}

TEST(ProcConnectorParseTest, EveryTruncationOfAMessageIsSkippedAndCounted) {
  const Bytes message = ReadFixture("message_05.bin");
  ASSERT_EQ(message.size(), kMessageSize);
  for (size_t length = 1; length < message.size(); ++length) {
    // An exactly sized heap copy, so that a sanitizer build catches any read past the end.
    const Bytes truncated(message.begin(), message.begin() + length);
    ConnectorSequenceTracker tracker;
    const ConnectorBatch batch = Parse(truncated, &tracker);
    EXPECT_TRUE(batch.events.empty()) << length;
    EXPECT_EQ(batch.malformed, 1u) << length;
  }
  EXPECT_EQ(Parse(Bytes{}).malformed, 0u);
}

TEST(ProcConnectorParseTest, MessagesBeforeATruncatedOneAreKept) {
  const Bytes stream = ReadFixture("stream.bin");
  const Bytes truncated(stream.begin(), stream.begin() + 2 * kMessageSize + 40);
  const ConnectorBatch batch = Parse(truncated);
  EXPECT_EQ(batch.acks.size(), 1u);
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_EQ(batch.events[0].kind, Kind::kFork);
  EXPECT_EQ(batch.malformed, 1u);
}

TEST(ProcConnectorParseTest, ShortProcEventInsideAWellFormedMessageIsSkipped) {
  // cn_msg.len says 12 bytes: too short for a proc_event header; the next message still parses.
  Bytes first = ReadFixture("message_01.bin");
  first[16 + 16] = 12;
  first[16 + 17] = 0;
  Bytes buffer = first;
  const Bytes second = ReadFixture("message_02.bin");
  buffer.insert(buffer.end(), second.begin(), second.end());
  const ConnectorBatch batch = Parse(buffer);
  EXPECT_EQ(batch.malformed, 1u);
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_EQ(batch.events[0].kind, Kind::kComm);
}

TEST(ProcConnectorParseTest, CnMessageLengthBeyondTheNetlinkMessageIsMalformed) {
  Bytes message = ReadFixture("message_01.bin");
  message[16 + 16] = 41;  // one byte more than the 40 that follow
  const ConnectorBatch batch = Parse(message);
  EXPECT_TRUE(batch.events.empty());
  EXPECT_EQ(batch.malformed, 1u);
}

TEST(ProcConnectorParseTest, OtherConnectorIdIsNotAProcEvent) {
  Bytes message = ReadFixture("message_01.bin");
  WriteU32(&message, 16, 2);  // CN_IDX_CIFS
  const ConnectorBatch batch = Parse(message);
  EXPECT_TRUE(batch.events.empty());
  EXPECT_EQ(batch.malformed, 1u);
}

TEST(ProcConnectorParseTest, NoopAndErrorMessagesAreSkippedQuietly) {
  Bytes buffer(32, 0);
  WriteU32(&buffer, 0, 16);  // NLMSG_NOOP, header only
  buffer[4] = 1;
  WriteU32(&buffer, 16, 16);  // NLMSG_ERROR, header only
  buffer[16 + 4] = 2;
  const Bytes fork = ReadFixture("message_01.bin");
  buffer.insert(buffer.end(), fork.begin(), fork.end());
  const ConnectorBatch batch = Parse(buffer);
  EXPECT_EQ(batch.malformed, 0u);
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_EQ(batch.events[0].pid, kChildA);
}

TEST(ProcConnectorParseTest, ZeroOrHugeNetlinkLengthStopsParsing) {
  for (uint32_t length : {0u, 15u, 77u, 0xFFFFFFFFu}) {
    Bytes message = ReadFixture("message_01.bin");
    WriteU32(&message, 0, length);
    const ConnectorBatch batch = Parse(message);
    EXPECT_TRUE(batch.events.empty()) << length;
    EXPECT_EQ(batch.malformed, 1u) << length;
  }
}

TEST(ProcConnectorParseTest, CommWithoutTerminatorIsBoundedToSixteenBytes) {
  Bytes message = ReadFixture("message_02.bin");
  std::memset(message.data() + 36 + 16 + 8, 'x', 16);
  const ProcEvent event = Parse(message).events.at(0);
  EXPECT_EQ(event.comm, std::string(16, 'x'));
}

TEST(ProcConnectorParseTest, RandomGarbageNeverYieldsMoreEventsThanFit) {
  uint64_t state = 0x9E3779B97F4A7C15u;  // fixed seed: the same bytes every run
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  const Bytes fork = ReadFixture("message_01.bin");
  for (int round = 0; round < 2000; ++round) {
    // Half the rounds mutate real messages, so that the checks past the netlink header run.
    Bytes buffer;
    if (round % 2 == 0) {
      buffer.resize(next() % 300);
      for (uint8_t& byte : buffer) byte = static_cast<uint8_t>(next());
    } else {
      for (int i = 0; i < 3; ++i) buffer.insert(buffer.end(), fork.begin(), fork.end());
      for (int flips = 0; flips < 4; ++flips) buffer[next() % buffer.size()] = static_cast<uint8_t>(next());
      buffer.resize(next() % (buffer.size() + 1));
    }
    ConnectorSequenceTracker tracker;
    const ConnectorBatch batch = Parse(buffer, &tracker);
    EXPECT_LE(batch.events.size() + batch.acks.size(), buffer.size() / 36) << round;
  }
}

TEST(ProcConnectorSequenceTrackerTest, FirstNumberPerCpuIsABaseline) {
  ConnectorSequenceTracker tracker;
  EXPECT_TRUE(tracker.Observe(0, 100));
  EXPECT_TRUE(tracker.Observe(1, 5));
  EXPECT_TRUE(tracker.Observe(0, 101));
  EXPECT_TRUE(tracker.Observe(1, 6));
}

TEST(ProcConnectorSequenceTrackerTest, SkippedNumberIsAGapOnlyOnItsCpu) {
  ConnectorSequenceTracker tracker;
  EXPECT_TRUE(tracker.Observe(0, 10));
  EXPECT_TRUE(tracker.Observe(1, 10));
  EXPECT_FALSE(tracker.Observe(0, 12));
  EXPECT_TRUE(tracker.Observe(0, 13));  // the gap is reported once
  EXPECT_TRUE(tracker.Observe(1, 11));
}

TEST(ProcConnectorSequenceTrackerTest, RepeatedOrOlderNumberIsAGap) {
  ConnectorSequenceTracker tracker;
  EXPECT_TRUE(tracker.Observe(3, 50));
  EXPECT_FALSE(tracker.Observe(3, 50));
  EXPECT_FALSE(tracker.Observe(3, 40));
}

TEST(ProcConnectorSequenceTrackerTest, CounterWrapIsNotAGap) {
  ConnectorSequenceTracker tracker;
  EXPECT_TRUE(tracker.Observe(0, 0xFFFFFFFFu));
  EXPECT_TRUE(tracker.Observe(0, 0));
}

TEST(ProcConnectorSequenceTrackerTest, ResetMakesTheNextNumberABaseline) {
  ConnectorSequenceTracker tracker;
  EXPECT_TRUE(tracker.Observe(0, 10));
  tracker.Reset();
  EXPECT_TRUE(tracker.Observe(0, 500));
  EXPECT_TRUE(tracker.Observe(0, 501));
}

TEST(ProcConnectorSequenceTrackerTest, ImplausibleCpuIsIgnored) {
  ConnectorSequenceTracker tracker;
  EXPECT_TRUE(tracker.Observe(0xFFFFFFF0u, 1));
  EXPECT_TRUE(tracker.Observe(0xFFFFFFF0u, 9));
}

TEST(ProcConnectorRequestTest, ListenRequestIsTheFourByteMulticastOp) {
  const std::vector<uint8_t> request = BuildConnectorRequest(/*listen=*/true, 41);
  ASSERT_EQ(request.size(), 40u);
  auto u32 = [&request](size_t offset) {
    uint32_t value;
    std::memcpy(&value, request.data() + offset, sizeof value);
    return value;
  };
  EXPECT_EQ(u32(0), 40u);                              // nlmsg_len
  EXPECT_EQ(request[4], 3);                            // NLMSG_DONE
  EXPECT_EQ(u32(16), 1u);                              // CN_IDX_PROC
  EXPECT_EQ(u32(20), 1u);                              // CN_VAL_PROC
  EXPECT_EQ(u32(28), 41u);                             // ack cookie
  EXPECT_EQ(request[32], 4);                           // cn_msg.len
  EXPECT_EQ(u32(36), 1u);                              // PROC_CN_MCAST_LISTEN
  EXPECT_EQ(BuildConnectorRequest(false, 41)[36], 2);  // PROC_CN_MCAST_IGNORE
}

// --- the kernel-side filter, run in user space on recorded datagrams ---

// Runs a classic BPF program the way the kernel runs a socket filter (net/core/filter.c for
// the instructions ConnectorFilterProgram uses; any other instruction fails the test): the
// result is how many bytes of the datagram are kept, 0 = dropped. A load outside the packet
// drops it, as in the kernel.
uint32_t RunSocketFilter(const std::vector<sock_filter>& program, const Bytes& packet) {
  uint32_t accumulator = 0;
  uint32_t index = 0;
  for (size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& instruction = program[pc];
    switch (instruction.code) {
      case BPF_LD | BPF_W | BPF_LEN:
        accumulator = static_cast<uint32_t>(packet.size());
        break;
      case BPF_LD | BPF_W | BPF_ABS: {
        if (instruction.k + 4 > packet.size()) return 0;
        uint32_t word;
        std::memcpy(&word, packet.data() + instruction.k, 4);
        accumulator = ntohl(word);  // network byte order, as the kernel loads it
        break;
      }
      case BPF_MISC | BPF_TAX:
        index = accumulator;
        break;
      case BPF_JMP | BPF_JA:
        pc += instruction.k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += accumulator == instruction.k ? instruction.jt : instruction.jf;
        break;
      case BPF_JMP | BPF_JEQ | BPF_X:
        pc += accumulator == index ? instruction.jt : instruction.jf;
        break;
      case BPF_JMP | BPF_JGE | BPF_K:
        pc += accumulator >= instruction.k ? instruction.jt : instruction.jf;
        break;
      case BPF_RET | BPF_K:
        return instruction.k;
      default:
        ADD_FAILURE() << "instruction " << instruction.code << " not interpreted";
        return 0;
    }
  }
  ADD_FAILURE() << "program ran off its end";
  return 0;
}

bool FilterKeeps(const Bytes& packet) {
  return RunSocketFilter(ConnectorFilterProgram(), packet) >= packet.size();
}

TEST(ProcConnectorFilterTest, KeepsProcessEventsAndTheAcknowledgement) {
  for (const char* name : {"message_00.bin", "message_01.bin", "message_02.bin", "message_05.bin",
                           "message_06.bin", "message_07.bin", "message_08.bin"}) {
    EXPECT_TRUE(FilterKeeps(ReadFixture(name))) << name;
  }
}

TEST(ProcConnectorFilterTest, DropsThreadCreationAndThreadExit) {
  EXPECT_FALSE(FilterKeeps(ReadFixture("message_03.bin")));  // fork: child 7212, tgid 7211
  EXPECT_FALSE(FilterKeeps(ReadFixture("message_04.bin")));  // exit of thread 7212/7211
}

TEST(ProcConnectorFilterTest, DropsAThreadsRenameAndEventTypesNobodyUses) {
  Bytes rename = ReadFixture("message_02.bin");  // comm of 7211/7211
  WriteU32(&rename, 36 + 16, kThreadOfA);        // process_pid: now a thread's
  EXPECT_FALSE(FilterKeeps(rename));
  // PROC_EVENT_UID, GID, PTRACE, SID, COREDUMP, NONZERO_EXIT, each about the process itself.
  for (uint32_t what : {0x4u, 0x40u, 0x100u, 0x80u, 0x40000000u, 0x20000000u}) {
    Bytes other = ReadFixture("message_07.bin");  // exec of 7213/7213
    WriteU32(&other, 36, what);
    EXPECT_FALSE(FilterKeeps(other)) << std::hex << what;
  }
}

TEST(ProcConnectorFilterTest, KeepsWhatItCannotReadForTheParserToCount) {
  const Bytes fork = ReadFixture("message_01.bin");
  for (size_t length = 0; length < 68; ++length) {
    EXPECT_TRUE(FilterKeeps(Bytes(fork.begin(), fork.begin() + static_cast<std::ptrdiff_t>(length))))
        << length;
  }
  Bytes other_connector = ReadFixture("message_03.bin");  // a thread fork, but not CN_IDX_PROC
  WriteU32(&other_connector, 16, 2);
  EXPECT_TRUE(FilterKeeps(other_connector));
}

// ---- Live tests against this kernel. They need the initial network, PID and user namespaces
// (and CAP_NET_ADMIN before Linux 6.6); elsewhere they skip with Open()'s reason.

uint64_t MonotonicNowNs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000u + static_cast<uint64_t>(now.tv_nsec);
}

// Receives until `done` holds for the events seen so far or the deadline passes. Returns every
// event received; *overflowed is set when Receive reported kOverflow.
template <typename Done>
std::vector<ProcEvent> ReceiveUntil(ProcConnector* connector, Done done, bool* overflowed = nullptr) {
  std::vector<ProcEvent> events;
  const uint64_t deadline = MonotonicNowNs() + 10'000'000'000u;
  while (!done(events) && MonotonicNowNs() < deadline) {
    ConnectorBatch batch;
    std::string error;
    const ProcConnector::ReceiveStatus status = connector->Receive(&batch, &error);
    EXPECT_NE(status, ProcConnector::ReceiveStatus::kError) << error;
    if (status == ProcConnector::ReceiveStatus::kError) break;
    if (status == ProcConnector::ReceiveStatus::kOverflow) {
      EXPECT_TRUE(batch.lost);
      if (overflowed != nullptr) *overflowed = true;
    }
    events.insert(events.end(), batch.events.begin(), batch.events.end());
    if (status == ProcConnector::ReceiveStatus::kWouldBlock) {
      pollfd readable{.fd = connector->fd(), .events = POLLIN, .revents = 0};
      poll(&readable, 1, 100);
    }
  }
  return events;
}

// SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it Open falls back to the capped SO_RCVBUF.
bool ForcingReceiveBufferIsPermitted() {
  const int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const int size = 1 << 20;
  const bool permitted = setsockopt(probe, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) == 0;
  close(probe);
  return permitted;
}

const ProcEvent* Find(const std::vector<ProcEvent>& events, Kind kind, int pid) {
  for (const ProcEvent& event : events) {
    if (event.kind == kind && event.pid == pid) return &event;
  }
  return nullptr;
}

TEST(ProcConnectorLiveTest, ReportsForkCommAndExitOfAChild) {
  std::string error;
  std::unique_ptr<ProcConnector> connector =
      ProcConnector::Open(ProcConnector::kDefaultReceiveBufferBytes, &error);
  if (connector == nullptr) SKIP_UNLESS_CI("proc connector unavailable: " << error);
  EXPECT_GE(connector->fd(), 0);
  if (ForcingReceiveBufferIsPermitted()) {
    EXPECT_EQ(connector->receive_buffer_bytes(), ProcConnector::kDefaultReceiveBufferBytes);
  } else {
    EXPECT_GT(connector->receive_buffer_bytes(), 0u);  // capped by net.core.rmem_max
  }

  const uint64_t before = MonotonicNowNs();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    prctl(PR_SET_NAME, "cn_test_x");
    _exit(3);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_EQ(status, 0x300);

  const std::vector<ProcEvent> events =
      ReceiveUntil(connector.get(), [child](const std::vector<ProcEvent>& seen) {
        return Find(seen, Kind::kFork, child) && Find(seen, Kind::kComm, child) &&
               Find(seen, Kind::kExit, child);
      });
  const uint64_t after = MonotonicNowNs();
  const ProcEvent* forked = Find(events, Kind::kFork, child);
  const ProcEvent* renamed = Find(events, Kind::kComm, child);
  const ProcEvent* exited = Find(events, Kind::kExit, child);
  ASSERT_NE(forked, nullptr);
  ASSERT_NE(renamed, nullptr);
  ASSERT_NE(exited, nullptr);

  EXPECT_EQ(forked->tgid, child);
  EXPECT_EQ(forked->parent_tgid, getpid());
  EXPECT_EQ(renamed->comm, "cn_test_x");
  EXPECT_EQ(exited->tgid, child);
  EXPECT_EQ(exited->exit_code, 0x300u);
  EXPECT_EQ(exited->exit_signal, SIGCHLD);
  EXPECT_EQ(exited->parent_tgid, getpid());

  // Kernel timestamps are CLOCK_MONOTONIC: inside our own readings of that clock, in order.
  EXPECT_LE(before, forked->timestamp_ns);
  EXPECT_LE(forked->timestamp_ns, renamed->timestamp_ns);
  EXPECT_LE(renamed->timestamp_ns, exited->timestamp_ns);
  EXPECT_LE(exited->timestamp_ns, after);
}

TEST(ProcConnectorLiveTest, OverflowIsReportedAndTheSocketKeepsWorking) {
  std::string error;
  // The smallest buffer the kernel allows holds a handful of events.
  std::unique_ptr<ProcConnector> connector = ProcConnector::Open(1, &error);
  if (connector == nullptr) SKIP_UNLESS_CI("proc connector unavailable: " << error);

  // 50 forks and exits, unread, overflow any buffer of a few events.
  for (int i = 0; i < 50; ++i) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) _exit(0);
    ASSERT_EQ(waitpid(child, nullptr, 0), child);
  }
  // Then the queue is read empty, and the read that empties it says so: losses late in the
  // overflow raised no ENOBUFS of their own. The buffer is enlarged first so that other tests'
  // processes cannot overflow it again meanwhile.
  bool overflowed = false;
  bool drained_after_loss = false;
  const uint64_t deadline = MonotonicNowNs() + 10'000'000'000u;
  while (!drained_after_loss && MonotonicNowNs() < deadline) {
    ConnectorBatch batch;
    const ProcConnector::ReceiveStatus status = connector->Receive(&batch, &error);
    ASSERT_NE(status, ProcConnector::ReceiveStatus::kError) << error;
    if (status == ProcConnector::ReceiveStatus::kOverflow) {
      EXPECT_TRUE(batch.lost);
      overflowed = true;
      const int large = 4 << 20;
      setsockopt(connector->fd(), SOL_SOCKET, SO_RCVBUFFORCE, &large, sizeof large);
      setsockopt(connector->fd(), SOL_SOCKET, SO_RCVBUF, &large, sizeof large);
    }
    drained_after_loss = batch.drained_after_loss;
    EXPECT_TRUE(overflowed || !drained_after_loss);
  }
  ASSERT_TRUE(overflowed);
  ASSERT_TRUE(drained_after_loss);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(5);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  const std::vector<ProcEvent> events =
      ReceiveUntil(connector.get(),
                   [child](const std::vector<ProcEvent>& seen) { return Find(seen, Kind::kExit, child); });
  const ProcEvent* exited = Find(events, Kind::kExit, child);
  ASSERT_NE(exited, nullptr);
  EXPECT_EQ(exited->exit_code, 0x500u);
}

// A process that starts and ends 200 threads: the kernel's filter keeps its fork and exit and
// none of the 400 thread events (nor any other process's thread events).
TEST(ProcConnectorLiveTest, TheKernelDropsThreadEventsBeforeTheyAreQueued) {
  std::string error;
  std::unique_ptr<ProcConnector> connector =
      ProcConnector::Open(ProcConnector::kDefaultReceiveBufferBytes, &error);
  if (connector == nullptr) SKIP_UNLESS_CI("proc connector unavailable: " << error);
  ASSERT_TRUE(connector->filtered());
  constexpr int kThreads = 200;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (int i = 0; i < kThreads; ++i) {
      pthread_t thread;
      if (pthread_create(
              &thread, nullptr, [](void*) -> void* { return nullptr; }, nullptr) != 0)
        _exit(90);
      pthread_join(thread, nullptr);
    }
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_EQ(status, 0x400) << "the threads did not all run";
  const std::vector<ProcEvent> events =
      ReceiveUntil(connector.get(),
                   [child](const std::vector<ProcEvent>& seen) { return Find(seen, Kind::kExit, child); });
  ASSERT_NE(Find(events, Kind::kFork, child), nullptr);
  ASSERT_NE(Find(events, Kind::kExit, child), nullptr);
  int thread_events = 0, other_kinds = 0;
  for (const ProcEvent& event : events) {
    if (event.IsThreadEvent()) ++thread_events;
    if (event.kind == Kind::kOther) ++other_kinds;
  }
  EXPECT_EQ(thread_events, 0);
  EXPECT_EQ(other_kinds, 0);
}

// Calls Open() in a forked child after unshare(unshare_flags); returns the error text it gave
// ("" when Open succeeded), or nullopt when the namespace could not be created.
std::optional<std::string> OpenErrorInNewNamespace(int unshare_flags) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return std::nullopt;
  const pid_t child = fork();
  if (child < 0) return std::nullopt;
  if (child == 0) {
    close(pipe_fds[0]);
    if (unshare(unshare_flags) != 0) _exit(2);
    // A new PID namespace applies to children only: Open from a grandchild.
    const pid_t opener = (unshare_flags & CLONE_NEWPID) ? fork() : 0;
    if (opener < 0) _exit(3);
    if (opener > 0) {
      int status = 0;
      waitpid(opener, &status, 0);
      _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 4);
    }
    std::string error;
    std::unique_ptr<ProcConnector> connector = ProcConnector::Open(0, &error);
    if (write(pipe_fds[1], error.data(), error.size()) < 0) _exit(5);
    _exit(0);
  }
  close(pipe_fds[1]);
  const std::string text = ReadUntilClosed(pipe_fds[0]);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return text;
}

TEST(ProcConnectorLiveTest, OpenFailsInANewNetworkNamespace) {
  std::string error;
  if (ProcConnector::Open(0, &error) == nullptr) SKIP_UNLESS_CI("proc connector unavailable: " << error);
  const std::optional<std::string> error_there = OpenErrorInNewNamespace(CLONE_NEWNET);
  if (!error_there) SKIP_UNLESS_CI("cannot create a network namespace here");
  EXPECT_NE(error_there->find("connection refused: not in the initial network namespace"), std::string::npos)
      << *error_there;
}

TEST(ProcConnectorLiveTest, OpenFailsInANewPidNamespace) {
  std::string error;
  if (ProcConnector::Open(0, &error) == nullptr) SKIP_UNLESS_CI("proc connector unavailable: " << error);
  const std::optional<std::string> error_there = OpenErrorInNewNamespace(CLONE_NEWPID);
  if (!error_there) SKIP_UNLESS_CI("cannot create a PID namespace here");
  EXPECT_NE(error_there->find("not in the initial PID and user namespaces"), std::string::npos)
      << *error_there;
}

}  // namespace
}  // namespace pidfd_exporter
