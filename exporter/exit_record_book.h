// ExitRecordBook: taskstats exit records held until their exit events come. The kernel writes
// one record per exiting task inside do_exit(), before the connector's exit event is even
// sent (docs/architecture.md, "Exit records"); the book reads records lazily, in batches,
// and hands each exit event the record that belongs to it. It knows nothing of sets or
// metrics: failures go to an error counter. Owns the taskstats listener. Event-loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "taskstats.h"

namespace pidfd_exporter {

// What an exit event says of the task whose record it wants.
struct ExitEventKey {
  int pid = 0;
  int tgid = 0;
  int parent_tgid = 0;
  uint32_t wait_status = 0;
};

class ExitRecordBook {
 public:
  using ErrorCounter = std::function<void(std::string_view operation)>;
  // Sees every record as it is read, threads' too (exporter/exit_resources.h sums them).
  using RecordObserver = std::function<void(const TaskExitRecord& record, int64_t now_ns)>;
  ExitRecordBook(std::unique_ptr<TaskstatsListener> listener, ErrorCounter count_error,
                 RecordObserver observe = nullptr);

  // An exit event whose record is not needed now: paired later, in a batch, off the path of
  // fresh forks (at once when kMaxNotedExits are waiting).
  void Note(const ExitEventKey& exit);
  // The record of `exit`, removed from the book (records queued so far are read first).
  // nullopt when none fits (lost to an overflow).
  std::optional<TaskExitRecord> Take(const ExitEventKey& exit);
  // The record of process `pid`'s own end (its leader's record) whose status is
  // `wait_status` when known, left in the book for its exit event. Null when there is none.
  const TaskExitRecord* Peek(int pid, std::optional<uint32_t> wait_status);
  // Reads what is queued, pairs every noted exit with its record, drops leftovers older than
  // kMaxAgeNs (their events were lost: an old leftover would be handed to the PID's next
  // process), and everything past kMaxRecords.
  void Pair();
  // The connector's queue is empty: pair when enough exits wait to make a batch worth it.
  void PairIfBacklogged();
  // The connector lost events: the records of those exits would wait forever.
  void DropAll();

  static constexpr size_t kMaxRecords = 16384;
  static constexpr int64_t kMaxAgeNs = 10'000'000'000;
  // Pairing reads ~1.5 us of records per exit: it runs once the connector's queue is empty
  // from kPairBacklog on, and at once from kMaxNotedExits (~5 MiB of queued records in the
  // 8 MiB receive buffer at ~1.3 KiB each), whatever waits.
  static constexpr size_t kPairBacklog = 512;
  static constexpr size_t kMaxNotedExits = 4096;

 private:
  void Read();
  std::optional<TaskExitRecord> TakeRead(const ExitEventKey& exit);
  void Expire();

  std::unique_ptr<TaskstatsListener> listener_;
  ErrorCounter count_error_;
  RecordObserver observe_;
  TaskstatsBatch batch_;
  // By task id, oldest first.
  std::unordered_map<int, std::vector<TaskExitRecord>> records_;
  std::vector<ExitEventKey> noted_;
};

}  // namespace pidfd_exporter
