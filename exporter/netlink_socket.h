// netlink_socket: what the exporter's two netlink sources (the proc connector and taskstats exit
// records) share: reading fixed-size fields out of received bytes, sizing a socket's receive
// buffer, and receiving datagrams in recvmmsg batches while keeping only the kernel's.
// Event-loop thread only: a DatagramReader owns its buffer and is not synchronised.
#pragma once

#include <linux/netlink.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace pidfd_exporter::netlink {

// Host-byte-order fields at `offset` (the caller has checked the bounds). memcpy, because
// netlink payloads are not aligned for direct loads.
inline uint16_t ReadU16(std::span<const uint8_t> bytes, size_t offset) {
  uint16_t value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}
inline uint32_t ReadU32(std::span<const uint8_t> bytes, size_t offset) {
  uint32_t value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}
inline uint64_t ReadU64(std::span<const uint8_t> bytes, size_t offset) {
  uint64_t value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

constexpr size_t kMessageHeaderSize = 16;  // nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32

struct MessageHeader {
  uint32_t length = 0;
  uint16_t type = 0;
  uint32_t sequence = 0;
};

// Calls `visit(const MessageHeader&, std::span<const uint8_t> payload) -> bool` for each netlink
// message in `data` (one recv() buffer); returns how many were malformed: visits that returned
// false, plus one where a header or length cannot be trusted, after which the rest is skipped
// (no trustworthy boundary for the next message). Never reads outside `data`.
template <typename Visit>
size_t ForEachMessage(std::span<const uint8_t> data, Visit&& visit) {
  size_t malformed = 0;
  size_t offset = 0;
  while (offset < data.size()) {
    const std::span<const uint8_t> rest = data.subspan(offset);
    if (rest.size() < kMessageHeaderSize) return malformed + 1;
    MessageHeader header;
    header.length = ReadU32(rest, 0);
    header.type = ReadU16(rest, 4);
    header.sequence = ReadU32(rest, 8);
    if (header.length < kMessageHeaderSize || header.length > rest.size()) return malformed + 1;
    if (!visit(header, rest.subspan(kMessageHeaderSize, header.length - kMessageHeaderSize))) ++malformed;
    offset += NLMSG_ALIGN(header.length);
  }
  return malformed;
}

// CLOCK_MONOTONIC in milliseconds: the deadline of a request's acknowledgement.
int64_t MonotonicNowMs();

// Asks for `bytes` of receive buffer (SO_RCVBUFFORCE, which needs CAP_NET_ADMIN, else
// SO_RCVBUF capped by net.core.rmem_max; 0 keeps the default) and returns the effective size as
// getsockopt(SO_RCVBUF) reports it; nullopt with *error when a call fails.
std::optional<size_t> SizeReceiveBuffer(int socket, size_t bytes, std::string* error);

// Receives datagrams with one recvmmsg per call into kSlots slots of `slot_bytes`.
class DatagramReader {
 public:
  static constexpr size_t kSlots = 64;

  explicit DatagramReader(size_t slot_bytes) : slot_bytes_(slot_bytes), buffer_(kSlots * slot_bytes) {}

  enum class Status {
    kData,  // *received datagrams were read (some may have been rejected); more may be queued
    // Fewer datagrams than slots were read: the queue was empty when the call returned (a
    // pending error, e.g. ENOBUFS, comes with the next call). A caller that stops here saves the
    // recvmmsg that would only say EAGAIN; a level-triggered epoll reports anything newer.
    kDrained,
    kWouldBlock,  // nothing queued
    kOverflow,    // ENOBUFS: the kernel dropped messages; the queue still holds the older ones
    kError,       // any other error; *error_number holds it
  };
  // One non-blocking recvmmsg (EINTR retried). Calls `on_datagram(std::span<const uint8_t>)`
  // for every whole datagram sent by the kernel (port 0); a datagram from any other sender (any
  // local process may unicast to our port) or cut by MSG_TRUNC is counted in *rejected.
  template <typename OnDatagram>
  Status ReadOnce(int socket, OnDatagram&& on_datagram, int* received, size_t* rejected, int* error_number) {
    const int count = Receive(socket, error_number);
    *received = count > 0 ? count : 0;
    if (count < 0) return StatusOf(*error_number);
    for (int i = 0; i < count; ++i) {
      if (senders_[i].nl_pid != 0 || (messages_[i].msg_hdr.msg_flags & MSG_TRUNC)) {
        ++*rejected;
        continue;
      }
      on_datagram(std::span<const uint8_t>(buffer_.data() + static_cast<size_t>(i) * slot_bytes_,
                                           messages_[i].msg_len));
    }
    return count < static_cast<int>(kSlots) ? Status::kDrained : Status::kData;
  }

 private:
  // Number of datagrams, or -1 with *error_number.
  int Receive(int socket, int* error_number);
  static Status StatusOf(int error_number);

  size_t slot_bytes_;
  std::vector<uint8_t> buffer_;
  mmsghdr messages_[kSlots];
  iovec vectors_[kSlots];
  sockaddr_nl senders_[kSlots];
};

}  // namespace pidfd_exporter::netlink
