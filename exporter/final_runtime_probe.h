// final_runtime_probe: the final run time of every task the kernel frees, from the eBPF program
// exporter/bpf/final_runtime.bpf.c at the sched_process_free tracepoint. The taskstats exit record
// (exporter/taskstats.h) is built before the address space is torn down and carries a run time
// last brought up to date at the previous tick; a parent's getrusage(RUSAGE_CHILDREN) sees the
// whole of it. ExitResources (exporter/exit_resources.h) counts the difference once the task is
// freed. FinalRuntimeProbe owns the loaded program, its attachment and the ring buffer it writes;
// the records of every task on the host pass through it, and it decides nothing about them.
// Needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), BTF of the running kernel
// (/sys/kernel/btf/vmlinux) and Linux 5.8+ (ring buffers); Open() says which is missing.
// Event-loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

struct bpf_object;
struct bpf_link;
struct ring_buffer;

namespace pidfd_exporter {

// One task as the kernel freed it. PIDs of the initial PID namespace.
struct FinalRuntime {
  int pid = 0;                       // the task (thread id)
  int tgid = 0;                      // its process
  uint64_t runtime_nanoseconds = 0;  // the scheduler's exact run time, all of it
  uint64_t user_nanoseconds = 0;     // tick-sampled user and system time (their ratio splits it)
  uint64_t system_nanoseconds = 0;
  uint64_t start_boottime_nanoseconds = 0;  // the task's start, as /proc stat field 22 in ns
  uint32_t exit_code = 0;                   // raw wait status, as in its taskstats record
};

class FinalRuntimeProbe {
 public:
  using Sink = std::function<void(const FinalRuntime&)>;

  // Loads and attaches the program. nullptr with *error (libbpf's own words included) when the
  // kernel or the exporter's privileges do not allow it.
  static std::unique_ptr<FinalRuntimeProbe> Open(std::string* error);
  ~FinalRuntimeProbe();
  FinalRuntimeProbe(const FinalRuntimeProbe&) = delete;
  FinalRuntimeProbe& operator=(const FinalRuntimeProbe&) = delete;

  // Hands every record written since the last call to `sink`, oldest first. Reads shared
  // memory only: no system call when the ring is empty. Returns the records handed over.
  size_t Drain(const Sink& sink);
  // Records the program could not write because the ring was full (one system call).
  uint64_t Dropped() const;

 private:
  FinalRuntimeProbe() = default;
  static int OnRecord(void* context, void* data, size_t size) noexcept;

  bpf_object* object_ = nullptr;
  bpf_link* link_ = nullptr;
  ring_buffer* ring_ = nullptr;
  int dropped_map_fd_ = -1;     // owned by object_
  const Sink* sink_ = nullptr;  // set for the duration of Drain()
};

}  // namespace pidfd_exporter
