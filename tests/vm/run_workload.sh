#!/bin/sh
# Runs the old-kernel test's workload beside a running exporter and prints what
# tests/vm/check_results.py needs: the workload's own measurements (TRUTH lines), a scrape
# while 4 zombies linger, a final scrape once every exit is counted, and the exporter's log.
# POSIX sh: it runs under busybox in the Debian 12 VM (tests/vm/init) and under bash on the host.
#   run_workload.sh EXPORTER BINDIR CONFIG WORKDIR [exporter flags...]
# BINDIR holds `workload` and its links (hold0, hold20, ...). Every wait has a deadline.
set -u
EXPORTER=$1 BINDIR=$2 CONFIG=$3 WORK=$4
shift 4
PORT=${VM_TEST_PORT:-19721}
URL=http://127.0.0.1:$PORT
mkdir -p "$WORK"
EXPECTED_EXITS=329  # 20 + 20 + 5 hold, 40 + 40 reuse, 200 burst, 4 linger

fetch() { fetch_at "$PORT" "$1"; }
# fetch_at PORT PATH
fetch_at() {
  # (busybox 1.35's wget -T crashes: bound it with timeout instead)
  if command -v curl >/dev/null 2>&1; then
    curl -s -m 10 "http://127.0.0.1:$1$2"
  else
    timeout 10 wget -q -O - "http://127.0.0.1:$1$2"
  fi
}
# value 'name{labels}': the sample's value, empty when absent
value() { value_at "$PORT" "$1"; }
value_at() { fetch_at "$1" /metrics | grep -F "$2 " | head -1 | cut -d' ' -f2; }
# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds
wait_for() {
  what=$1 limit=$2
  shift 2
  tries=$((limit * 10))
  while [ $tries -gt 0 ]; do
    if "$@"; then return 0; fi
    sleep 0.1
    tries=$((tries - 1))
  done
  echo "TIMEOUT waiting for $what (${limit} s)"
  return 1
}
is_value() { [ "$(value "$1")" = "$2" ]; }
all_exits_counted() {
  total=$(fetch /metrics | awk '/^pidfd_process_exits_total\{/ {sum += $2} END {printf "%d", sum}')
  [ "$total" = "$EXPECTED_EXITS" ]
}
line_in() { grep -q "$2" "$1" 2>/dev/null; }

"$EXPORTER" --config.file="$CONFIG" --web.listen-address=127.0.0.1:$PORT "$@" >"$WORK/exporter.log" 2>&1 &
EXPORTER_PID=$!
status=0
ready() { ready_at "$PORT"; }
ready_at() { fetch_at "$1" /-/ready 2>/dev/null | grep -q '^Ready'; }
wait_for "the exporter to be ready" 60 ready || status=1

if [ $status = 0 ]; then
  "$BINDIR/workload" holds "$BINDIR" >"$WORK/holds.out" 2>&1
  "$BINDIR/workload" reuse "$BINDIR" 40 >"$WORK/reuse.out" 2>&1

  "$BINDIR/workload" burst "$BINDIR" 200 >"$WORK/burst.out" 2>&1 &
  burst=$!
  wait_for "burst children forked" 60 line_in "$WORK/burst.out" "BURST ready" &&
    wait_for "200 burst children watched" 60 is_value 'pidfd_processes{set="burst"}' 200
  kill -USR1 $burst
  wait $burst

  "$BINDIR/workload" linger "$BINDIR" 4 >"$WORK/linger.out" 2>&1 &
  linger=$!
  wait_for "linger children started" 30 line_in "$WORK/linger.out" "LINGER started" &&
    wait_for "4 linger children watched" 30 is_value 'pidfd_processes{set="linger"}' 4
  kill -USR1 $linger
  wait_for "linger children killed" 30 line_in "$WORK/linger.out" "LINGER zombies" &&
    wait_for "4 linger zombies seen" 30 is_value 'pidfd_zombies{set="linger"}' 4
  fetch /metrics >"$WORK/scrape_zombies.txt"
  kill -USR1 $linger
  wait $linger

  # On kernels < 6.9 without reap checks a reap is seen at the next scan (5 s).
  wait_for "all $EXPECTED_EXITS exits counted" 60 all_exits_counted
  fetch /metrics >"$WORK/scrape_final.txt"
