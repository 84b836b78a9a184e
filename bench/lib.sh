# Shared helpers of the benchmark scenario scripts (sourced, not run).
# BENCH_BUILD: the build directory (default /tmp/bench-build; never /work/main/build).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_DIR=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${BENCH_BUILD:-/tmp/bench-build}
EXPORTER=$BUILD/pidfd_exporter
HELPERS=$BUILD/bench
PE=/usr/bin/prometheus-process-exporter
WORK=$(mktemp -d /tmp/pidfd-bench.XXXXXX)
CLK_TCK=$(getconf CLK_TCK)
QUICK=0
for arg in "$@"; do [ "$arg" = "--quick" ] && QUICK=1; done

_bench_pids=()
cleanup() {
  local pid
  for pid in "${_bench_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${_bench_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Builds the exporter, the micro-benchmarks and the helpers when missing or out of date.
ensure_build() {
  if [ ! -f "$BUILD/build.ninja" ]; then
    cmake -S "$SOURCE_DIR" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  local tries
  for tries in 1 2 3; do
    cmake --build "$BUILD" --target pidfd_exporter micro_bench bench_sleepers bench_forker bench_accuracy bench_resources \
      bench_bare_listener >"$WORK/build.log" 2>&1 && return 0
    echo "build failed (attempt $tries; other engineers' files may be mid-edit), retrying in 20 s" >&2
    tail -5 "$WORK/build.log" >&2
    sleep 20
  done
  return 1
}

machine_line() {
  echo "machine: $(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"\
    "$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r),"\
    "loadavg $(cut -d' ' -f1-3 /proc/loadavg) at start (shared, noisy machine)"
}

median() { sort -g | awk '{v[NR]=$1} END{if(NR==0){print "nan"; exit} if(NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
# Nearest-rank percentile: pctl 0.99
pctl() { sort -g | awk -v q="$1" '{v[NR]=$1} END{k=int(q*NR); if(k<q*NR)k++; if(k<1)k=1; print v[k]}'; }

# CPU time of every live thread of PID in ns (schedstat: ns resolution, unlike stat's ticks).
cpu_ns() {
  # (%.0f, not %d: mawk's %d saturates at 2^31, i.e. 2.1 s)
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s+=$1} END{printf "%.0f\n", s}'
}
# utime+stime of PID (all threads, also exited ones) in ticks.
cpu_ticks() { awk '{print $14+$15}' /proc/"$1"/stat; }
# Voluntary + involuntary context switches summed over every thread.
ctx_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/{v+=$2} /^nonvoluntary_ctxt_switches/{n+=$2} END{print v, n}'
}
rss_kib() { awk '/^VmRSS/{print $2}' /proc/"$1"/status; }
# Bytes held in the slab caches a watched pidfd uses (filp, dentry, pidfs inode, epoll items).
slab_pidfd_bytes() {
  awk '$1 ~ /^(filp|dentry|pidfs_inode_cache|pidfs_attr_cache|eventpoll_epi|eventpoll_pwq)$/ {s += $2 * $4} END{print s}' /proc/slabinfo
}
slab_total_kib() { awk '/^Slab:/{print $2}' /proc/meminfo; }

# poll TENTHS COMMAND...: runs COMMAND every 0.1 s until it succeeds; fails after TENTHS tries.
poll() {
  local tries=$1 i
  shift
  for ((i = 0; i < tries; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}
http_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ]; }

# start_sleepers N SETS [PREFIX]: N paused children named PREFIX%04d; waits until ready.
start_sleepers() {
  local out="$WORK/sleepers.$$.$RANDOM"
  "$HELPERS/sleepers" "$1" "$2" "${3:-b}" >"$out" &
  SLEEPERS_PID=$!
  _bench_pids+=("$SLEEPERS_PID")
  poll 600 grep -q '^ready' "$out" 2>/dev/null && return 0
  echo "sleepers did not get ready" >&2
  return 1
}
stop_sleepers() {
  kill -TERM "$SLEEPERS_PID" 2>/dev/null || true
  wait "$SLEEPERS_PID" 2>/dev/null || true
}

