// The eBPF half of exporter/final_runtime_probe.h: at sched_process_free, when a task's memory is
// handed back (after its parent reaped it, so its run time can no longer grow), write the task's
// final run time to a ring buffer. The taskstats exit record is built in do_exit() before the
// address space is torn down and reads a run time last brought up to date at the previous tick;
// the difference is what a parent's getrusage(RUSAGE_CHILDREN) sees and the record does not
// (BENCHMARKS.md §10). Built with clang -target bpf; field offsets are relocated by libbpf
// against the running kernel's BTF (CO-RE), so the structures below name only what is read.
// clang-format off: <linux/types.h> first, since libbpf's headers use its __u32 and __u64
// without including it.
#include <linux/types.h>
// clang-format on
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <linux/bpf.h>

#include "final_runtime_record.h"

struct sched_entity {
  __u64 sum_exec_runtime;
} __attribute__((preserve_access_index));

struct task_struct {
  int exit_code;
  int pid;
  int tgid;
  __u64 utime;
  __u64 stime;
  __u64 start_boottime;
  struct sched_entity se;
} __attribute__((preserve_access_index));

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, FINAL_RUNTIME_RING_BYTES);
} final_runtimes SEC(".maps");

// Records the ring had no room for (the reader was late): a count, read by the exporter.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} dropped SEC(".maps");

SEC("raw_tp/sched_process_free")
int record_final_runtime(struct bpf_raw_tracepoint_args* context) {
  const struct task_struct* task = (const struct task_struct*)context->args[0];
  struct final_runtime_record* record = bpf_ringbuf_reserve(&final_runtimes, sizeof(*record), 0);
  if (!record) {
    __u32 zero = 0;
    __u64* count = bpf_map_lookup_elem(&dropped, &zero);
    if (count) __sync_fetch_and_add(count, 1);
    return 0;
  }
  record->pid = BPF_CORE_READ(task, pid);
  record->tgid = BPF_CORE_READ(task, tgid);
  record->runtime_ns = BPF_CORE_READ(task, se.sum_exec_runtime);
  record->user_ns = BPF_CORE_READ(task, utime);
  record->system_ns = BPF_CORE_READ(task, stime);
  record->start_boottime_ns = BPF_CORE_READ(task, start_boottime);
  record->exit_code = (__u32)BPF_CORE_READ(task, exit_code);
  record->padding = 0;
  // No wake-up: the exporter reads the ring when it handles exits and on a timer while it
  // waits for a record (exporter/tracker_exit_counts.cc), not once per task freed on the host.
  bpf_ringbuf_submit(record, BPF_RB_NO_WAKEUP);
  return 0;
}

// bpf_probe_read_kernel (behind BPF_CORE_READ) is offered to GPL-compatible programs only.
char LICENSE[] SEC("license") = "GPL";
