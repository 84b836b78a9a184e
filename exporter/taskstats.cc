#include "taskstats.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <iterator>
#include <utility>

#include "log.h"

namespace pidfd_exporter {
namespace {

// Wire layout, defined here rather than taken from <linux/taskstats.h> so that the parser reads
// bytes at fixed offsets (no casts of unaligned buffers) and does not depend on which kernel
// headers the build machine has. All fields are in host byte order.
//
//   nlmsghdr     16 bytes: len u32, type u16, flags u16, seq u32, pid u32
//   genlmsghdr    4 bytes: cmd u8, version u8, reserved u16
//   attributes:  nlattr (len u16, type u16) + payload, each padded to 4 bytes. A record is
//                AGGR_PID { PID u32, STATS struct taskstats }, followed for the last task of a
//                multi-threaded process by AGGR_TGID { TGID u32, STATS } (aggregate, no name).
// struct taskstats only grows at its end (its version says how far); the fields read here are
// at the same offsets in every version since 2.6.18, ac_tgid since version 12 (Linux 5.19; the
// payload length tells whether it is there).
constexpr size_t kNetlinkHeaderSize = netlink::kMessageHeaderSize;
constexpr size_t kGenericHeaderSize = 4;
constexpr size_t kAttributeHeaderSize = 4;

constexpr uint16_t kControlFamilyId = 0x10;          // GENL_ID_CTRL
constexpr uint8_t kControlGetFamily = 3;             // CTRL_CMD_GETFAMILY
constexpr uint16_t kControlAttributeFamilyId = 1;    // CTRL_ATTR_FAMILY_ID, u16
constexpr uint16_t kControlAttributeFamilyName = 2;  // CTRL_ATTR_FAMILY_NAME, string

constexpr uint8_t kTaskstatsGet = 1;                 // TASKSTATS_CMD_GET
constexpr uint8_t kTaskstatsNew = 2;                 // TASKSTATS_CMD_NEW: a record
constexpr uint16_t kAttributeRegisterCpuMask = 3;    // TASKSTATS_CMD_ATTR_REGISTER_CPUMASK
constexpr uint16_t kAttributeDeregisterCpuMask = 4;  // TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK

constexpr uint16_t kTypePid = 1;           // TASKSTATS_TYPE_PID
constexpr uint16_t kTypeStats = 3;         // TASKSTATS_TYPE_STATS
constexpr uint16_t kTypeAggregatePid = 4;  // TASKSTATS_TYPE_AGGR_PID

// Offsets in struct taskstats.
constexpr size_t kExitCodeOffset = 4;  // ac_exitcode u32
constexpr size_t kFlagOffset = 8;      // ac_flag u8
constexpr size_t kCommOffset = 80;     // ac_comm char[32]
constexpr size_t kCommBytes = 32;
constexpr size_t kParentOffset = 132;       // ac_ppid u32
constexpr size_t kStatsMinimumBytes = 136;  // through ac_ppid
constexpr size_t kTgidOffset = 368;         // ac_tgid u32 (version 12+)
constexpr uint8_t kFlagGroupDead = 0x20;    // AGROUP: the last task of its process
constexpr size_t kRuntimeOffset = 72;       // cpu_run_virtual_total u64 (se.sum_exec_runtime, ns)
constexpr size_t kUserTimeOffset = 152;     // ac_utime u64, microseconds
constexpr size_t kSystemTimeOffset = 160;   // ac_stime u64, microseconds
constexpr size_t kPeakRssOffset = 200;      // hiwater_rss u64, KiB
constexpr size_t kReadBytesOffset = 248;    // read_bytes u64
constexpr size_t kWriteBytesOffset = 256;   // write_bytes u64

// recvmmsg batch: up to 64 records per system call. A record with the aggregate of a thread
// group is ~1.2 KiB; 2 KiB per slot leaves room, and MSG_TRUNC reports anything larger.
constexpr size_t kDatagramSlotBytes = 2048;
// Replies to our requests (the family description is a few hundred bytes).
constexpr size_t kReplyBufferBytes = 8192;

using netlink::ReadU16;
using netlink::ReadU32;
using netlink::ReadU64;

// Calls `visit(type, payload)` for each attribute in `data`; false when a length is malformed.
template <typename Visit>
bool ForEachAttribute(std::span<const uint8_t> data, Visit&& visit) {
  size_t offset = 0;
  while (offset + kAttributeHeaderSize <= data.size()) {
    const size_t length = ReadU16(data, offset);
    const uint16_t type = ReadU16(data, offset + 2) & NLA_TYPE_MASK;
    if (length < kAttributeHeaderSize || length > data.size() - offset) return false;
    visit(type, data.subspan(offset + kAttributeHeaderSize, length - kAttributeHeaderSize));
    offset += NLA_ALIGN(length);
  }
  return true;
}

// The resources a task used; each field only when the payload reaches it.
void ParseUsage(std::span<const uint8_t> stats, TaskExitRecord* record) {
  auto field = [stats](size_t offset) { return stats.size() >= offset + 8 ? ReadU64(stats, offset) : 0; };
  record->runtime_nanoseconds = field(kRuntimeOffset);
  record->user_microseconds = field(kUserTimeOffset);
  record->system_microseconds = field(kSystemTimeOffset);
  record->peak_rss_kib = field(kPeakRssOffset);
  record->read_bytes = field(kReadBytesOffset);
  record->write_bytes = field(kWriteBytesOffset);
}

// One AGGR_PID attribute: the task's id and its statistics.
bool ParseAggregate(std::span<const uint8_t> aggregate, TaskExitRecord* record) {
  bool has_pid = false;
  bool has_stats = false;
  const bool well_formed = ForEachAttribute(aggregate, [&](uint16_t type, std::span<const uint8_t> value) {
    if (type == kTypePid && value.size() >= 4) {
      record->pid = static_cast<int>(ReadU32(value, 0));
      has_pid = true;
    } else if (type == kTypeStats && value.size() >= kStatsMinimumBytes) {
      record->exit_code = ReadU32(value, kExitCodeOffset);
      record->group_dead = (value[kFlagOffset] & kFlagGroupDead) != 0;
      const auto* comm = reinterpret_cast<const char*>(value.data() + kCommOffset);
      record->comm.assign(comm, strnlen(comm, kCommBytes));
      record->parent_tgid = static_cast<int>(ReadU32(value, kParentOffset));
      if (value.size() >= kTgidOffset + 4) record->tgid = static_cast<int>(ReadU32(value, kTgidOffset));
      ParseUsage(value, record);
      has_stats = true;
    }
  });
  return well_formed && has_pid && has_stats && record->pid > 0;
}

bool ParseRecordMessage(std::span<const uint8_t> payload, TaskstatsBatch* out) {
  if (payload.size() < kGenericHeaderSize || payload[0] != kTaskstatsNew) return false;
  TaskExitRecord record;
  bool found = false;
  const bool well_formed = ForEachAttribute(payload.subspan(kGenericHeaderSize),
                                            [&](uint16_t type, std::span<const uint8_t> value) {
                                              if (type == kTypeAggregatePid && !found)
                                                found = ParseAggregate(value, &record);
                                            });
  if (!well_formed || !found) return false;
  out->records.push_back(std::move(record));
  return true;
}

// The possible CPUs, as the kernel wants them in a registration ("0-3", "0,2-5").
std::string PossibleCpus() {
  UniqueFd file(open("/sys/devices/system/cpu/possible", O_RDONLY | O_CLOEXEC));
  if (file) {
    char text[256];
    const ssize_t length = read(file.get(), text, sizeof text - 1);
    if (length > 0) {
      std::string mask(text, static_cast<size_t>(length));
      while (!mask.empty() && (mask.back() == '\n' || mask.back() == ' ')) mask.pop_back();
      if (!mask.empty()) return mask;
    }
  }
  const int count = get_nprocs_conf();
  return count > 1 ? "0-" + std::to_string(count - 1) : "0";
}

using netlink::MonotonicNowMs;

}  // namespace

void ParseTaskstatsMessages(std::span<const uint8_t> data, uint16_t family_id, TaskstatsBatch* out) {
  out->malformed += netlink::ForEachMessage(
      data, [&](const netlink::MessageHeader& header, std::span<const uint8_t> payload) {
        // Replies to our own requests; harmless.
        if (header.type == NLMSG_NOOP || header.type == NLMSG_ERROR || header.type == NLMSG_DONE) return true;
        return header.type == family_id && family_id != 0 && ParseRecordMessage(payload, out);
      });
}

std::vector<uint8_t> BuildGenericNetlinkRequest(uint16_t family_id, uint8_t command, uint16_t attribute_type,
                                                const std::string& value, uint32_t sequence) {
  const size_t attribute_length = kAttributeHeaderSize + value.size() + 1;  // with the NUL
  const size_t total = kNetlinkHeaderSize + kGenericHeaderSize + NLA_ALIGN(attribute_length);
  std::vector<uint8_t> request(total, 0);
  auto write_u32 = [&request](size_t offset, uint32_t number) {
    std::memcpy(request.data() + offset, &number, sizeof number);
  };
  auto write_u16 = [&request](size_t offset, uint16_t number) {
    std::memcpy(request.data() + offset, &number, sizeof number);
  };
  write_u32(0, static_cast<uint32_t>(total));
  write_u16(4, family_id);
  write_u16(6, NLM_F_REQUEST | NLM_F_ACK);
  write_u32(8, sequence);
  request[kNetlinkHeaderSize] = command;
  request[kNetlinkHeaderSize + 1] = 1;  // genlmsghdr.version
  const size_t attribute = kNetlinkHeaderSize + kGenericHeaderSize;
  write_u16(attribute, static_cast<uint16_t>(attribute_length));
  write_u16(attribute + 2, attribute_type);
  std::memcpy(request.data() + attribute + kAttributeHeaderSize, value.data(), value.size());
  return request;
}

TaskstatsListener::TaskstatsListener(UniqueFd socket, size_t receive_buffer_bytes)
    : socket_(std::move(socket)), receive_buffer_bytes_(receive_buffer_bytes), reader_(kDatagramSlotBytes) {}

TaskstatsListener::~TaskstatsListener() {
  if (family_id_ == 0 || cpu_mask_.empty()) return;
  // Fire and forget: the acknowledgement is not awaited on the way out.
  const std::vector<uint8_t> request = BuildGenericNetlinkRequest(
      family_id_, kTaskstatsGet, kAttributeDeregisterCpuMask, cpu_mask_, next_sequence_++);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  (void)sendto(socket_.get(), request.data(), request.size(), MSG_DONTWAIT,
               reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel);
}

std::unique_ptr<TaskstatsListener> TaskstatsListener::Open(size_t receive_buffer_bytes, std::string* error) {
  UniqueFd socket(::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_GENERIC));
  if (!socket) {
    *error = ErrnoText("socket(AF_NETLINK, NETLINK_GENERIC)", errno);
    return nullptr;
  }
  const std::optional<size_t> effective =
      netlink::SizeReceiveBuffer(socket.get(), receive_buffer_bytes, error);
  if (!effective) return nullptr;
  sockaddr_nl address{};
  address.nl_family = AF_NETLINK;  // nl_pid 0: the kernel picks our port id
  if (bind(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    *error = ErrnoText("bind(netlink generic)", errno);
    return nullptr;
  }

  std::unique_ptr<TaskstatsListener> listener(new TaskstatsListener(std::move(socket), *effective));

  // The family's id is assigned at boot: ask the controller for it.
  uint32_t sequence = listener->next_sequence_++;
  std::vector<uint8_t> reply;
  int kernel_error = 0;
  if (!listener->Request(BuildGenericNetlinkRequest(kControlFamilyId, kControlGetFamily,
                                                    kControlAttributeFamilyName, "TASKSTATS", sequence),
                         sequence, &reply, &kernel_error, error)) {
    return nullptr;
  }
  if (kernel_error != 0 || reply.size() < kGenericHeaderSize) {
    *error =
        kernel_error == ENOENT || reply.empty()
            ? "generic netlink family TASKSTATS not found: kernel built without CONFIG_TASKSTATS, or not "
              "in the initial network namespace (the family exists only there; run with the host network)"
            : ErrnoText("generic netlink controller refused the TASKSTATS lookup", kernel_error);
    return nullptr;
  }
  ForEachAttribute(std::span<const uint8_t>(reply).subspan(kGenericHeaderSize),
                   [&](uint16_t type, std::span<const uint8_t> value) {
                     if (type == kControlAttributeFamilyId && value.size() >= 2)
                       listener->family_id_ = ReadU16(value, 0);
                   });
  if (listener->family_id_ == 0) {
    *error = "generic netlink controller named no id for the TASKSTATS family";
    return nullptr;
  }

  const std::string cpu_mask = PossibleCpus();
  sequence = listener->next_sequence_++;
  if (!listener->Request(BuildGenericNetlinkRequest(listener->family_id_, kTaskstatsGet,
                                                    kAttributeRegisterCpuMask, cpu_mask, sequence),
                         sequence, nullptr, &kernel_error, error)) {
    return nullptr;
  }
  if (kernel_error == EPERM) {
    *error = "permission denied: registering for taskstats exit records needs CAP_NET_ADMIN";
    return nullptr;
  }
  if (kernel_error == EINVAL) {
    *error =
        "taskstats registration refused (EINVAL): not in the initial PID and user namespaces, or CPU mask "
        "\"" +
        cpu_mask + "\" not accepted";
    return nullptr;
  }
  if (kernel_error != 0) {
    *error = ErrnoText("taskstats registration refused", kernel_error);
    return nullptr;
  }
  listener->cpu_mask_ = cpu_mask;
  return listener;
}

bool TaskstatsListener::Request(const std::vector<uint8_t>& request, uint32_t sequence,
                                std::vector<uint8_t>* reply, int* kernel_error, std::string* error) {
  *kernel_error = 0;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = sendto(socket_.get(), request.data(), request.size(), 0,
                  reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    *error = ErrnoText("send to generic netlink", errno);
    return false;
  }
  // The kernel answers while send() runs; the deadline only guards against one that defers it.
  const int64_t deadline_ms = MonotonicNowMs() + kAcknowledgeTimeout.count();
  std::vector<uint8_t> reply_buffer(kReplyBufferBytes);
  for (;;) {
    sockaddr_nl sender{};
    socklen_t sender_size = sizeof sender;
    const ssize_t received =
        recvfrom(socket_.get(), reply_buffer.data(), reply_buffer.size(), MSG_DONTWAIT | MSG_TRUNC,
                 reinterpret_cast<sockaddr*>(&sender), &sender_size);
    if (received < 0) {
      if (errno == EINTR || errno == ENOBUFS) continue;  // lost records do not matter yet
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        *error = ErrnoText("recv from generic netlink", errno);
        return false;
      }
      const int64_t remaining_ms = deadline_ms - MonotonicNowMs();
      if (remaining_ms <= 0) {
        *error = "generic netlink request not acknowledged within " +
                 std::to_string(kAcknowledgeTimeout.count()) + " ms";
        return false;
      }
      pollfd readable{.fd = socket_.get(), .events = POLLIN, .revents = 0};
      poll(&readable, 1, static_cast<int>(remaining_ms));
      continue;
    }
    // Any local process may unicast to our port id; only the kernel (port 0) answers for it.
    if (sender.nl_pid != 0 || static_cast<size_t>(received) > reply_buffer.size()) continue;
    const std::span<const uint8_t> data(reply_buffer.data(), static_cast<size_t>(received));
    bool acknowledged = false;
    netlink::ForEachMessage(
        data, [&](const netlink::MessageHeader& header, std::span<const uint8_t> payload) {
          if (acknowledged) return true;
          if (header.sequence == sequence && header.type == NLMSG_ERROR && payload.size() >= 4) {
            // The acknowledgement ends the exchange: 0, or the negated errno of the refusal.
            *kernel_error = -static_cast<int>(ReadU32(payload, 0));
            acknowledged = true;
          } else if (header.sequence == sequence && header.type != NLMSG_ERROR && reply != nullptr) {
            reply->assign(payload.begin(), payload.end());
          } else if (family_id_ != 0 && header.type == family_id_) {
            // A record that arrived while we waited: kept for the first Receive().
            pending_.malformed += ParseRecordMessage(payload, &pending_) ? 0 : 1;
          }
          return true;
        });
    if (acknowledged) return true;
  }
}

