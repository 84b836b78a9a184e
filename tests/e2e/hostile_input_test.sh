#!/usr/bin/env bash
# End to end: processes that name themselves anything. A process may put any byte but NUL in
# its comm (15 bytes) and its argv; the exporter turns them into label values and HTML.
#   - comms such as "\xff\xfe<b>\"x\n", one with a backslash, DEL, TAB and \x01, one whose
#     15-byte cut splits a UTF-8 sequence, one with a surrogate, an overlong form and a code
#     point above U+10FFFF. The comm is set at exec (the process is started through a symlink
#     of that name to python3), so the name is there before the exporter can see the process;
#     one more renames itself with prctl(PR_SET_NAME) and is matched by a comm matcher after
#     the rename. Matched by {{.Comm}} sets;
#   - argv with quotes, backslashes, newlines, invalid UTF-8, an exposition-injection attempt
#     (`"} 1\nevil_metric 1`) and a 180-byte capture of 3-byte characters, matched by a cmdline
#     regex whose capture names the set (arg_{{.Matches.x}}), so argv bytes reach a label;
#   - /metrics: `promtool check metrics` says nothing and exits 0; a strict parser finds valid
#     UTF-8, every label value <= 128 bytes without control characters, each hostile set under
#     the name the README promises (invalid/control bytes -> U+FFFD, cut at 128 bytes on a
#     character boundary) and no injected series;
#   - a real Prometheus (loopback, free port, tmp storage, 1 s scrapes) scrapes it: up == 1, and
#     every pidfd_processes series is queryable, each hostile one by an exact label matcher;
#   - the status page is valid UTF-8 and holds none of the raw bytes, only escaped names;
#   - limits.max_sets: 5 with 8 distinct comms of one templated set: 5 named sets, the 3 other
#     processes under set="_other".
# Usage: hostile_input_test.sh <exporter-binary> <source-dir>
set -uo pipefail
EXPORTER=${1:?usage: $0 <exporter-binary> <source-dir>}
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/e2e/lib.sh"
HELPERS=$SRC/tests/e2e/helpers
PROCS=$HELPERS/status_page_procs.py
CHECKER=$HELPERS/hostile_input_metrics.py
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
# A real interpreter binary (not a pyenv shim, which is a script): started through a symlink,
# its comm is the symlink's name.
PY=$(readlink -f /usr/bin/python3 2>/dev/null)
for tool in "$PROMETHEUS" promtool curl "$PY"; do
  command -v "$tool" >/dev/null || { fail "$tool not installed (Debian packages prometheus, curl, python3)"; finish; }
done
[ -x "$EXPORTER" ] || { fail "exporter binary $EXPORTER not found"; finish; }

