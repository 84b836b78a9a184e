#!/usr/bin/env bash
# Scenario 3: idle cost with N watched sleeping processes (default 10,000 in 100 sets).
# Over WINDOW seconds (default 60) with nothing exiting and nobody scraping: exporter CPU
# (utime+stime ticks and schedstat ns), wake-ups (voluntary + involuntary context switches
# of all its threads, from /proc/PID/task/*/status) and the /proc scans that ran
# (pidfd_exporter_scan_duration_seconds). Two configs: scan_interval 5s (the default) and
# 1h (no scan in the window: whatever remains is not the scan timer), with proc_connector
# auto and off: the connector wakes the exporter for every fork/exit of the whole host, so
# host_forks/min (from /proc/stat "processes") is printed next to it. "1h auto,no-records":
# the connector without taskstats exit records (read on the connector's wake-ups, not their own).
# Usage: bench/idle.sh [--quick]   (quick: 1,000 processes, 15 s)
source "$(dirname "$0")/lib.sh"
ensure_build

if [ $QUICK = 1 ]; then N=${N:-1000}; WINDOW=${WINDOW:-15}; else N=${N:-10000}; WINDOW=${WINDOW:-60}; fi
SETS=100
machine_line
echo "idle: $N sleeping processes in $SETS sets, ${WINDOW} s window, no scrapes"
start_sleepers "$N" "$SETS" i

printf '%-18s %12s %12s %14s %10s %14s %16s %14s\n' "scan,connector" "cpu_ms/min" "(ticks)" wakeups/min scans/min scan_ms_each "cpu_beyond_scans" "host_forks/min"
for variant in "5s auto auto" "1h auto auto" "1h auto off" "1h off auto"; do
  read -r interval connector taskstats <<<"$variant"
  write_sets_config "$WORK/idle.yml" "$SETS" i "$interval" "$connector" "$taskstats"
  start_exporter "$WORK/idle.yml"
  wait_metric "$EXPORTER_PORT" pidfd_processes "$N"
  sleep 3
  s0=$(metric "$EXPORTER_PORT" pidfd_exporter_scan_duration_seconds_sum)
  k0=$(metric "$EXPORTER_PORT" pidfd_exporter_scan_duration_seconds_count)
  sleep 0.5  # let the scrape's own work finish before the window opens
  f0=$(awk '/^processes/{print $2}' /proc/stat)
  t0=$(cpu_ticks "$EXPORTER_PID"); n0=$(cpu_ns "$EXPORTER_PID"); read -r v0 i0 < <(ctx_switches "$EXPORTER_PID")
  for f in /proc/"$EXPORTER_PID"/task/*; do
    echo "$(basename "$f") $(cat "$f/comm") $(awk '/^voluntary_ctxt_switches/{v=$2} /^nonvoluntary_ctxt_switches/{n=$2} END{print v+n}' "$f/status")"
  done >"$WORK/threads0"
  sleep "$WINDOW"
  f1=$(awk '/^processes/{print $2}' /proc/stat)
  t1=$(cpu_ticks "$EXPORTER_PID"); n1=$(cpu_ns "$EXPORTER_PID"); read -r v1 i1 < <(ctx_switches "$EXPORTER_PID")
  for f in /proc/"$EXPORTER_PID"/task/*; do
    echo "$(basename "$f") $(cat "$f/comm") $(awk '/^voluntary_ctxt_switches/{v=$2} /^nonvoluntary_ctxt_switches/{n=$2} END{print v+n}' "$f/status")"
  done >"$WORK/threads1"
  s1=$(metric "$EXPORTER_PORT" pidfd_exporter_scan_duration_seconds_sum)
  k1=$(metric "$EXPORTER_PORT" pidfd_exporter_scan_duration_seconds_count)
  awk -v w="$WINDOW" -v iv="$interval,$connector$([ "$connector" = auto ] && [ "$taskstats" = off ] && echo ",no-records")" -v f0="$f0" -v f1="$f1" -v t0="$t0" -v t1="$t1" -v n0="$n0" -v n1="$n1" -v v0="$v0" -v v1="$v1" \
    -v i0="$i0" -v i1="$i1" -v s0="$s0" -v s1="$s1" -v k0="$k0" -v k1="$k1" -v hz="$CLK_TCK" 'BEGIN{
      m = 60 / w; cpu = (n1-n0)/1e6*m; scans = (k1-k0)*m; scanms = (k1>k0) ? (s1-s0)*1000/(k1-k0) : 0
      printf "%-18s %12.1f %12.0f %14.0f %10.1f %14.1f %13.1f ms %14.0f\n", iv, cpu, (t1-t0)*1000/hz*m,
        ((v1+i1)-(v0+i0))*m, scans, scanms, cpu - scans*scanms, (f1-f0)*m }'
  join "$WORK/threads0" "$WORK/threads1" | awk -v m="$(awk -v w="$WINDOW" 'BEGIN{print 60/w}')" \
    '{d=$5-$3; if (d>0) printf "    thread %-16s %8.0f wake-ups/min\n", $2, d*m}'
  stop_exporter
done
stop_sleepers
echo "(wake-ups = voluntary+involuntary context switches of all threads; cpu_beyond_scans = CPU/min minus scans x scan wall time)"
