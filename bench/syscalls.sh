#!/usr/bin/env bash
# What one process lifecycle costs the exporter in wake-ups and system calls, per storm of
# bench/compare.sh (fork, exec, rename; 2 workers, SECONDS_RUN seconds each): loop wake-ups
# (epoll_wait calls), recvmmsg calls (connector and taskstats), context switches and CPU, all
# counted by `perf stat` on the exporter's process while the storm runs.
# Usage: bench/syscalls.sh   (EXPORTER_BINARY=... to measure another build; needs perf and root)
source "$(dirname "$0")/lib.sh"
ensure_build
EXPORTER=${EXPORTER_BINARY:-$EXPORTER}
SECONDS_RUN=${SECONDS_RUN:-4}
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)"; exit 1; }
machine_line
echo "exporter: $EXPORTER ($("$EXPORTER" --version 2>&1 | head -1))"
ln -sf /bin/true "$WORK/cmpstorm"
printf 'process_sets:\n  - name: "{{.Comm}}"\ndiscovery:\n  scan_interval: 5s\n  proc_connector: auto\n' >"$WORK/all.yml"
printf 'process_sets:\n  - name: cmpstorm\n    comm: [cmpstorm]\ndiscovery:\n  scan_interval: 5s\n  proc_connector: auto\n' >"$WORK/renamed.yml"
measure() {  # mode config
  local mode=$1 config=$2 stats="$WORK/stat_$1.txt" out forks
  start_exporter "$config"
  sleep 1
  perf stat -e 'syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvmmsg,context-switches,task-clock' \
    -p "$EXPORTER_PID" -o "$stats" -- sleep $((SECONDS_RUN + 1)) >/dev/null 2>&1 &
  local perf_pid=$!
  sleep 0.2
  out=$(FORKER_EXEC="$WORK/cmpstorm" "$HELPERS/forker" 2 "$SECONDS_RUN" "$mode" cmpstorm)
  wait $perf_pid
  stop_exporter
  forks=$(sed 's/forks=\([0-9]*\).*/\1/' <<<"$out")
  awk -v mode="$mode" -v forks="$forks" '
    { gsub(",", "", $1) }
    /epoll_wait/ { e = $1 } /recvmmsg/ { r = $1 } /context-switches/ { c = $1 } /task-clock/ { t = $1 }
    END { printf "%-7s %8d %12.2f %12.2f %12.2f %12.1f\n", mode, forks, e / forks, r / forks, c / forks, t * 1000 / forks }' "$stats"
}
printf '%-7s %8s %12s %12s %12s %12s\n' storm forks epoll_waits recvmmsgs ctx_switches cpu_us
echo "(per lifecycle)"
measure fork "$WORK/all.yml"
measure exec "$WORK/all.yml"
measure rename "$WORK/renamed.yml"
