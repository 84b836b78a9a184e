// ExitResources: what each exited process used — CPU, peak memory, storage I/O — summed from the
// taskstats exit records (exporter/taskstats.h), which are per thread, by thread group, and handed
// to the set that claims the process's exit. Records arrive before the exit is counted (the
// kernel sends them from do_exit(), before the process is a zombie) or, read lazily, after: a sum
// and its claim meet in whichever order they come. It knows nothing of sets beyond the slot a
// claim carries and writes no metrics (the deliver callback does, through ExitAccounting).
// Event-loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>

#include "taskstats.h"

namespace pidfd_exporter {

struct ProcessResources {
  // Split like getrusage() does (cputime_adjust): the scheduler's exact run time, divided in the
  // ratio of the tick-sampled user and system times.
  double user_seconds = 0;
  double system_seconds = 0;
  uint64_t peak_rss_bytes = 0;  // the largest hiwater_rss among its threads (they share one mm)
  uint64_t read_bytes = 0;
  uint64_t write_bytes = 0;
};

class ExitResources {
 public:
  using Deliver = std::function<void(size_t slot, const ProcessResources& resources)>;
  explicit ExitResources(Deliver deliver) : deliver_(std::move(deliver)) {}

  // A record as read (every task on the host: the process it belongs to may be claimed later).
  void RecordRead(const TaskExitRecord& record, int64_t now_ns);
  // The exit of process `pid` was counted in `slot` with `wait_status` (when known): its sum goes
  // there, now or when its last record is read.
  void Claim(int pid, std::optional<uint32_t> wait_status, size_t slot, int64_t now_ns);
  // Drops sums and claims older than kMaxAgeNs (a claim whose records were lost to an overflow).
  // Returns the claims dropped.
  size_t Expire(int64_t now_ns);
  bool HasClaims() const { return !claims_.empty(); }
  size_t SumsHeld() const { return sums_.size(); }

  static constexpr int64_t kMaxAgeNs = 10'000'000'000;
  // Sums of processes nobody claims (not watched) are kept at most this many.
  static constexpr size_t kMaxSums = 16384;

  // The getrusage()-like split of one process's summed records (public for tests).
  struct Sum {
    uint64_t user_microseconds = 0;
    uint64_t system_microseconds = 0;
    uint64_t runtime_nanoseconds = 0;
    uint64_t peak_rss_kib = 0;
    uint64_t read_bytes = 0;
    uint64_t write_bytes = 0;
    bool complete = false;  // the record of its last task (group_dead) was added
    uint32_t exit_code = 0;
    int64_t updated_ns = 0;
  };
  static ProcessResources Resources(const Sum& sum);

 private:
  struct PendingClaim {
    size_t slot = 0;
    std::optional<uint32_t> wait_status;
    int64_t claimed_ns = 0;
  };
  Deliver deliver_;
  std::unordered_map<int, Sum> sums_;             // by thread group id
  std::unordered_map<int, PendingClaim> claims_;  // by process id
};

}  // namespace pidfd_exporter
