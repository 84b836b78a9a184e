#!/usr/bin/env bash
# Scenario 4: memory per watched process. For N = 0, 1,000, 10,000 and as many as the fd
# limit allows (RLIMIT_NOFILE minus 100), N sleeping processes in one set; after the
# exporter watches them all: its VmRSS, and the kernel slab it caused (the slab caches a
# pidfd uses: filp, dentry, pidfs inode/attr, eventpoll items, from /proc/slabinfo; and
# the total Slab of /proc/meminfo), each measured before the exporter starts and after.
# Per process = (value at N - value at 0) / N.
# Usage: bench/memory.sh [--quick]   (quick: 0 and 1,000)
source "$(dirname "$0")/lib.sh"
ensure_build

MAX=$(( $(ulimit -Hn) - 100 ))
if [ $QUICK = 1 ]; then COUNTS=(0 1000); else COUNTS=(0 1000 10000 "$MAX"); fi
CSV=${MEMORY_CSV:-$WORK/memory.csv}
machine_line
echo "processes,watched,rss_kib,slab_pidfd_kib,slab_total_kib" >"$CSV"
printf '%-9s %8s %10s %16s %16s %14s %16s %16s\n' processes watched rss_kib "pidfd_slab_kib" "Slab_delta_kib" \
  "rss_B/proc" "pidfd_slab_B/proc" "Slab_B/proc"
base_rss=; base_pslab=; base_slab=; base_w=
for n in "${COUNTS[@]}"; do
  start_sleepers "$n" 1 m
  write_sets_config "$WORK/mem.yml" 1 m 1h auto
  sync; echo 2 >/proc/sys/vm/drop_caches 2>/dev/null || true  # drop reclaimable dentries/inodes: less noise
  sleep 1
  p0=$(slab_pidfd_bytes); s0=$(slab_total_kib)
  start_exporter "$WORK/mem.yml"
  wait_metric "$EXPORTER_PORT" pidfd_exporter_watched_pidfds "$n" || true
  sleep 2
  watched=$(metric "$EXPORTER_PORT" pidfd_exporter_watched_pidfds)
  rss=$(rss_kib "$EXPORTER_PID")
  p1=$(slab_pidfd_bytes); s1=$(slab_total_kib)
  pslab=$(( (p1 - p0) / 1024 )); slab=$(( s1 - s0 ))
  stop_exporter
  stop_sleepers
  echo "$n,$watched,$rss,$pslab,$slab" >>"$CSV"
  if [ "$n" = 0 ]; then
    base_rss=$rss; base_pslab=$pslab; base_slab=$slab; base_w=$watched
    printf '%-9s %8s %10s %16s %16s %14s %16s %16s\n' 0 "$watched" "$rss" "$pslab" "$slab" - - -
  else
    awk -v n="$n" -v w="$watched" -v r="$rss" -v p="$pslab" -v s="$slab" -v br="$base_rss" -v bp="$base_pslab" -v bs="$base_slab" -v bw="$base_w" \
      'BEGIN{printf "%-9s %8s %10s %16s %16s %14.0f %16.0f %16.0f\n", n, w, r, p, s, (r-br)*1024/(w-bw), (p-bp)*1024/(w-bw), (s-bs)*1024/(w-bw)}'
  fi
done
echo "(rss = exporter VmRSS; pidfd_slab = filp+dentry+pidfs_inode_cache+pidfs_attr_cache+eventpoll_epi+eventpoll_pwq bytes;"
echo " per-process columns divide by the watched count minus the N=0 count; Slab is machine-wide and noisy on this shared machine)"