fi

# The OOM phase, where OOM_CGROUP names a memory cgroup (tests/vm/init: cgroup v2): an OOM kill
# and a kill -9 in set "oom", seen by this exporter (kernel log and cgroup counter) and by a
# second one that reads the cgroup counter alone.
COUNTER_PORT=$((PORT + 1))
both_value() { [ "$(value_at "$PORT" "$1")" = "$2" ] && [ "$(value_at "$COUNTER_PORT" "$1")" = "$2" ]; }
if [ $status = 0 ] && [ -n "${OOM_CGROUP:-}" ]; then
  "$EXPORTER" --config.file="$CONFIG" --web.listen-address=127.0.0.1:$COUNTER_PORT \
    --debug.disable-kernel-features=oom_kernel_log "$@" >"$WORK/exporter_counter.log" 2>&1 &
  COUNTER_PID=$!
  wait_for "the counter-only exporter to be ready" 60 ready_at $COUNTER_PORT
  "$BINDIR/workload" oom "$BINDIR" "$OOM_CGROUP" >"$WORK/oom.out" 2>&1 &
  oom=$!
  # Any step that times out ends the phase: the workload and its children are killed (the
  # checker then finds no TRUTH line for set oom), never waited for.
  if wait_for "OOM children started" 30 line_in "$WORK/oom.out" "OOM started" &&
    wait_for "both OOM children watched by both" 30 both_value 'pidfd_processes{set="oom"}' 2 &&
    kill -USR1 $oom &&
    wait_for "the OOM victim reaped" 60 line_in "$WORK/oom.out" "OOM victim reaped" &&
    wait_for "the OOM kill counted by both" 30 \
      both_value 'pidfd_process_exits_total{code="SIGKILL",reason="oom_killed",set="oom"}' 1 &&
    kill -USR1 $oom; then
    wait $oom
    wait_for "the kill -9 counted by both" 30 \
      both_value 'pidfd_process_exits_total{code="SIGKILL",reason="killed",set="oom"}' 1
  else
    for pid in $(sed -n 's/^OOM started hog=\([0-9]*\) sibling=\([0-9]*\)$/\1 \2/p' "$WORK/oom.out") $oom; do
      kill -KILL "$pid" 2>/dev/null
    done
    wait $oom 2>/dev/null
  fi
  fetch_at $PORT /metrics >"$WORK/scrape_oom_both.txt"
  fetch_at $COUNTER_PORT /metrics >"$WORK/scrape_oom_counter.txt"
  kill -TERM $COUNTER_PID 2>/dev/null
  wait $COUNTER_PID 2>/dev/null
fi
kill -TERM $EXPORTER_PID 2>/dev/null
wait $EXPORTER_PID 2>/dev/null

echo "==== RESULTS BEGIN ===="
echo "KERNEL $(uname -r)"
echo "LOADAVG $(cat /proc/loadavg)"
cat "$WORK"/holds.out "$WORK"/reuse.out "$WORK"/burst.out "$WORK"/linger.out "$WORK"/oom.out 2>/dev/null
for name in zombies final oom_both oom_counter; do
  [ -f "$WORK/scrape_$name.txt" ] || continue
  echo "==== SCRAPE $name BEGIN ===="
  # Buckets only where checked: the reaps within 1 s (a short console, a quick serial port).
  grep -E '^pidfd_' "$WORK/scrape_$name.txt" 2>/dev/null | grep -v '_bucket{'
  grep -E '^pidfd_reap_latency_seconds_bucket\{.*le="1(\.0*)?"' "$WORK/scrape_$name.txt" 2>/dev/null
  echo "==== SCRAPE $name END ===="
done
echo "==== EXPORTER LOG BEGIN ===="
cat "$WORK/exporter.log"
echo "==== EXPORTER LOG END ===="
echo "==== RESULTS END ===="
