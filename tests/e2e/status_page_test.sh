#!/usr/bin/env bash
# End to end: the status page at / as a real browser (Debian's headless Chromium) renders it.
#   - a real zombie: a helper parent (comm `pa<i>&"'rent`) forks a child that renames itself to
#     the hostile comm `<b>z"&'</b>` and exits; the parent never reaps it. A templated set
#     ({{.Comm}}) matches it, so the set name is hostile too;
#   - once /metrics shows pidfd_zombies 1 for that set, Chromium (--dump-dom) renders /; the DOM
#     must show the exporter's name, its version (from --version), a link to /metrics, the set
#     row with watched/zombies counts and the zombie row (PID, comm, parent PID, parent comm)
#     whose text equals the raw names: escaped, not parsed as markup (no <b> or <i> element);
#   - a screenshot (--screenshot) is a real PNG of a few KB; a copy is kept next to the binary
#     (<build>/e2e-artifacts/status_page.png) and its path printed;
#   - over curl: Content-Type of / and /metrics, and the raw HTML never holds the hostile names
#     unescaped.
# Usage: status_page_test.sh <exporter-binary> <source-dir>
set -uo pipefail
EXPORTER=${1:?usage: $0 <exporter-binary> <source-dir>}
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/e2e/lib.sh"
HELPERS=$SRC/tests/e2e/helpers
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PY=/usr/bin/python3
command -v "$PY" >/dev/null || PY=python3
for tool in "$CHROMIUM" curl "$PY"; do
  command -v "$tool" >/dev/null || { fail "$tool not installed (scripts/install-deps.sh test: chromium, curl, python3)"; finish; }
done
[ -x "$EXPORTER" ] || { fail "exporter binary $EXPORTER not found"; finish; }

