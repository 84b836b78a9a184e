// One record of exporter/bpf/final_runtime.bpf.c's ring buffer, as both sides see it: the eBPF
// program writes it, exporter/final_runtime_probe.cc reads it. Plain C, fixed-width fields.
#ifndef PIDFD_EXPORTER_FINAL_RUNTIME_RECORD_H
#define PIDFD_EXPORTER_FINAL_RUNTIME_RECORD_H

#include <linux/types.h>

// 1 MiB: ~18,700 records (48 bytes and an 8-byte header each) between two reads.
#define FINAL_RUNTIME_RING_BYTES (1 << 20)

struct final_runtime_record {
  __s32 pid;                // the task (thread id)
  __s32 tgid;               // its process
  __u64 runtime_ns;         // se.sum_exec_runtime: the scheduler's exact run time, final
  __u64 user_ns;            // tick-sampled user time (task->utime)
  __u64 system_ns;          // tick-sampled system time (task->stime)
  __u64 start_boottime_ns;  // when the task started, CLOCK_BOOTTIME (/proc stat field 22)
  __u32 exit_code;          // the raw wait status do_exit() left (the taskstats record's too)
  __u32 padding;
};

#endif
