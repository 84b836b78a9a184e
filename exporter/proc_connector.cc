#include "proc_connector.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <cstring>
#include <iterator>
#include <utility>

#include "log.h"

namespace pidfd_exporter {
namespace {

// Wire layout, defined here rather than taken from <linux/cn_proc.h> so that the parser reads
// bytes at fixed offsets (no casts of unaligned buffers) and does not depend on which kernel
// headers the build machine has. All fields are in host byte order.
//
//   nlmsghdr  16 bytes: len u32, type u16, flags u16, seq u32, pid u32
//   cn_msg    20 bytes: idx u32, val u32, seq u32, ack u32, len u16, flags u16
//   proc_event (cn_msg.len bytes, 40 on every kernel):
//             what u32, cpu u32, timestamp_ns u64, then the event_data union (24 bytes).
constexpr size_t kNetlinkHeaderSize = netlink::kMessageHeaderSize;
constexpr size_t kConnectorHeaderSize = 20;
constexpr size_t kProcEventHeaderSize = 16;

constexpr uint32_t kConnectorIndexProc = 1;  // CN_IDX_PROC
constexpr uint32_t kConnectorValueProc = 1;  // CN_VAL_PROC

constexpr uint32_t kMulticastListen = 1;  // PROC_CN_MCAST_LISTEN
constexpr uint32_t kMulticastIgnore = 2;  // PROC_CN_MCAST_IGNORE

constexpr uint32_t kEventNone = 0x00000000;  // the acknowledgement of a request
constexpr uint32_t kEventFork = 0x00000001;
constexpr uint32_t kEventExec = 0x00000002;
constexpr uint32_t kEventComm = 0x00000200;
constexpr uint32_t kEventExit = 0x80000000;

// Older kernels stamp acknowledgements with cpu = -1 and the request's sequence number, which
// is not a per-CPU counter and must not be tracked. (6.18 stamps them like events.)
constexpr uint32_t kNoCpu = 0xFFFFFFFF;

constexpr size_t kCommBytes = 16;
// recvmmsg batch: one system call for up to 64 datagrams (one event each, 76 bytes) instead
// of one per event; 1 KiB per slot leaves room for any connector message.
constexpr size_t kDatagramSlotBytes = 1024;

using netlink::ReadU16;
using netlink::ReadU32;
using netlink::ReadU64;

int ReadPid(std::span<const uint8_t> bytes, size_t offset) {
  return static_cast<int>(ReadU32(bytes, offset));
}

// Bytes of event_data that each kind needs. Exit events of older kernels lack the parent
// fields (16 bytes); they are read when present.
size_t RequiredDataBytes(uint32_t what) {
  switch (what) {
    case kEventNone:
      return 4;  // ack.err
    case kEventFork:
      return 16;
    case kEventComm:
      return 8 + kCommBytes;
    case kEventExit:
      return 16;
    default:
      return 8;  // every other event starts with process_pid, process_tgid
  }
}

// Parses one proc_event (the cn_msg payload); false when it is too short.
bool ParseProcEvent(std::span<const uint8_t> payload, uint32_t connector_sequence,
                    uint32_t connector_acknowledge, ConnectorSequenceTracker* tracker, ConnectorBatch* out) {
  if (payload.size() < kProcEventHeaderSize) return false;
  const uint32_t what = ReadU32(payload, 0);
  const uint32_t cpu = ReadU32(payload, 4);
  const std::span<const uint8_t> data = payload.subspan(kProcEventHeaderSize);
  if (data.size() < RequiredDataBytes(what)) return false;

  if (tracker != nullptr && cpu != kNoCpu && !tracker->Observe(cpu, connector_sequence)) {
    out->lost = true;
  }
  if (what == kEventNone) {
    out->acks.push_back(ConnectorAck{.acknowledge = connector_acknowledge, .error = ReadU32(data, 0)});
    return true;
  }

  ProcEvent event;
  event.what = what;
  event.cpu = static_cast<int>(cpu);
  event.timestamp_ns = ReadU64(payload, 8);
  switch (what) {
    case kEventFork:
      event.kind = ProcEvent::Kind::kFork;
      event.parent_pid = ReadPid(data, 0);
      event.parent_tgid = ReadPid(data, 4);
      event.pid = ReadPid(data, 8);
      event.tgid = ReadPid(data, 12);
      break;
    case kEventExec:
      event.kind = ProcEvent::Kind::kExec;
      event.pid = ReadPid(data, 0);
      event.tgid = ReadPid(data, 4);
      break;
    case kEventComm: {
      event.kind = ProcEvent::Kind::kComm;
      event.pid = ReadPid(data, 0);
      event.tgid = ReadPid(data, 4);
      const uint8_t* name = data.data() + 8;
      // The kernel NUL-terminates, but garbage might not: stop at the field's end.
      size_t length = 0;
      while (length < kCommBytes && name[length] != 0) ++length;
      event.comm.assign(reinterpret_cast<const char*>(name), length);
      break;
    }
    case kEventExit:
      event.kind = ProcEvent::Kind::kExit;
      event.pid = ReadPid(data, 0);
      event.tgid = ReadPid(data, 4);
      event.exit_code = ReadU32(data, 8);
      event.exit_signal = static_cast<int>(ReadU32(data, 12));
      if (data.size() >= 24) {
        event.parent_pid = ReadPid(data, 16);
        event.parent_tgid = ReadPid(data, 20);
      }
      break;
    default:
      event.kind = ProcEvent::Kind::kOther;
      event.pid = ReadPid(data, 0);
      event.tgid = ReadPid(data, 4);
      break;
  }
  out->events.push_back(std::move(event));
  return true;
}

// Parses the payload of one NLMSG_DONE message; false when it is not a well-formed proc event.
bool ParseConnectorMessage(std::span<const uint8_t> payload, ConnectorSequenceTracker* tracker,
                           ConnectorBatch* out) {
  if (payload.size() < kConnectorHeaderSize) return false;
  if (ReadU32(payload, 0) != kConnectorIndexProc || ReadU32(payload, 4) != kConnectorValueProc) {
    return false;
  }
  const uint32_t sequence = ReadU32(payload, 8);
  const uint32_t acknowledge = ReadU32(payload, 12);
  const size_t length = ReadU16(payload, 16);
  if (length > payload.size() - kConnectorHeaderSize) return false;
  return ParseProcEvent(payload.subspan(kConnectorHeaderSize, length), sequence, acknowledge, tracker, out);
}

using netlink::MonotonicNowMs;

// Offsets in a datagram (one netlink message) that the socket filter reads.
constexpr uint32_t kFilterConnectorIndexOffset = kNetlinkHeaderSize;      // cn_msg.idx
constexpr uint32_t kFilterConnectorValueOffset = kNetlinkHeaderSize + 4;  // cn_msg.val
constexpr uint32_t kFilterWhatOffset = kNetlinkHeaderSize + kConnectorHeaderSize;
constexpr uint32_t kFilterDataOffset = kFilterWhatOffset + kProcEventHeaderSize;
// The fork event's child pid and tgid follow the parent's.
constexpr uint32_t kFilterForkChildOffset = kFilterDataOffset + 8;
// Shorter datagrams cannot hold a fork event's child: kept, for the parser to judge.
constexpr uint32_t kFilterMinimumLength = kFilterForkChildOffset + 8;
constexpr uint32_t kFilterAccept = 0xFFFFFFFF;  // the whole datagram
constexpr uint32_t kFilterDrop = 0;

// BPF_ABS loads read big-endian words; the connector writes host order. Constants compared
// with such a load are converted the same way (equality of two loads needs nothing).
uint32_t AsLoaded(uint32_t host_value) {
  return ntohl(host_value);
}

sock_filter Statement(uint16_t code, uint32_t k) {
  return sock_filter{code, 0, 0, k};
}
sock_filter Jump(uint16_t code, uint32_t k, uint8_t if_true, uint8_t if_false) {
  return sock_filter{code, if_true, if_false, k};
}

// Attaches ConnectorFilterProgram; false (errno set) when the kernel refuses it.
bool AttachFilter(int socket) {
  std::vector<sock_filter> program = ConnectorFilterProgram();
  sock_fprog attached{static_cast<unsigned short>(program.size()), program.data()};
  return setsockopt(socket, SOL_SOCKET, SO_ATTACH_FILTER, &attached, sizeof attached) == 0;
}

}  // namespace

std::vector<sock_filter> ConnectorFilterProgram() {
  // Jump offsets count the instructions skipped; the numbers in comments are the targets.
  constexpr uint16_t kLoadWord = BPF_LD | BPF_W | BPF_ABS;
  constexpr uint16_t kIfEqual = BPF_JMP | BPF_JEQ | BPF_K;
  constexpr uint16_t kIfEqualX = BPF_JMP | BPF_JEQ | BPF_X;
  return {
      /* 0 */ Statement(BPF_LD | BPF_W | BPF_LEN, 0),
      /* 1 */ Jump(BPF_JMP | BPF_JGE | BPF_K, kFilterMinimumLength, 0, 20),  // short: 22
      /* 2 */ Statement(kLoadWord, kFilterConnectorIndexOffset),
      /* 3 */ Jump(kIfEqual, AsLoaded(kConnectorIndexProc), 0, 18),  // not a proc event: 22
      /* 4 */ Statement(kLoadWord, kFilterConnectorValueOffset),
      /* 5 */ Jump(kIfEqual, AsLoaded(kConnectorValueProc), 0, 16),  // 22
      /* 6 */ Statement(kLoadWord, kFilterWhatOffset),
      /* 7 */ Jump(kIfEqual, AsLoaded(kEventFork), 9, 0),    // 17
      /* 8 */ Jump(kIfEqual, AsLoaded(kEventExec), 4, 0),    // 13
      /* 9 */ Jump(kIfEqual, AsLoaded(kEventComm), 3, 0),    // 13
      /* 10 */ Jump(kIfEqual, AsLoaded(kEventExit), 2, 0),   // 13
      /* 11 */ Jump(kIfEqual, AsLoaded(kEventNone), 10, 0),  // an acknowledgement: 22
      /* 12 */ Statement(BPF_RET | BPF_K, kFilterDrop),      // uid, gid, sid, ptrace, coredump, ...
      /* 13 */ Statement(kLoadWord, kFilterDataOffset + 4),  // exec, comm, exit: pid == tgid?
      /* 14 */ Statement(BPF_MISC | BPF_TAX, 0),
      /* 15 */ Statement(kLoadWord, kFilterDataOffset),
      /* 16 */ Jump(kIfEqualX, 0, 5, 4),                          // 22 : 21
      /* 17 */ Statement(kLoadWord, kFilterForkChildOffset + 4),  // fork: child pid == tgid?
      /* 18 */ Statement(BPF_MISC | BPF_TAX, 0),
      /* 19 */ Statement(kLoadWord, kFilterForkChildOffset),
      /* 20 */ Jump(kIfEqualX, 0, 1, 0),  // 22 : 21
      /* 21 */ Statement(BPF_RET | BPF_K, kFilterDrop),
      /* 22 */ Statement(BPF_RET | BPF_K, kFilterAccept),
  };
}

bool ConnectorSequenceTracker::Observe(uint32_t cpu, uint32_t sequence) {
  if (cpu >= kMaxTrackedCpus) return true;
  if (cpu >= seen_.size()) {
    seen_.resize(cpu + 1, false);
    next_sequence_.resize(cpu + 1, 0);
  }
  // Unsigned arithmetic: the counter wraps from 0xFFFFFFFF to 0 without a gap.
  const bool in_order = !seen_[cpu] || next_sequence_[cpu] == sequence;
  seen_[cpu] = true;
  next_sequence_[cpu] = sequence + 1;
  return in_order;
}

void ConnectorSequenceTracker::Reset() {
  seen_.clear();
  next_sequence_.clear();
}

void ParseConnectorMessages(std::span<const uint8_t> data, ConnectorSequenceTracker* tracker,
                            ConnectorBatch* out) {
  out->malformed += netlink::ForEachMessage(
      data, [&](const netlink::MessageHeader& header, std::span<const uint8_t> payload) {
        // NOOP and ERROR are not sent by the connector; harmless.
        if (header.type == NLMSG_NOOP || header.type == NLMSG_ERROR) return true;
        return header.type == NLMSG_DONE && ParseConnectorMessage(payload, tracker, out);
      });
}

std::vector<uint8_t> BuildConnectorRequest(bool listen, uint32_t acknowledge) {
  constexpr size_t kPayloadSize = 4;
  constexpr size_t kTotal = kNetlinkHeaderSize + kConnectorHeaderSize + kPayloadSize;
  std::vector<uint8_t> request(kTotal, 0);
  auto write_u32 = [&request](size_t offset, uint32_t value) {
    std::memcpy(request.data() + offset, &value, sizeof value);
  };
  auto write_u16 = [&request](size_t offset, uint16_t value) {
    std::memcpy(request.data() + offset, &value, sizeof value);
  };
  write_u32(0, kTotal);
  write_u16(4, NLMSG_DONE);  // the connector's message type, both directions
  write_u32(kNetlinkHeaderSize + 0, kConnectorIndexProc);
  write_u32(kNetlinkHeaderSize + 4, kConnectorValueProc);
  write_u32(kNetlinkHeaderSize + 12, acknowledge);
  write_u16(kNetlinkHeaderSize + 16, kPayloadSize);
  write_u32(kNetlinkHeaderSize + kConnectorHeaderSize, listen ? kMulticastListen : kMulticastIgnore);
  return request;
}

ProcConnector::ProcConnector(UniqueFd socket, size_t receive_buffer_bytes)
    : socket_(std::move(socket)), receive_buffer_bytes_(receive_buffer_bytes), reader_(kDatagramSlotBytes) {}

ProcConnector::~ProcConnector() {
  // Kernels before 6.6 keep one global listener count that every LISTEN raised; 6.6+ track
  // the state per socket and treat repeated IGNOREs as one.
  for (int i = 0; i < listen_requests_sent_; ++i) {
    std::string ignored;
    SendRequest(/*listen=*/false, port_id_, &ignored);
  }
}

std::unique_ptr<ProcConnector> ProcConnector::Open(size_t receive_buffer_bytes, std::string* error) {
  UniqueFd socket(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_CONNECTOR));
  if (!socket) {
    const int socket_errno = errno;
    if (socket_errno == EPROTONOSUPPORT) {
      *error = "netlink connector not available: kernel built without CONFIG_CONNECTOR";
    } else {
      *error = ErrnoText("socket(AF_NETLINK, NETLINK_CONNECTOR)", socket_errno);
    }
    return nullptr;
  }

