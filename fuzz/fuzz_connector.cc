// libFuzzer target: ParseConnectorMessages on arbitrary recv() buffers. It must never read
// outside the buffer (ASan), whatever the netlink lengths claim, and must keep its counts
// consistent. The sequence tracker is kept across inputs like the real socket's.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "proc_connector.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pidfd_exporter;
  static ConnectorSequenceTracker tracker;
  ConnectorBatch batch;
  ParseConnectorMessages(std::span<const uint8_t>(data, size), &tracker, &batch);
  // One event needs at least a netlink header, a cn_msg and a proc_event header.
  if (batch.events.size() * 16 > size) std::abort();
  for (const ProcEvent& event : batch.events) {
    if (event.kind == ProcEvent::Kind::kComm && event.comm.size() > 16) std::abort();
  }
  // The same buffer without gap detection, then split at an arbitrary point (a truncated datagram).
  ConnectorBatch plain;
  ParseConnectorMessages(std::span<const uint8_t>(data, size), nullptr, &plain);
  if (plain.events.size() != batch.events.size()) std::abort();
  if (size > 1) {
    ConnectorBatch truncated;
    ParseConnectorMessages(std::span<const uint8_t>(data, size / 2), nullptr, &truncated);
  }
  if (size % 97 == 0) tracker.Reset();
  return 0;
}
