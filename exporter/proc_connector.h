// proc_connector: the kernel's process-event connector (netlink NETLINK_CONNECTOR, group
// CN_IDX_PROC). ProcConnector owns the subscribed socket and turns its datagrams into ProcEvent
// values (fork, exec, comm, exit of every task on the host) and reports when events were lost
// (socket overflow; a per-CPU sequence gap only where the kernel-side filter could not be
// attached), so that the caller rescans /proc.
// Event-loop thread only: nothing here is synchronised. It never blocks (the socket is
// non-blocking; Open() alone may wait up to kAcknowledgeTimeout for the kernel's reply) and never
// decides what an event means for a process set (that is the tracker's job).
// The parser is a pure function over bytes, so recorded datagrams can be replayed in tests.
#pragma once

#include <linux/filter.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "netlink_socket.h"
#include "unique_fd.h"

namespace pidfd_exporter {

// One process event. PIDs are always those of the initial PID namespace.
struct ProcEvent {
  enum class Kind { kFork, kExec, kComm, kExit, kOther };
  Kind kind = Kind::kOther;
  uint32_t what = 0;          // raw proc_event.what (PROC_EVENT_*); tells kOther events apart
  uint64_t timestamp_ns = 0;  // CLOCK_MONOTONIC, taken by the kernel when the event happened
  int cpu = 0;                // CPU that emitted the event
  int pid = 0;                // the task (thread id) the event is about; for kFork the new child
  int tgid = 0;               // its thread-group id, i.e. the process id
  // kFork and kExit: the parent process. For a thread the kernel reports the parent of its
  // process on fork, and 0/0 on exit.
  int parent_pid = 0;
  int parent_tgid = 0;
  uint32_t exit_code = 0;  // kExit: raw wait status (0x300 for _exit(3), 0x9 for SIGKILL)
  int exit_signal = 0;     // kExit: signal sent to the parent (SIGCHLD); -1 for a non-leader thread
  std::string comm;        // kComm: the new name, at most 15 bytes, any byte but NUL

  // Threads fork and exit like processes; such events say nothing about a process's life.
  bool IsThreadEvent() const { return pid != tgid; }
};

// The kernel's reply to a LISTEN/IGNORE request. Replies are multicast: the acknowledgements of
// other listeners' requests arrive too. `acknowledge` is the request's cn_msg.ack plus one.
struct ConnectorAck {
  uint32_t acknowledge = 0;
  uint32_t error = 0;  // errno value, 0 for success
};

struct ConnectorBatch {
  std::vector<ProcEvent> events;
  std::vector<ConnectorAck> acks;
  bool lost = false;  // events were lost (sequence gap or overflow): rescan /proc
  // The queue was read empty after an overflow. Events dropped after the ENOBUFS was reported
  // and before this point raised no second ENOBUFS (the socket stays congested until it is
  // empty): only a rescan that starts now covers them.
  bool drained_after_loss = false;
  size_t malformed = 0;  // messages skipped: truncated, not a proc event, or not from the kernel

  void Clear() {
    events.clear();
    acks.clear();
    lost = false;
    drained_after_loss = false;
    malformed = 0;
  }
};

// Detects lost events from the per-CPU sequence numbers that the kernel stamps on every message
// (cn_msg.seq counts per CPU; a message is queued on the CPU whose counter it took, so each
// CPU's numbers arrive in order). The first number seen from a CPU is the baseline.
class ConnectorSequenceTracker {
 public:
  // CPU numbers beyond this are not tracked (they can only come from garbage input).
  static constexpr uint32_t kMaxTrackedCpus = 8192;

  // False when `sequence` does not follow the previous number seen from `cpu`.
  bool Observe(uint32_t cpu, uint32_t sequence);
  // Forgets every CPU; after an overflow the next numbers are a new baseline, not another gap.
  void Reset();