TaskstatsListener::ReceiveStatus TaskstatsListener::Receive(TaskstatsBatch* batch, std::string* error) {
  int datagrams = 0;
  if (!pending_.records.empty() || pending_.malformed > 0) {
    batch->records.insert(batch->records.end(), std::make_move_iterator(pending_.records.begin()),
                          std::make_move_iterator(pending_.records.end()));
    batch->malformed += pending_.malformed;
    pending_.Clear();
    ++datagrams;
  }
  bool overflowed = false;
  bool drained = false;
  while (datagrams < kMaxDatagramsPerReceive) {
    int received = 0;
    int error_number = 0;
    const netlink::DatagramReader::Status status = reader_.ReadOnce(
        socket_.get(),
        [&](std::span<const uint8_t> datagram) { ParseTaskstatsMessages(datagram, family_id_, batch); },
        &received, &batch->malformed, &error_number);
    datagrams += received;
    if (status == netlink::DatagramReader::Status::kWouldBlock ||
        status == netlink::DatagramReader::Status::kDrained) {
      drained = true;
      break;
    }
    if (status == netlink::DatagramReader::Status::kOverflow) {
      overflowed = true;  // reported once; the older records are still queued
      continue;
    }
    if (status == netlink::DatagramReader::Status::kError) {
      if (error != nullptr) *error = ErrnoText("recv from taskstats", error_number);
      return ReceiveStatus::kError;
    }
  }
  if (overflowed) return ReceiveStatus::kOverflow;
  if (datagrams == 0) return ReceiveStatus::kWouldBlock;
  return drained ? ReceiveStatus::kDrained : ReceiveStatus::kOk;
}

}  // namespace pidfd_exporter