TMP=$(mktemp -d /tmp/pidfd_status_page.XXXXXX)
ARTIFACTS=${ARTIFACTS_DIR:-$(cd "$(dirname "$EXPORTER")" && pwd)/e2e-artifacts}
EXPORTER_PID='' PARENT_PID='' BROWSER_PID=''
cleanup() {
  # The browser runs under timeout(1), which leads its own process group: end the group.
  [ -n "$BROWSER_PID" ] && kill -KILL -- "-$BROWSER_PID" 2>/dev/null
  stop_pids "$PARENT_PID" "$EXPORTER_PID"
  if [ "$FAILED" -eq 0 ]; then rm -rf "$TMP"; else echo "logs kept in $TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

# The hostile names: a fixed set would hide the set column, so the set is templated.
CHILD_COMM=$'<b>z"&\'</b>'
PARENT_COMM=$'pa<i>&"\'rent'
YAML_CHILD_COMM=${CHILD_COMM//\'/\'\'}   # inside a single-quoted YAML scalar

# 1. the exporter
cat > "$TMP/exporter.yml" <<EOF
process_sets:
  - name: "{{.Comm}}"
    comm: ['$YAML_CHILD_COMM']
discovery:
  scan_interval: 200ms
  proc_connector: auto
EOF
"$EXPORTER" --config.file="$TMP/exporter.yml" --web.listen-address=127.0.0.1:0 2> "$TMP/exporter.log" &
EXPORTER_PID=$!
exporter_address() { listening_address "$TMP/exporter.log"; }
if ! wait_for 15 "exporter listening" exporter_address; then cat "$TMP/exporter.log"; finish; fi
ADDR=$(exporter_address)
URL="http://$ADDR/"
wait_for 15 "exporter ready (/-/ready)" curl -sf "http://$ADDR/-/ready" || finish
VERSION=$("$EXPORTER" --version 2>&1 | sed -n '1s/.*version \([^ ]*\).*/\1/p')
check "--version names a version ($VERSION)" test -n "$VERSION"

# 2. the zombie
"$PY" "$HELPERS/status_page_procs.py" zombie "$(hex "$PARENT_COMM")" "$(hex "$CHILD_COMM")" "$TMP/child.pid" &
PARENT_PID=$!
wait_for 10 "zombie helper started its child" test -s "$TMP/child.pid" || finish
CHILD_PID=$(cat "$TMP/child.pid")
check "child comm is the hostile name" test "$(cat "/proc/$CHILD_PID/comm")" = "$CHILD_COMM"

# metric_value NAME LABELS: the value of one series (labels as exposed, hostile quotes escaped).
metric_value() {
  curl -sS --max-time 10 "http://$ADDR/metrics" |
    "$PY" -c '
import sys
want = sys.argv[1] + "{" + sys.argv[2] + "} "
for line in sys.stdin.buffer.read().decode("utf-8", "replace").splitlines():
    if line.startswith(want):
        print(line[len(want):]); break' "$1" "$2"
}
metric_is() { [ "$(metric_value "$1" "$2")" = "$3" ]; }
SET_LABEL='set="<b>z\"&'"'"'</b>"'
wait_for 15 "the running child joined the set (pidfd_processes 1)" metric_is pidfd_processes "$SET_LABEL" 1
kill -USR1 "$CHILD_PID"
wait_for 15 "the child is a zombie in /metrics (pidfd_zombies 1)" metric_is pidfd_zombies "$SET_LABEL" 1
check "the child is a zombie in /proc (state Z)" grep -q '^State:.*Z' "/proc/$CHILD_PID/status"
check "pidfd_zombies_by_parent names the parent" \
  metric_is pidfd_zombies_by_parent 'parent="pa<i>&\"'"'"'rent",'"$SET_LABEL" 1

# 3. the raw responses over curl
curl -sS --max-time 10 -D "$TMP/metrics.headers" -o "$TMP/metrics.txt" "http://$ADDR/metrics"
curl -sS --max-time 10 -D "$TMP/page.headers" -o "$TMP/page.html" "$URL"
header() { grep -i "^$1:" "$2" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'; }
METRICS_TYPE=$(header Content-Type "$TMP/metrics.headers")
PAGE_TYPE=$(header Content-Type "$TMP/page.headers")
check "/metrics Content-Type is text/plain; version=0.0.4 ($METRICS_TYPE)" \
  grep -qiE '^text/plain; *version=0\.0\.4(; *charset=utf-8)?$' <<<"$METRICS_TYPE"
check "/ Content-Type is text/html; charset=utf-8 ($PAGE_TYPE)" grep -qiE '^text/html; *charset=utf-8$' <<<"$PAGE_TYPE"
check "raw HTML has no unescaped child comm" bash -c '! grep -qF -- "$1" "$2"' _ "$CHILD_COMM" "$TMP/page.html"
check "raw HTML has no unescaped parent comm" bash -c '! grep -qF -- "$1" "$2"' _ "$PARENT_COMM" "$TMP/page.html"
check "raw HTML has no <b> or <i> tag" bash -c '! grep -qiE "<(b|i)>" "$1"' _ "$TMP/page.html"
check "raw HTML holds the escaped child comm" \
  grep -qF '&lt;b&gt;z&quot;&amp;&#39;&lt;/b&gt;' "$TMP/page.html"
check "raw HTML holds the escaped parent comm" grep -qF 'pa&lt;i&gt;&amp;&quot;&#39;rent' "$TMP/page.html"

# 4. the page in headless Chromium. Flags per the machine's notes: as root it needs
# --no-sandbox; without the background-networking flags it tries Google's hosts.
# browser OUTPUT_FILE FLAGS...: runs Chromium with a fresh profile under a 90 s cap.
BROWSER_RUNS=0
browser() {
  local out=$1; shift
  BROWSER_RUNS=$((BROWSER_RUNS + 1))
  timeout --kill-after=5 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage \
    --user-data-dir="$TMP/profile-$BROWSER_RUNS" "$@" >"$out" 2>"$TMP/chromium-$BROWSER_RUNS.log" </dev/null &
  BROWSER_PID=$!
  wait "$BROWSER_PID"
  local rc=$?
  BROWSER_PID=
  return $rc
}
if browser "$TMP/dom.html" --dump-dom "$URL"; then pass "chromium --dump-dom"; else
  fail "chromium --dump-dom (exit $?)"; tail -20 "$TMP/chromium-$BROWSER_RUNS.log"
fi
cat > "$TMP/spec.json" <<EOF
{"url": "$URL", "name": "pidfd_exporter", "version": "$VERSION", "telemetry_path": "/metrics",
 "sets": [{"name_hex": "$(hex "$CHILD_COMM")", "watched": 1, "zombies": 1}],
 "zombies": [{"set_hex": "$(hex "$CHILD_COMM")", "pid": $CHILD_PID, "comm_hex": "$(hex "$CHILD_COMM")",
              "parent_pid": $PARENT_PID, "parent_comm_hex": "$(hex "$PARENT_COMM")"}],
 "forbidden_tags": ["b", "i", "script", "iframe"]}
EOF
"$PY" "$HELPERS/status_page_dom.py" "$TMP/dom.html" "$TMP/spec.json" > "$TMP/dom-check.txt" 2>&1
sed 's/^/  /' "$TMP/dom-check.txt"
add_counts "$TMP/dom-check.txt"

SHOT=$TMP/status_page.png
if browser "$TMP/screenshot.out" --hide-scrollbars --window-size=1280,900 --screenshot="$SHOT" "$URL"; then
  pass "chromium --screenshot"
else
  fail "chromium --screenshot (exit $?)"; tail -20 "$TMP/chromium-$BROWSER_RUNS.log"
fi
SHOT_BYTES=$(stat -c %s "$SHOT" 2>/dev/null || echo 0)
check "screenshot is a PNG of more than 5 KB ($SHOT_BYTES bytes)" \
  "$PY" -c 'import sys; d = open(sys.argv[1], "rb").read(); sys.exit(not (d[:8] == b"\x89PNG\r\n\x1a\n" and len(d) > 5000))' "$SHOT"
if [ -s "$SHOT" ] && mkdir -p "$ARTIFACTS" && cp "$SHOT" "$ARTIFACTS/status_page.png"; then
  echo "screenshot: $ARTIFACTS/status_page.png"
fi

check "the exporter is still running" kill -0 "$EXPORTER_PID"
finish