 private:
  std::vector<uint32_t> next_sequence_;  // indexed by CPU
  std::vector<bool> seen_;
};

// Appends the events of one recv() buffer (one or more netlink messages) to `out`. Never reads
// outside `data`: a truncated or malformed message is counted in out->malformed and skipped, and
// parsing stops where message boundaries can no longer be trusted. NLMSG_NOOP and NLMSG_ERROR
// messages are skipped. `tracker` may be null (no gap detection).
void ParseConnectorMessages(std::span<const uint8_t> data, ConnectorSequenceTracker* tracker,
                            ConnectorBatch* out);

// Builds the netlink request that subscribes (`listen`) or unsubscribes: nlmsghdr + cn_msg + the
// 4-byte mcast_op. The 8-byte struct proc_input of Linux 6.6+ is not used: kernels before 6.6
// silently drop it; the classic BPF filter below drops the same events on every kernel.
std::vector<uint8_t> BuildConnectorRequest(bool listen, uint32_t acknowledge);

// The classic BPF socket filter (SO_ATTACH_FILTER, every kernel the exporter supports) that
// makes the kernel drop, before it queues them or wakes anyone, the messages no code path uses:
// events of threads (pid != tgid; for a fork the child's) and event types other than fork,
// exec, comm, exit and the acknowledgement. Anything it cannot read as a proc event (too short,
// another connector id) is kept for the parser to count as malformed. The filter looks at the
// first message of a datagram only: the connector sends one per datagram. Dropped messages
// leave gaps in the per-CPU sequence numbers, so with the filter attached loss is detected by
// ENOBUFS alone (docs/architecture.md, "Proc connector").
std::vector<sock_filter> ConnectorFilterProgram();

// The subscribed socket.
//
// Where it works (measured on 6.18; docs/architecture.md, "Proc connector"): only in the initial network
// namespace (elsewhere the kernel refuses the request: Open fails), only from the initial PID and
// user namespaces (elsewhere the kernel ignores the request without a reply: Open waits
// kAcknowledgeTimeout for the reply and fails), unprivileged since Linux 6.6 (before, the reply
// is EPERM without CAP_NET_ADMIN: Open fails).
class ProcConnector {
 public:
  static constexpr size_t kDefaultReceiveBufferBytes = 8 << 20;  // ~10,000 queued events
  static constexpr std::chrono::milliseconds kAcknowledgeTimeout{250};
  // Receive() reads at most this many datagrams, so that one busy source cannot starve the loop.
  static constexpr int kMaxDatagramsPerReceive = 1024;

  // Opens, sizes the receive buffer (`receive_buffer_bytes` is the effective size as
  // getsockopt(SO_RCVBUF) reports it, ~832 bytes per queued event; SO_RCVBUFFORCE, else
  // SO_RCVBUF capped by net.core.rmem_max; 0 keeps the default), subscribes and waits for the
  // kernel's acknowledgement. On failure returns null and sets *error to a sentence naming the
  // reason, e.g. "connection refused: not in the initial network namespace ...".
  static std::unique_ptr<ProcConnector> Open(size_t receive_buffer_bytes, std::string* error);

  ProcConnector(const ProcConnector&) = delete;
  ProcConnector& operator=(const ProcConnector&) = delete;
  // Unsubscribes (PROC_CN_MCAST_IGNORE, so that the kernel stops generating events when nobody
  // else listens), then closes the socket.
  ~ProcConnector();

  // Non-blocking socket for epoll; level-triggered EPOLLIN is the right interest.
  int fd() const { return socket_.get(); }
  // The effective receive buffer, as the kernel reports it.
  size_t receive_buffer_bytes() const { return receive_buffer_bytes_; }
  // Whether the kernel filters the events (ConnectorFilterProgram); false only when attaching
  // failed, and then sequence gaps are tracked as losses.
  bool filtered() const { return filtered_; }

  enum class ReceiveStatus {
    kOk,          // at least one datagram was read (the fd may still be readable)
    kDrained,     // at least one datagram was read, and then the queue was empty
    kWouldBlock,  // nothing to read
    // ENOBUFS: the kernel dropped events; batch->lost is set; rescan /proc. The kernel delivers
    // nothing new until the queue is empty, so this call kept reading (up to the datagram
    // limit); the events it read are valid. The socket keeps working.
    kOverflow,
    kError,  // any other error; *error names it
  };
  // Appends what arrived to `batch` (the caller clears it). The first call also returns the
  // events and the acknowledgement read while Open() waited for it.
  ReceiveStatus Receive(ConnectorBatch* batch, std::string* error = nullptr);

 private:
  ProcConnector(UniqueFd socket, size_t receive_buffer_bytes);
  // Sends LISTEN and reads until its acknowledgement; false with *error when the kernel refused
  // or ignored it.
  bool Subscribe(std::string* error);
  bool SendRequest(bool listen, uint32_t acknowledge, std::string* error);

  UniqueFd socket_;
  size_t receive_buffer_bytes_ = 0;
  uint32_t port_id_ = 0;                  // our netlink address; also the cookie in our requests' ack field
  int listen_requests_sent_ = 0;          // kernels before 6.6 count each LISTEN; balanced on close
  bool draining_after_overflow_ = false;  // ENOBUFS seen, queue not yet read empty
  bool filtered_ = false;
  ConnectorSequenceTracker sequence_tracker_;
  ConnectorBatch pending_;  // read during Subscribe(), handed out by the first Receive()
  netlink::DatagramReader reader_;
};

}  // namespace pidfd_exporter