TMP=$(mktemp -d /tmp/pidfd_hostile.XXXXXX)
BIN=$TMP/bin
mkdir -p "$BIN"
EXPORTER_PID='' PROM_PID=''
PROC_PIDS=()
cleanup() {
  local pid
  { for pid in "${PROC_PIDS[@]}"; do kill -KILL "$pid"; wait "$pid"; done; } 2>/dev/null
  stop_pids "$PROM_PID" "$EXPORTER_PID"
  wait 2>/dev/null
  if [ "$FAILED" -eq 0 ]; then rm -rf "$TMP"; else echo "logs kept in $TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
comm_hex() { printf '%s' "$1" | head -c 15 | od -An -v -tx1 | tr -d ' \n'; }  # the kernel keeps 15 bytes

# start_exporter CONFIG LOG: sets EXPORTER_PID and ADDR
start_exporter() {
  "$EXPORTER" --config.file="$1" --web.listen-address=127.0.0.1:0 2> "$2" &
  EXPORTER_PID=$!
  local end=$((SECONDS + 15))
  ADDR=
  while [ -z "$ADDR" ] && [ $SECONDS -lt $end ] && kill -0 "$EXPORTER_PID" 2>/dev/null; do
    sleep 0.1
    ADDR=$(grep -o 'msg="Listening on" address=127\.0\.0\.1:[0-9]*' "$2" | head -1 | cut -d= -f3)
  done
  if [ -z "$ADDR" ]; then fail "exporter listening ($1)"; cat "$2"; return 1; fi
  pass "exporter listening on $ADDR"
  wait_for 15 "exporter ready" curl -sf "http://$ADDR/-/ready"
}
fetch_metrics() { curl -sS --max-time 10 -o "$1" "http://$ADDR/metrics"; }
metrics_ready() { fetch_metrics "$TMP/poll.txt" && "$PY" "$CHECKER" ready "$TMP/poll.txt" "$1"; }
promtool_clean() {  # promtool check metrics FILE: no output at all, exit 0
  local out rc
  out=$(promtool check metrics < "$1" 2>&1); rc=$?
  [ $rc -eq 0 ] && [ -z "$out" ] && return 0
  echo "     # promtool exit $rc: $(head -c 2000 <<<"$out")"
  return 1
}
# hold NAME ARGS...: starts python3 (through a symlink called NAME, so comm = NAME cut at 15
# bytes) waiting for a signal with ARGS in its argv.
hold() {
  local name=$1; shift
  ln -s "$PY" "$BIN/$name" || { fail "symlink $(hex "$name")"; return 1; }
  "$BIN/$name" "$PROCS" hold "$@" &
  PROC_PIDS+=($!)
}

HMARK=pfhostile$$
AMARK=pfargs$$

# 1. hostile comms, set at exec
H1=$'\xff\xfe<b>"x\n'
H2=$'b\\s"\x7f\t<\x01'
H3=$'abcdefghijklmn\xc3\xa9'                    # cut at 15 bytes: a lone \xc3 at the end
H4=$'\xed\xa0\x80sur\xc0\xafov\xf4\x90\x80\x80'  # surrogate, overlong '/', above U+10FFFF
for name in "$H1" "$H2" "$H3" "$H4"; do hold "$name" "$HMARK" $'q"\\\n'; done
# 2. a comm set by prctl after exec (valid UTF-8 so that a comm matcher can name it)
R1=$'bs\\q"<i>\'&'
"$PY" "$PROCS" rename "$(hex "$R1")" "$TMP/r1.ready" &
PROC_PIDS+=($!)
# 3. hostile argv reaching a label through a capture
A1_ARGS=('q"u\o' $'\n' $'te\'\xff<b>&\\')
A2_ARGS=("$(printf '\xe2\x82\xac%.0s' $(seq 60))")      # 60 x U+20AC, 3 bytes each
A3_ARGS=($'x"} 1\nevil_metric 1\n#')
"$PY" "$PROCS" hold "$AMARK" "${A1_ARGS[@]}" & PROC_PIDS+=($!)
"$PY" "$PROCS" hold "$AMARK" "${A2_ARGS[@]}" & PROC_PIDS+=($!)
"$PY" "$PROCS" hold "$AMARK" "${A3_ARGS[@]}" & PROC_PIDS+=($!)
wait_for 10 "prctl-renamed process ready" test -s "$TMP/r1.ready"
check "a comm holds the raw bytes \\xff\\xfe<b>\"x\\n" test "$(od -An -tx1 "/proc/${PROC_PIDS[0]}/comm" | tr -d ' \n')" = "$(comm_hex "$H1")0a"

# The config: single-quoted YAML, so backslashes are literal and '' is a quote.
YAML_R1=${R1//"'"/"''"}
cat > "$TMP/hostile.yml" <<EOF
process_sets:
  - name: "{{.Comm}}"
    cmdline: ['$HMARK']
  - name: "{{.Comm}}"
    comm: ['$YAML_R1']
  - name: "arg_{{.Matches.x}}"
    cmdline: ['$AMARK (?P<x>(?s:.)+)']
discovery:
  scan_interval: 200ms
  proc_connector: auto
EOF
start_exporter "$TMP/hostile.yml" "$TMP/exporter.log" || finish

# What the exporter must expose: exact names for the comms and the two valid-UTF-8 captures;
# for A1 only the part before its \xff (RE2 ends `.` at an invalid byte, see the report).
A2_NAME=arg_${A2_ARGS[0]}
A3_NAME=arg_${A3_ARGS[0]}
A1_PREFIX="arg_${A1_ARGS[0]} ${A1_ARGS[1]} te'"
cat > "$TMP/spec.json" <<EOF
{"max_label_bytes": 128,
 "expect": [
  {"metric": "pidfd_processes", "set_hex": "$(comm_hex "$H1")", "value": 1},
  {"metric": "pidfd_processes", "set_hex": "$(comm_hex "$H2")", "value": 1},
  {"metric": "pidfd_processes", "set_hex": "$(comm_hex "$H3")", "value": 1},
  {"metric": "pidfd_processes", "set_hex": "$(comm_hex "$H4")", "value": 1},
  {"metric": "pidfd_processes", "set_hex": "$(hex "$R1")", "value": 1},
  {"metric": "pidfd_processes", "set_hex": "$(hex "$A2_NAME")", "value": 1},
  {"metric": "pidfd_processes", "set_hex": "$(hex "$A3_NAME")", "value": 1},
  {"metric": "pidfd_processes", "prefix_hex": "$(hex "$A1_PREFIX")", "value": 1},
  {"metric": "pidfd_process_starts_total", "set_hex": "$(comm_hex "$H1")", "value": 1}],
 "forbidden_metrics": ["evil_metric"]}
EOF
wait_for 20 "every hostile process is in its set in /metrics" metrics_ready "$TMP/spec.json"
fetch_metrics "$TMP/metrics.txt"
check "promtool check metrics: no output, exit 0" promtool_clean "$TMP/metrics.txt"
"$PY" "$CHECKER" check "$TMP/metrics.txt" "$TMP/spec.json" > "$TMP/labels.txt" 2>&1
sed 's/^/  /' "$TMP/labels.txt"
add_counts "$TMP/labels.txt"
echo "  # arg_ sets: $("$PY" "$CHECKER" sets "$TMP/metrics.txt" pidfd_processes | tr -d '\n' | grep -o '"arg_[^,]*' | tr '\n' ' ')"

# 4. the status page
curl -sS --max-time 10 -o "$TMP/page.html" "http://$ADDR/"
check "status page is valid UTF-8" "$PY" -c 'import sys; open(sys.argv[1], "rb").read().decode("utf-8")' "$TMP/page.html"
check "status page holds no \\xff, \\xfe, \\x01, \\x7f or TAB byte" bash -c '! LC_ALL=C grep -q "[$(printf "\xff\xfe\x01\x7f\t")]" "$1"' _ "$TMP/page.html"
check "status page holds no <b> or <i> tag" bash -c '! grep -qiE "<(b|i)>" "$1"' _ "$TMP/page.html"
for name in "$H1" "$H2" "$H3" "$H4"; do
  escaped=$("$PY" "$CHECKER" html "$(comm_hex "$name")")
  check "status page shows comm $(comm_hex "$name") as $escaped" grep -qF -- "<td>$escaped</td>" "$TMP/page.html"
done
escaped=$("$PY" "$CHECKER" html "$(hex "$R1")")
check "status page shows the renamed comm as $escaped" grep -qF -- "<td>$escaped</td>" "$TMP/page.html"
escaped=$("$PY" "$CHECKER" html "$(hex "$A3_NAME")")
check "status page shows the injection attempt as $escaped" grep -qF -- "<td>$escaped</td>" "$TMP/page.html"

# 5. a real Prometheus scrapes the hostile /metrics
PROM_PORT=$(free_port)
mkdir -p "$TMP/prom-data"
cat > "$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: hostile
    static_configs:
      - targets: ['$ADDR']
EOF
"$PROMETHEUS" --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prom-data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn > "$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
PROM_URL=http://127.0.0.1:$PROM_PORT
if wait_for 30 "Prometheus ready" curl -sf "$PROM_URL/-/ready" &&
   wait_for 30 "Prometheus scrapes the exporter: up == 1" "$PY" "$CHECKER" prom-up "$PROM_URL" hostile; then
  fetch_metrics "$TMP/metrics2.txt"
  # the first scrape may predate nothing here (every set existed before Prometheus started),
  # but poll anyway rather than assume one scrape is stored.
  end=$((SECONDS + 15))
  until "$PY" "$CHECKER" prom-check "$PROM_URL" hostile "$TMP/metrics2.txt" "$TMP/spec.json" > "$TMP/prom-check.txt" 2>&1 ||
        [ $SECONDS -ge $end ]; do sleep 0.5; done
  sed 's/^/  /' "$TMP/prom-check.txt"
  add_counts "$TMP/prom-check.txt"
else
  tail -20 "$TMP/prometheus.log"
fi
stop_pids "$PROM_PID"; PROM_PID=
check "the exporter is still running" kill -0 "$EXPORTER_PID"
stop_pids "$EXPORTER_PID"; EXPORTER_PID=
{ for pid in "${PROC_PIDS[@]}"; do kill -KILL "$pid"; wait "$pid"; done; } 2>/dev/null
PROC_PIDS=()

# 6. limits.max_sets: 5, one templated set, 8 distinct comms
OV=()
for n in 1 2 3 4 5 6 7 8; do OV+=("ov$$-$n"); done
{
  echo "process_sets:"
  echo "  - name: \"{{.Comm}}\""
  echo "    comm: [$(IFS=,; echo "${OV[*]}")]"
  echo "limits:"
  echo "  max_sets: 5"
  echo "discovery:"
  echo "  scan_interval: 200ms"
  echo "  proc_connector: auto"
} > "$TMP/max_sets.yml"
start_exporter "$TMP/max_sets.yml" "$TMP/exporter-max-sets.log" || finish
for name in "${OV[@]}"; do hold "$name"; done
sum_processes_is_8() {
  fetch_metrics "$TMP/ov.txt" &&
    [ "$(awk '/^pidfd_processes\{/ { s += $2 } END { print s + 0 }' "$TMP/ov.txt")" = 8 ]
}
wait_for 20 "the 8 processes are watched (sum of pidfd_processes is 8)" sum_processes_is_8
fetch_metrics "$TMP/ov.txt"
SETS=$("$PY" "$CHECKER" sets "$TMP/ov.txt" pidfd_processes)
echo "  # sets: $SETS"
check "6 sets: 5 named + _other" "$PY" -c '
import json, sys
sets = json.loads(sys.argv[1]); named = [s for s in sets if s != "_other"]
sys.exit(not ("_other" in sets and len(named) == 5 and set(named) <= set(sys.argv[2:])))' "$SETS" "${OV[@]}"
series_value() { awk -v series="$2" '$1 == series { print $2; exit }' "$1"; }
check 'pidfd_processes{set="_other"} is 3' test "$(series_value "$TMP/ov.txt" 'pidfd_processes{set="_other"}')" = 3
check 'pidfd_process_starts_total{set="_other"} is 3' \
  test "$(series_value "$TMP/ov.txt" 'pidfd_process_starts_total{set="_other"}')" = 3
check "each named set has 1 process" bash -c '
  [ "$(grep -E "^pidfd_processes\{set=\"ov[0-9]+-[0-9]\"\} 1$" "$1" | wc -l)" = 5 ]' _ "$TMP/ov.txt"
check "promtool check metrics (max_sets): no output, exit 0" promtool_clean "$TMP/ov.txt"
curl -sS --max-time 10 -o "$TMP/ov.html" "http://$ADDR/"
check "status page lists set _other" grep -qF '<td>_other</td>' "$TMP/ov.html"
check "the exporter is still running" kill -0 "$EXPORTER_PID"
finish
