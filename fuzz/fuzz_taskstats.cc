// libFuzzer target: ParseTaskstatsMessages on arbitrary recv() buffers. It must never read
// outside the buffer (ASan), whatever the netlink and attribute lengths claim, and every record
// it yields must be one the exporter can use as a name: a task id, a comm of at most 32 bytes
// without NUL. The family id is the one of the seeds (tests/fixtures/taskstats/README.md), so
// that mutations of recorded datagrams reach the attribute parser.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "taskstats.h"

namespace {

constexpr uint16_t kFamilyId = 0x1f;
// nlmsghdr + genlmsghdr + AGGR_PID header + PID attribute + STATS header + 136 bytes of stats.
constexpr size_t kSmallestRecordBytes = 16 + 4 + 4 + 8 + 4 + 136;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pidfd_exporter;
  const std::span<const uint8_t> bytes(data, size);
  TaskstatsBatch batch;
  ParseTaskstatsMessages(bytes, kFamilyId, &batch);
  if (batch.records.size() * kSmallestRecordBytes > size) std::abort();
  // Every message takes at least a 16-byte header; a shorter tail counts once.
  if (batch.records.size() + batch.malformed > size / 16 + 1) std::abort();
  for (const TaskExitRecord& record : batch.records) {
    if (record.pid <= 0) std::abort();
    if (record.comm.size() > 32) std::abort();
    if (record.comm.find('\0') != std::string::npos) std::abort();
  }
  // Another family id changes what each message is, never where the messages begin: each one is
  // still either a record or malformed (or a skipped reply, whatever the family).
  TaskstatsBatch other;
  ParseTaskstatsMessages(bytes, kFamilyId + 1, &other);
  if (other.records.size() + other.malformed != batch.records.size() + batch.malformed) std::abort();
  // The same buffer split at an arbitrary point (a truncated datagram).
  if (size > 1) {
    TaskstatsBatch truncated;
    ParseTaskstatsMessages(bytes.first(size / 2), kFamilyId, &truncated);
  }
  return 0;
}
