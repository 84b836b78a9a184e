// ExitResources: what each exited process used — CPU, peak memory, storage I/O — summed from the
// taskstats exit records (exporter/taskstats.h), which are per thread, by thread group, and handed
// to the set that claims the process's exit. Records arrive before the exit is counted (the
// kernel sends them from do_exit(), before the process is a zombie) or, read lazily, after: a sum
// and its claim meet in whichever order they come. It knows nothing of sets beyond the slot a
// claim carries and writes no metrics (the deliver callbacks do, through ExitAccounting).
// A record's run time stops at do_exit(), before the address space is torn down, and was last
// brought up to date at the previous tick. Where the eBPF probe runs
// (exporter/final_runtime_probe.h), the main thread's final run time comes once the kernel frees
// it (after the reap), and the difference is delivered then as a second, CPU-only amount: what a
// parent's getrusage(RUSAGE_CHILDREN) counts, in two steps. Event-loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <utility>

#include "final_runtime_probe.h"
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

// CPU a process used after its exit record was built: counted when its main thread is freed.
struct FinalCpu {
  double user_seconds = 0;
  double system_seconds = 0;
};

class ExitResources {
 public:
  using Deliver = std::function<void(size_t slot, const ProcessResources& resources)>;
  using DeliverFinalCpu = std::function<void(size_t slot, const FinalCpu& cpu)>;
  explicit ExitResources(Deliver deliver) : deliver_(std::move(deliver)) {}
  // Final run times will come (the probe runs): delivered processes wait for theirs. Without
  // this call nothing waits.
  void ExpectFinalRuntimes(DeliverFinalCpu deliver_final_cpu) {
    deliver_final_cpu_ = std::move(deliver_final_cpu);
  }

  // A record as read (every task on the host: the process it belongs to may be claimed later).
  void RecordRead(const TaskExitRecord& record, int64_t now_ns);
  // The exit of process `pid` was counted in `slot` with `wait_status` (when known): its sum goes
  // there, now or when its last record is read. `start_time_ticks` (/proc stat field 22, 0 when
  // unknown) tells its final run time from that of an earlier process with the same PID.
  void Claim(int pid, std::optional<uint32_t> wait_status, size_t slot, int64_t now_ns,
             uint64_t start_time_ticks = 0);
  // A task the kernel freed (every task on the host). Only a main thread's counts: its process's
  // CPU after its record goes to the slot that claimed the process, now or at the claim.
  void FinalRuntimeRead(const FinalRuntime& task, int64_t now_ns);
  // Drops sums and claims older than kMaxAgeNs (a claim whose records were lost to an overflow),
  // and processes that waited kFinalMaxAgeNs for their final run time. Returns the claims dropped.
  size_t Expire(int64_t now_ns);
  bool HasClaims() const { return !claims_.empty(); }
  // Processes counted whose main thread the kernel has not freed yet (their parent has not
  // reaped them, or the free is not read yet).
  bool AwaitsFinalRuntimes() const { return !awaiting_final_.empty(); }
  size_t SumsHeld() const { return sums_.size(); }

  static constexpr int64_t kMaxAgeNs = 10'000'000'000;
  // A zombie left unreaped longer than this keeps the run time of its record.
  static constexpr int64_t kFinalMaxAgeNs = 60'000'000'000;
  // Sums of processes nobody claims (not watched) are kept at most this many.
  static constexpr size_t kMaxSums = 16384;

  // What the record of a process's main thread said, to be compared with its final run time.
  struct MainThreadRecord {
    uint64_t runtime_nanoseconds = 0;
    uint64_t user_microseconds = 0;
    uint64_t system_microseconds = 0;
    uint32_t exit_code = 0;
  };
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
    std::optional<MainThreadRecord> main_thread;
    std::optional<FinalRuntime> main_thread_final;  // freed before its claim came
  };
  static ProcessResources Resources(const Sum& sum);
  // The CPU of a main thread after its record; nullopt when `freed` cannot be the same task (its
  // exit status differs, or it ran less than the record says).
  static std::optional<FinalCpu> CpuAfterRecord(const MainThreadRecord& record, const FinalRuntime& freed);
  // Counted processes that will get no final run time (a zombie unreaped for kFinalMaxAgeNs, a
  // later process with the PID counted first, or kMaxSums waiting), since the last call.
  size_t TakeFinalRuntimesLost() { return std::exchange(final_runtimes_lost_, 0); }

 private:
  struct PendingClaim {
    size_t slot = 0;
    std::optional<uint32_t> wait_status;
    int64_t claimed_ns = 0;
    uint64_t start_time_ticks = 0;
  };
  // A process whose sum was delivered and whose main thread was not freed yet.
  struct AwaitingFinal {
    size_t slot = 0;
    uint64_t start_time_ticks = 0;  // 0: unknown
    MainThreadRecord record;
    int64_t delivered_ns = 0;
  };
  void DeliverSum(int tgid, const Sum& sum, size_t slot, uint64_t start_time_ticks, int64_t now_ns);
  // False (nothing delivered) when `freed` is not the task `record` describes.
  bool DeliverFinal(size_t slot, uint64_t start_time_ticks, const MainThreadRecord& record,
                    const FinalRuntime& freed);

  Deliver deliver_;
  DeliverFinalCpu deliver_final_cpu_;
  std::unordered_map<int, Sum> sums_;                      // by thread group id
  std::unordered_map<int, PendingClaim> claims_;           // by process id
  std::unordered_map<int, AwaitingFinal> awaiting_final_;  // by process id
  size_t final_runtimes_lost_ = 0;
};

}  // namespace pidfd_exporter
