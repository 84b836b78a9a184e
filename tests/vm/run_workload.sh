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

fetch() {
  # (busybox 1.35's wget -T crashes: bound it with timeout instead)
  if command -v curl >/dev/null 2>&1; then curl -s -m 10 "$URL$1"; else timeout 10 wget -q -O - "$URL$1"; fi
}
# value 'name{labels}': the sample's value, empty when absent
value() { fetch /metrics | grep -F "$1 " | head -1 | cut -d' ' -f2; }
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
ready() { fetch /-/ready 2>/dev/null | grep -q '^Ready'; }
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
kill -TERM $EXPORTER_PID 2>/dev/null
wait $EXPORTER_PID 2>/dev/null

echo "==== RESULTS BEGIN ===="
echo "KERNEL $(uname -r)"
echo "LOADAVG $(cat /proc/loadavg)"
cat "$WORK"/holds.out "$WORK"/reuse.out "$WORK"/burst.out "$WORK"/linger.out 2>/dev/null
for name in zombies final; do
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