# start_exporter CONFIG: sets EXPORTER_PID and EXPORTER_PORT once /-/ready answers 200.
# EXPORTER_PREFIX (e.g. "chrt -f 10") runs the exporter under a scheduling wrapper (exec'd,
# so EXPORTER_PID is the exporter itself).
start_exporter() {
  local log="$WORK/exporter.$RANDOM.log"
  # EXPORTER_ARGS: more flags (e.g. --debug.disable-kernel-features=exit_resources).
  # shellcheck disable=SC2086
  ${EXPORTER_PREFIX:-} "$EXPORTER" --config.file="$1" --web.listen-address=127.0.0.1:0 ${EXPORTER_ARGS:-} 2>"$log" &
  EXPORTER_PID=$!
  EXPORTER_LOG=$log
  _bench_pids+=("$EXPORTER_PID")
  # The port, once the log names it; a dead exporter ends the wait at once.
  listening() {
    EXPORTER_PORT=$(sed -n 's/.*msg="Listening on" address=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$EXPORTER_PORT" ] || ! kill -0 "$EXPORTER_PID" 2>/dev/null
  }
  EXPORTER_PORT=
  poll 600 listening || true
  [ -n "$EXPORTER_PORT" ] || { cat "$log" >&2; return 1; }
  poll 1200 http_ok "http://127.0.0.1:$EXPORTER_PORT/-/ready" && return 0
  echo "exporter not ready" >&2
  return 1
}
stop_exporter() {
  kill -TERM "$EXPORTER_PID" 2>/dev/null || true
  wait "$EXPORTER_PID" 2>/dev/null || true
}

# start_pe CONFIG: prometheus-process-exporter on a free port; sets PE_PID, PE_PORT.
start_pe() {
  PE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$PE" -config.path="$1" -web.listen-address=127.0.0.1:"$PE_PORT" -children=false -threads=false \
    -gather-smaps=false >"$WORK/pe.log" 2>&1 &
  PE_PID=$!
  _bench_pids+=("$PE_PID")
  poll 100 curl -s -o /dev/null "http://127.0.0.1:$PE_PORT/metrics" && return 0
  echo "process-exporter did not start" >&2
  return 1
}
stop_pe() {
  kill -TERM "$PE_PID" 2>/dev/null || true
  wait "$PE_PID" 2>/dev/null || true
}

# metric PORT NAME [LABEL]: sum of the series of NAME (whose labels contain LABEL).
metric() {
  curl -s "http://127.0.0.1:$1/metrics" | awk -v name="$2" -v label="${3:-}" '
    $0 !~ /^#/ {
      split($0, parts, /[{ ]/)
      if (parts[1] != name) next
      if (label != "" && index($0, label) == 0) next
      s += $NF
    }
    END { printf "%.9g\n", s }'
}
# wait_metric PORT NAME MIN [LABEL]: polls (at most 120 s) until the metric reaches MIN.
wait_metric() {
  local v
  at_least() {
    v=$(metric "$1" "$2" "${4:-}")
    awk -v v="$v" -v m="$3" 'BEGIN{exit !(v >= m)}'
  }
  poll 1200 at_least "$@" && return 0
  echo "timeout waiting for $2 >= $3 (at $v)" >&2
  return 1
}

# pidfd_exporter config with SETS fixed sets named PREFIX%04d matching that comm.
write_sets_config() {  # FILE SETS PREFIX SCAN_INTERVAL CONNECTOR [TASKSTATS]
  {
    echo "process_sets:"
    local i
    for ((i = 0; i < $2; i++)); do printf '  - name: %s%04d\n    comm: [%s%04d]\n' "$3" "$i" "$3" "$i"; done
    printf 'discovery:\n  scan_interval: %s\n  proc_connector: %s\n  taskstats: %s\nlimits:\n  max_sets: %d\n' \
      "$4" "$5" "${6:-auto}" $(($2 + 10))
  } >"$1"
}
write_pe_config() {  # FILE SETS PREFIX
  {
    echo "process_names:"
    local i
    for ((i = 0; i < $2; i++)); do printf '  - name: %s%04d\n    comm: [%s%04d]\n' "$3" "$i" "$3" "$i"; done
  } >"$1"
}