  const std::optional<size_t> effective =
      netlink::SizeReceiveBuffer(socket.get(), receive_buffer_bytes, error);
  if (!effective) return nullptr;

  // Before bind: no unfiltered event is queued. Without the filter (refused, which no supported
  // kernel does) everything arrives as before and sequence gaps still reveal losses.
  const bool filtered = AttachFilter(socket.get());
  if (!filtered) LogWarn("Proc connector: kernel refused the event filter", {{"err", strerror(errno)}});

  sockaddr_nl address{};
  address.nl_family = AF_NETLINK;
  address.nl_groups = kConnectorIndexProc;  // group CN_IDX_PROC
  if (bind(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    *error = ErrnoText("bind(netlink group CN_IDX_PROC)", errno);
    return nullptr;
  }
  socklen_t address_size = sizeof address;
  if (getsockname(socket.get(), reinterpret_cast<sockaddr*>(&address), &address_size) != 0) {
    *error = ErrnoText("getsockname(netlink)", errno);
    return nullptr;
  }

  std::unique_ptr<ProcConnector> connector(new ProcConnector(std::move(socket), *effective));
  // The port id is unique among netlink sockets, so acknowledgements of other listeners'
  // requests (they are multicast to us too) cannot be mistaken for ours.
  connector->port_id_ = address.nl_pid;
  connector->filtered_ = filtered;
  if (!connector->Subscribe(error)) return nullptr;
  return connector;
}

bool ProcConnector::SendRequest(bool listen, uint32_t acknowledge, std::string* error) {
  const std::vector<uint8_t> request = BuildConnectorRequest(listen, acknowledge);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;  // nl_pid 0: the kernel
  ssize_t sent;
  do {
    sent = sendto(socket_.get(), request.data(), request.size(), 0,
                  reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    if (errno == ECONNREFUSED) {
      *error =
          "connection refused: not in the initial network namespace (the proc connector exists only "
          "there; run with the host network)";
    } else {
      *error = ErrnoText("send to the proc connector", errno);
    }
    return false;
  }
  return true;
}

bool ProcConnector::Subscribe(std::string* error) {
  // The kernel handles the request while send() runs and queues its acknowledgement before
  // send() returns; the deadline only guards against a kernel that defers it.
  constexpr int kMaxAttempts = 3;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    if (!SendRequest(/*listen=*/true, port_id_, error)) return false;
    ++listen_requests_sent_;
    const int64_t deadline_ms = MonotonicNowMs() + kAcknowledgeTimeout.count();
    bool overflowed = false;
    while (!overflowed) {
      const size_t acks_before = pending_.acks.size();
      std::string receive_error;
      const ReceiveStatus status = Receive(&pending_, &receive_error);
      if (status == ReceiveStatus::kError) {
        *error = receive_error;
        return false;
      }
      if (status == ReceiveStatus::kOverflow) {
        // Our acknowledgement may be among the dropped messages: ask again.
        overflowed = true;
        continue;
      }
      for (size_t i = acks_before; i < pending_.acks.size(); ++i) {
        const ConnectorAck& ack = pending_.acks[i];
        if (ack.acknowledge != port_id_ + 1) continue;
        if (ack.error == 0) return true;
        listen_requests_sent_ = 0;  // refused: an IGNORE would lower other listeners' count
        if (ack.error == EPERM) {
          *error =
              "permission denied: subscribing to the proc connector needs CAP_NET_ADMIN before Linux 6.6";
        } else {
          *error = ErrnoText("proc connector refused the subscription", static_cast<int>(ack.error));
        }
        return false;
      }
      if (status == ReceiveStatus::kOk) continue;  // more may be queued
      const int64_t remaining_ms = deadline_ms - MonotonicNowMs();
      if (remaining_ms <= 0) {
        listen_requests_sent_ = 0;  // ignored: an IGNORE would lower other listeners' count
        *error =
            "subscription ignored by the kernel (no acknowledgement): not in the initial PID and user "
            "namespaces, where the proc connector's host PIDs would not match this /proc (run with the "
            "host PID namespace and without a user namespace)";
        return false;
      }
      pollfd readable{.fd = socket_.get(), .events = POLLIN, .revents = 0};
      poll(&readable, 1, static_cast<int>(remaining_ms));
    }
  }
  *error = "proc connector: acknowledgement lost to receive-buffer overflow " + std::to_string(kMaxAttempts) +
           " times";
  return false;
}

ProcConnector::ReceiveStatus ProcConnector::Receive(ConnectorBatch* batch, std::string* error) {
  int datagrams = 0;
  if (batch != &pending_ && (!pending_.events.empty() || !pending_.acks.empty() || pending_.lost ||
                             pending_.drained_after_loss || pending_.malformed > 0)) {
    batch->events.insert(batch->events.end(), std::make_move_iterator(pending_.events.begin()),
                         std::make_move_iterator(pending_.events.end()));
    batch->acks.insert(batch->acks.end(), pending_.acks.begin(), pending_.acks.end());
    batch->lost = batch->lost || pending_.lost;
    batch->drained_after_loss = batch->drained_after_loss || pending_.drained_after_loss;
    batch->malformed += pending_.malformed;
    pending_.Clear();
    ++datagrams;
  }
  bool overflowed = false;
  bool drained = false;
  while (datagrams < kMaxDatagramsPerReceive) {
    int received = 0;
    int error_number = 0;
    // While draining after an overflow the gap is known; tracking would only report it again.
    // Filtered, the numbers have gaps by design: only ENOBUFS says that events were lost.
    ConnectorSequenceTracker* tracker = draining_after_overflow_ || filtered_ ? nullptr : &sequence_tracker_;
    const netlink::DatagramReader::Status status = reader_.ReadOnce(
        socket_.get(),
        [&](std::span<const uint8_t> datagram) { ParseConnectorMessages(datagram, tracker, batch); },
        &received, &batch->malformed, &error_number);
    datagrams += received;
    if (status == netlink::DatagramReader::Status::kWouldBlock ||
        status == netlink::DatagramReader::Status::kDrained) {
      drained = true;
      if (draining_after_overflow_) {
        // Everything queued before the loss has been read: the next number from each CPU is
        // a new baseline, not a second gap.
        draining_after_overflow_ = false;
        sequence_tracker_.Reset();
        batch->drained_after_loss = true;
      }
      break;
    }
    if (status == netlink::DatagramReader::Status::kOverflow) {
      // The kernel delivers nothing new until the queue is empty, so keep reading.
      overflowed = true;
      batch->lost = true;
      draining_after_overflow_ = true;
      continue;
    }
    if (status == netlink::DatagramReader::Status::kError) {
      if (error != nullptr) *error = ErrnoText("recv from the proc connector", error_number);
      return ReceiveStatus::kError;
    }
  }
  if (overflowed) return ReceiveStatus::kOverflow;
  if (datagrams == 0) return ReceiveStatus::kWouldBlock;
  return drained ? ReceiveStatus::kDrained : ReceiveStatus::kOk;
}

}  // namespace pidfd_exporter
