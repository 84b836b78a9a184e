# Exporter lifecycle for the e2e scripts in tests/e2e/ (sourced, not run), on top of
# tests/e2e/lib.sh (check, note, finish, wait_for, ...). Provides:
#   start_exporter NAME CONFIG [extra flags]   start the exporter on 127.0.0.1:0; sets
#                             EXPORTER_PID, EXPORTER_ADDR, EXPORTER_LOG
#   stop_exporter [TIMEOUT_S] SIGTERM, wait; sets STOP_RC and STOP_SECONDS
#   scrape [PATH]             GET over loopback (curl, 30 s cap), body on stdout
#   metric TEXT NAME{LABELS}  the value of one series in TEXT ("" when absent)
#   metric_sum TEXT NAME      the sum of every series of NAME (0 when absent)
# Everything is bounded: every wait has a deadline; every process started here is killed
# by the EXIT trap.
# shellcheck source=../lib.sh
. "$SOURCE_DIR/tests/e2e/lib.sh"
CLEANUP_PIDS=()
WORK_DIR=$(mktemp -d /tmp/pidfd_e2e.XXXXXX)

cleanup() {
  local pid
  for pid in "${CLEANUP_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  [ -n "${EXPORTER_PID:-}" ] && kill -KILL "$EXPORTER_PID" 2>/dev/null
  wait 2>/dev/null
  if [ "$FAILED" -eq 0 ] && [ -z "${KEEP_WORK_DIR:-}" ]; then rm -rf "$WORK_DIR"; else echo "work dir kept: $WORK_DIR"; fi
}
trap cleanup EXIT

# A sanitizer build of the exporter reports to stderr; these options make errors fatal and
# leaks visible at exit (the exit status is then non-zero).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:suppressions=$SOURCE_DIR/scripts/tsan.supp}

# start_exporter NAME CONFIG_FILE [prefix command...] -- [extra flags...]
# The optional prefix (e.g. "prlimit --nofile=64:64") runs the exporter under it.
start_exporter() {
  local name=$1 config=$2
  shift 2
  local prefix=() flags=()
  if [[ " $* " == *" -- "* ]]; then
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do prefix+=("$1"); shift; done
    shift
  fi
  flags=("$@")
  EXPORTER_LOG=$WORK_DIR/$name.log
  "${prefix[@]}" "$EXPORTER" --config.file="$config" --web.listen-address=127.0.0.1:0 \
    --log.level=info "${flags[@]}" >"$EXPORTER_LOG" 2>&1 &
  EXPORTER_PID=$!
  EXPORTER_ADDR=""
  local deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    EXPORTER_ADDR=$(grep -o 'msg="Listening on" address=[0-9.:]*' "$EXPORTER_LOG" | head -1 | sed 's/.*address=//')
    if [ -n "$EXPORTER_ADDR" ] && grep -q 'First scan done' "$EXPORTER_LOG"; then return 0; fi
    kill -0 "$EXPORTER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "exporter did not start; log:"
  cat "$EXPORTER_LOG"
  return 1
}

exporter_alive() { kill -0 "$EXPORTER_PID" 2>/dev/null; }

stop_exporter() {
  local timeout=${1:-20} start=$SECONDS
  kill -TERM "$EXPORTER_PID" 2>/dev/null
  local deadline=$((SECONDS + timeout))
  while kill -0 "$EXPORTER_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
  if kill -0 "$EXPORTER_PID" 2>/dev/null; then
    kill -KILL "$EXPORTER_PID"
    STOP_RC=timeout
  else
    wait "$EXPORTER_PID"
    STOP_RC=$?
  fi
  STOP_SECONDS=$((SECONDS - start))
  EXPORTER_PID=""
}

# True when the log shows no sanitizer report.
no_sanitizer_report() {
  ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer' "$1"
}

scrape() {
  curl -sS --max-time 30 -o - "http://$EXPORTER_ADDR${1:-/metrics}"
}

scrape_quiet() { scrape "$@" >/dev/null; }
healthy() { scrape_quiet /-/healthy; }

# metric TEXT 'name{labels}' (exact series as exposed, labels in exposition order)
metric() {
  awk -v series="$2" '$1 == series { print $2; exit }' <<<"$1"
}

metric_sum() {
  awk -v name="$2" '
    { series = $1; sub(/\{.*/, "", series) }
    series == name { sum += $2 }
    END { printf "%d\n", sum }' <<<"$1"
}

# wait_for_metric SECONDS 'series' OP VALUE: polls until the comparison holds (-eq, -ge, -le, ...)
wait_for_metric() {
  local seconds=$1 series=$2 op=$3 want=$4 deadline=$((SECONDS + $1)) got
  while :; do
    got=$(metric "$(scrape 2>/dev/null)" "$series")
    got=${got%.*}
    [ -n "$got" ] && [ "$got" "$op" "$want" ] && return 0
    [ $SECONDS -ge $deadline ] && { note "$series = '${got}' (wanted $op $want)"; return 1; }
    sleep 0.2
  done
}
