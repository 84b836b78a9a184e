#!/usr/bin/env bash
# The exporter on Debian 12's own kernel (6.1): QEMU (TCG, no KVM needed) boots the kernel
# from Debian's package with an initramfs of busybox, the exporter and the static workload
# (tests/vm/README.md); the workload's parents measure exits and reaps on their own clock and
# tests/vm/check_results.py compares the exporter's scrape with them: exact exit counts and
# codes, zombies and their parents, reap latency within max(1 ms, 2 %) for holds of 0, 20 and
# 300 ms, forced PID reuse across two sets, connector and taskstats in use, the CPU of exited
# processes against wait4() (the eBPF probe), and a real OOM kill on cgroup v2 told from a
# kill -9 by the memory cgroup counter alone and with the kernel log.
# 35 s on an idle 2-core machine, up to ~2 minutes when the host is busy.
#   old_kernel_vm_test.sh EXPORTER SOURCE_DIR
set -uo pipefail
exporter=$1 source_dir=$2
build_dir=$(cd "$(dirname "$exporter")" && pwd)
workload=$build_dir/tests/vm_workload
work=$(mktemp -d /tmp/pidfd_vm.XXXXXX)
keep=0
trap '[ $keep = 1 ] && echo "work dir kept: $work" || rm -rf "$work"' EXIT

for tool in qemu-system-x86_64 cpio gzip; do
  if ! command -v $tool >/dev/null 2>&1; then
    echo "FAIL $tool not found (scripts/install-deps.sh installs qemu-system-x86, busybox-static and cpio)"
    echo "0 passed, 1 failed"
    exit 1
  fi
done
[ -x "$workload" ] || { echo "FAIL $workload not built"; echo "0 passed, 1 failed"; exit 1; }

vmlinuz=$("$source_dir/scripts/fetch-vm-kernel.sh" "$build_dir/vm-kernel") || {
  echo "FAIL could not fetch Debian 12's kernel package"
  echo "0 passed, 1 failed"
  exit 1
}
bash "$source_dir/tests/vm/build_initramfs.sh" "$exporter" "$workload" "$work/initrd.gz" || {
  echo "FAIL could not build the initramfs"
  echo "0 passed, 1 failed"
  exit 1
}
echo "# booting $(basename "$vmlinuz") in QEMU (TCG)"
started=$SECONDS
# -no-reboot + panic=-1: a kernel panic ends QEMU instead of rebooting; the timeout bounds a hang.
timeout 540 qemu-system-x86_64 -machine q35 -m 1024 -smp 2 -nographic -no-reboot -nodefaults -serial stdio \
  -kernel "$vmlinuz" -initrd "$work/initrd.gz" -append "console=ttyS0 quiet panic=-1" \
  </dev/null >"$work/console.txt" 2>&1
echo "# QEMU ran $((SECONDS - started)) s (exit $?)"
# The 6.1 kernel has none of the 6.9+ features; the connector, taskstats and the eBPF probe (BTF,
# ring buffers) work there.
python3 "$source_dir/tests/vm/check_results.py" "$work/console.txt" \
  --features reap_events=0,pidfs_identity=0,get_info=0,exit_status=0,proc_connector=1,taskstats=1,final_runtime=1 --oom
status=$?
if [ $status != 0 ]; then
  keep=1
  echo "# serial console (last 60 lines):"
  tail -60 "$work/console.txt" | sed 's/^/     /'
fi
exit $status
