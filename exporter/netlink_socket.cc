#include "netlink_socket.h"

#include <errno.h>
#include <linux/netlink.h>
#include <time.h>

#include "log.h"

namespace pidfd_exporter::netlink {

std::optional<size_t> SizeReceiveBuffer(int socket, size_t bytes, std::string* error) {
  if (bytes > 0) {
    // The kernel doubles the value it is given (room for its bookkeeping) and reports the
    // doubled size; ask for half so that the reported size is the one requested.
    const size_t half = bytes / 2;
    const int requested = half > 0x3FFFFFFF ? 0x3FFFFFFF : static_cast<int>(half);
    if (setsockopt(socket, SOL_SOCKET, SO_RCVBUFFORCE, &requested, sizeof requested) != 0 &&
        setsockopt(socket, SOL_SOCKET, SO_RCVBUF, &requested, sizeof requested) != 0) {
      *error = ErrnoText("setsockopt(SO_RCVBUF)", errno);
      return std::nullopt;
    }
  }
  int effective = 0;
  socklen_t effective_size = sizeof effective;
  if (getsockopt(socket, SOL_SOCKET, SO_RCVBUF, &effective, &effective_size) != 0) {
    *error = ErrnoText("getsockopt(SO_RCVBUF)", errno);
    return std::nullopt;
  }
  return static_cast<size_t>(effective);
}

int64_t MonotonicNowMs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

int DatagramReader::Receive(int socket, int* error_number) {
  for (size_t i = 0; i < kSlots; ++i) {
    vectors_[i].iov_base = buffer_.data() + i * slot_bytes_;
    vectors_[i].iov_len = slot_bytes_;
    senders_[i] = sockaddr_nl{};
    messages_[i] = mmsghdr{};
    messages_[i].msg_hdr.msg_name = &senders_[i];
    messages_[i].msg_hdr.msg_namelen = sizeof senders_[i];
    messages_[i].msg_hdr.msg_iov = &vectors_[i];
    messages_[i].msg_hdr.msg_iovlen = 1;
  }
  int received;
  do {
    received = recvmmsg(socket, messages_, kSlots, MSG_DONTWAIT, nullptr);
  } while (received < 0 && errno == EINTR);
  if (received < 0) *error_number = errno;
  return received;
}

DatagramReader::Status DatagramReader::StatusOf(int error_number) {
  if (error_number == EAGAIN || error_number == EWOULDBLOCK) return Status::kWouldBlock;
  // Reported once, ahead of the messages still queued from before the loss.
  if (error_number == ENOBUFS) return Status::kOverflow;
  return Status::kError;
}

}  // namespace pidfd_exporter::netlink
