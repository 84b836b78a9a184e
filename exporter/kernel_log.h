// kernel_log: the OOM killer's victims as the kernel log (/dev/kmsg) names them. KernelLog owns a
// non-blocking /dev/kmsg descriptor opened at the end of the ring buffer (only records written
// after the open are read: the buffer's history would replay old kills) and turns records into
// OomKill values. It never decides what a kill means for a watched process (oom_attribution
// does). The parser is a pure function over one record, so recorded lines are replayed in tests.
// Event-loop thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unique_fd.h"

namespace pidfd_exporter {

// One OOM kill as the kernel logged it. Two records name each victim ("oom-kill:...,pid=N" before
// the kill, rate-limited; "...Killed process N (comm)" after the signal, always): each parses to
// an OomKill of the same PID. PIDs are those of the initial PID namespace.
struct OomKill {
  int pid = 0;
  std::string comm;                  // the victim's name, at most 15 bytes; empty when the line has none
  std::string memory_cgroup;         // task_memcg= of the "oom-kill:" line; empty otherwise
  uint64_t kernel_microseconds = 0;  // the record's stamp (local_clock, not CLOCK_MONOTONIC)
};

// Parses one /dev/kmsg record ("PRIORITY,SEQUENCE,MICROSECONDS,FLAGS[,...];TEXT\n" then optional
// " KEY=VALUE" continuation lines). Only records of the kernel facility (0) count: a process that
// writes to /dev/kmsg is given the user facility, so it cannot forge a victim. nullopt for any
// other record.
std::optional<OomKill> ParseKernelLogRecord(std::string_view record);

class KernelLog {
 public:
  // Opens /dev/kmsg (or `path`, for tests) non-blocking and seeks to its end. Null with *error
  // when it cannot be read: with kernel.dmesg_restrict=1 that needs CAP_SYSLOG.
  static std::unique_ptr<KernelLog> Open(std::string* error, const char* path = "/dev/kmsg");

  int fd() const { return fd_.get(); }

  enum class ReadStatus {
    kDrained,  // everything queued was read
    kLost,     // EPIPE: records were overwritten before we read them (victims may be missing)
    kError,    // any other error; *error names it
  };
  // Reads every queued record (bounded by kMaxRecordsPerRead) and appends the OOM kills.
  ReadStatus Read(std::vector<OomKill>* kills, std::string* error);

  // One record is at most ~1 KiB of text plus its dictionary; a smaller buffer makes read() fail
  // with EINVAL.
  static constexpr size_t kRecordBufferBytes = 8192;
  // Boot or a flood can queue thousands of records: at most this many per call, the rest at the
  // next wake-up, so the loop is never held by the log.
  static constexpr int kMaxRecordsPerRead = 512;

 private:
  explicit KernelLog(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace pidfd_exporter
