// taskstats: the kernel's per-task exit records (generic netlink family "TASKSTATS", listener
// registered for every possible CPU). TaskstatsListener owns the registered socket and turns its
// datagrams into TaskExitRecord values. The kernel builds one record inside do_exit() of every
// exiting task, before the task is a zombie and before the proc connector's exit event is sent,
// with the name the task had when it died. That name is what the tracker needs for a process that
// exec'd and was reaped before its new name could be read from /proc: /proc forgets a process at
// the reap, the record cannot be overtaken by it.
// Event-loop thread only: nothing here is synchronised. It never blocks (the socket is
// non-blocking; Open() alone waits, up to kAcknowledgeTimeout per request, for the kernel) and never
// decides what a record means for a process set (that is the tracker's job).
// The parser is a pure function over bytes, so recorded datagrams can be replayed in tests.
#pragma once

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

// What the kernel reported of one task's end. PIDs are those of the initial PID namespace.
struct TaskExitRecord {
  int pid = 0;              // the task (thread id)
  int tgid = 0;             // its process; 0 from kernels whose records lack the field (taskstats < v12)
  int parent_tgid = 0;      // the real parent's process id at the exit; 0 when unknown
  uint32_t exit_code = 0;   // raw wait status, the same value as the connector's exit event
  bool group_dead = false;  // the last task of its process: the process ended with it
  std::string comm;         // the task's name at the exit, at most 15 bytes, any byte but NUL
  // What the task used (its own, not its process's: records are per thread). 0 where the
  // kernel left a field out (a payload shorter than the field's offset).
  uint64_t user_microseconds = 0;    // ac_utime: tick-sampled user time
  uint64_t system_microseconds = 0;  // ac_stime: tick-sampled system time
  uint64_t runtime_nanoseconds = 0;  // cpu_run_virtual_total: the scheduler's exact run time
  uint64_t peak_rss_kib = 0;         // hiwater_rss of the task's memory (shared by its threads)
  uint64_t read_bytes = 0;           // storage I/O, rounded down to 1 KiB by the kernel
  uint64_t write_bytes = 0;
  int64_t received_monotonic_ns = 0;  // set by the reader (not the parser): for expiry
};

struct TaskstatsBatch {
  std::vector<TaskExitRecord> records;
  size_t malformed = 0;  // messages skipped: truncated, not an exit record, or not from the kernel

  void Clear() {
    records.clear();
    malformed = 0;
  }
};

// Appends the exit records of one recv() buffer (one or more netlink messages) to `out`. Only
// messages of `family_id` (the id the kernel gave "TASKSTATS") with command TASKSTATS_CMD_NEW
// are records; NLMSG_NOOP and NLMSG_ERROR (replies to our requests) are skipped. Never reads
// outside `data`: a truncated or malformed message is counted in out->malformed and skipped, and
// parsing stops where message boundaries can no longer be trusted.
void ParseTaskstatsMessages(std::span<const uint8_t> data, uint16_t family_id, TaskstatsBatch* out);

// Builds a generic-netlink request: nlmsghdr + genlmsghdr + one string attribute (NUL included).
// Used for CTRL_CMD_GETFAMILY("TASKSTATS") and TASKSTATS_CMD_GET with (DE)REGISTER_CPUMASK.
std::vector<uint8_t> BuildGenericNetlinkRequest(uint16_t family_id, uint8_t command, uint16_t attribute_type,
                                                const std::string& value, uint32_t sequence);

// The registered socket.
//
// Where it works (measured on 6.18): the initial network namespace (the family exists only
// there), the initial PID and user namespaces (elsewhere the kernel refuses the registration),
// and only with CAP_NET_ADMIN (the registration is an admin command: EPERM without it).
// Open() sends two requests (family lookup, registration) and may wait kAcknowledgeTimeout for
// each.
class TaskstatsListener {
 public:
  // One record is a ~600-byte datagram (~1.3 KiB of buffer accounting): 8 MiB holds ~6,000,
  // as many as the proc connector's buffer holds exit events.
  static constexpr size_t kDefaultReceiveBufferBytes = 8 << 20;
  static constexpr std::chrono::milliseconds kAcknowledgeTimeout{250};
  // Receive() reads at most this many datagrams per call, so one busy source cannot starve the
  // loop.
  static constexpr int kMaxDatagramsPerReceive = 1024;

  // Opens, sizes the receive buffer (as ProcConnector::Open does), resolves the family and
  // registers for every possible CPU (/sys/devices/system/cpu/possible). On failure returns null
  // and sets *error to a sentence naming the reason, e.g. "permission denied: ... CAP_NET_ADMIN".
  static std::unique_ptr<TaskstatsListener> Open(size_t receive_buffer_bytes, std::string* error);

  TaskstatsListener(const TaskstatsListener&) = delete;
  TaskstatsListener& operator=(const TaskstatsListener&) = delete;
  // Deregisters (the kernel would otherwise keep building records for a closed socket until a
  // send to it fails), then closes the socket.
  ~TaskstatsListener();

  int fd() const { return socket_.get(); }
  size_t receive_buffer_bytes() const { return receive_buffer_bytes_; }
  // The id this kernel gave the TASKSTATS family (assigned at boot): the type of its records.
  uint16_t family_id() const { return family_id_; }

  enum class ReceiveStatus {
    kOk,          // at least one datagram was read (more may be queued)
    kDrained,     // at least one datagram was read, and then the queue was empty
    kWouldBlock,  // nothing to read
    kOverflow,    // ENOBUFS: the kernel dropped records; the ones read are valid
    kError,       // any other error; *error names it
  };
  // Appends what arrived to `batch` (the caller clears it).
  ReceiveStatus Receive(TaskstatsBatch* batch, std::string* error = nullptr);

 private:
  TaskstatsListener(UniqueFd socket, size_t receive_buffer_bytes);
  // Sends one request and waits for its acknowledgement (NLMSG_ERROR with our sequence number);
  // `reply` receives the payload of a non-error answer (the family description). Records that
  // arrive meanwhile are kept for the first Receive().
  bool Request(const std::vector<uint8_t>& request, uint32_t sequence, std::vector<uint8_t>* reply,
               int* kernel_error, std::string* error);

  UniqueFd socket_;
  size_t receive_buffer_bytes_ = 0;
  uint16_t family_id_ = 0;
  std::string cpu_mask_;  // the mask registered, deregistered on close
  uint32_t next_sequence_ = 1;
  TaskstatsBatch pending_;  // records read while Open() waited for a reply
  netlink::DatagramReader reader_;
};

}  // namespace pidfd_exporter
