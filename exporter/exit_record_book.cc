#include "exit_record_book.h"

#include <time.h>

#include <algorithm>
#include <string>

#include "event_loop.h"
#include "log.h"

namespace pidfd_exporter {
namespace {

bool Fits(const TaskExitRecord& record, const ExitEventKey& exit) {
  return record.exit_code == exit.wait_status && (record.tgid == 0 || record.tgid == exit.tgid) &&
         (record.parent_tgid == 0 || exit.parent_tgid == 0 || record.parent_tgid == exit.parent_tgid);
}

}  // namespace

ExitRecordBook::ExitRecordBook(std::unique_ptr<TaskstatsListener> listener, ErrorCounter count_error,
                               RecordObserver observe)
    : listener_(std::move(listener)), count_error_(std::move(count_error)), observe_(std::move(observe)) {}

void ExitRecordBook::Read() {
  for (int round = 0; round < 16; ++round) {
    batch_.Clear();
    std::string error;
    const TaskstatsListener::ReceiveStatus status = listener_->Receive(&batch_, &error);
    const int64_t now = MonotonicNanoseconds();
    for (TaskExitRecord& record : batch_.records) {
      // A thread's record: the connector's filter drops thread exit events (exporter/
      // proc_connector.h), so no event would ever take it, and no process is named by it.
      if (record.tgid != 0 && record.tgid != record.pid) continue;
      const int pid = record.pid;
      record.received_monotonic_ns = now;
      if (observe_) observe_(record, now);
      records_[pid].push_back(std::move(record));
    }
    // Lost records cost only names: their exits are still counted, as unattributed at worst.
    if (status == TaskstatsListener::ReceiveStatus::kOverflow) count_error_("taskstats_overflow");
    if (status == TaskstatsListener::ReceiveStatus::kError) {
      count_error_("taskstats_receive");
      LogWarn("Taskstats receive failed", {{"err", error}});
      break;
    }
    if (status == TaskstatsListener::ReceiveStatus::kWouldBlock ||
        status == TaskstatsListener::ReceiveStatus::kDrained)
      break;
  }
}

void ExitRecordBook::Note(const ExitEventKey& exit) {
  noted_.push_back(exit);
  if (noted_.size() >= kMaxNotedExits) Pair();
}

std::optional<TaskExitRecord> ExitRecordBook::Take(const ExitEventKey& exit) {
  Pair();
  return TakeRead(exit);
}

std::optional<TaskExitRecord> ExitRecordBook::TakeRead(const ExitEventKey& exit) {
  auto found = records_.find(exit.pid);
  if (found == records_.end()) return std::nullopt;
  std::vector<TaskExitRecord>& queue = found->second;
  // Oldest first: a task's record arrives before its exit event, and the PID's next task
  // cannot exit before it was forked, after this exit. A front record that does not fit the
  // event belongs to an exit whose event was lost: dropped.
  std::optional<TaskExitRecord> taken;
  size_t used = 0;
  while (used < queue.size() && !taken) {
    const TaskExitRecord& record = queue[used++];
    if (Fits(record, exit)) taken = record;
  }
  queue.erase(queue.begin(), queue.begin() + static_cast<std::ptrdiff_t>(used));
  if (queue.empty()) records_.erase(found);
  return taken;
}

const TaskExitRecord* ExitRecordBook::Peek(int pid, std::optional<uint32_t> wait_status) {
  Pair();
  auto found = records_.find(pid);
  if (found == records_.end()) return nullptr;
  for (const TaskExitRecord& record : found->second) {
    // The process's own end: its leader's record (the record of a thread has another id).
    if (record.tgid != 0 && record.tgid != pid) continue;
    if (wait_status && *wait_status != record.exit_code) continue;
    return &record;
  }
  return nullptr;
}

void ExitRecordBook::Pair() {
  Read();
  for (const ExitEventKey& exit : noted_) TakeRead(exit);
  noted_.clear();
  Expire();
}

void ExitRecordBook::PairIfBacklogged() {
  if (noted_.size() >= kPairBacklog) Pair();
}

void ExitRecordBook::Expire() {
  const int64_t oldest_kept = MonotonicNanoseconds() - kMaxAgeNs;
  size_t kept = 0;
  for (auto queue = records_.begin(); queue != records_.end();) {
    std::vector<TaskExitRecord>& records = queue->second;
    records.erase(records.begin(),
                  std::find_if(records.begin(), records.end(), [oldest_kept](const auto& record) {
                    return record.received_monotonic_ns >= oldest_kept;
                  }));
    kept += records.size();
    queue = records.empty() ? records_.erase(queue) : std::next(queue);
  }
  if (kept > kMaxRecords) records_.clear();
}

void ExitRecordBook::DropAll() {
  Pair();
  records_.clear();
}

}  // namespace pidfd_exporter
