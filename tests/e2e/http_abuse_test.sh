#!/usr/bin/env bash
# HTTP abuse against the real exporter binary on loopback: malformed requests, oversized
# headers and URIs, thousands of bad requests, 100 concurrent scrapers, 256 stalled
# connections of each kind (32 times the 8 CivetWeb workers) and a flood of 5000 (5 times
# --web.max-connections), the flood again under a 512-descriptor limit. After each: the
# exporter still runs and scrapes still succeed. The one time bound: a scrape made while
# connections are stalled takes less than half the request-head timeout (4 s here), which
# is what separates "served at once" from "served once the stalled ones timed out".
# Usage: http_abuse_test.sh <pidfd_exporter binary> <source dir>
# Prints one line per check and "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
EXPORTER=$(realpath "$1")
SOURCE_DIR=$(realpath "${2:-$(dirname "$0")/../..}")
# shellcheck source=helpers/common.sh
source "$SOURCE_DIR/tests/e2e/helpers/common.sh"

cat >"$WORK_DIR/config.yml" <<'YAML'
process_sets:
  - name: "{{.Comm}}"
discovery:
  scan_interval: 1s
YAML

# Runs one case of the python helper and counts its ok/FAIL lines.
run_case() {
  local output line
  output=$(timeout 240 python3 "$SOURCE_DIR/tests/e2e/helpers/http_abuse.py" "$EXPORTER_ADDR" "$@" \
    pid="$EXPORTER_PID" head_timeout=4 2>&1)
  local rc=$?
  while IFS= read -r line; do
    echo "$line"
    case "$line" in
      "ok   - "*) PASSED=$((PASSED + 1)) ;;
      "FAIL - "*) FAILED=$((FAILED + 1)) ;;
    esac
  done <<<"$output"
  [ $rc -eq 0 ] || [ $rc -eq 1 ] || { echo "FAIL - $1: helper exited $rc"; FAILED=$((FAILED + 1)); }
  check "$1: exporter still running" exporter_alive
}

if start_exporter http "$WORK_DIR/config.yml" -- --web.request-head-timeout=4s; then
  check "baseline scrape" scrape_quiet /metrics
  for case_name in malformed oversized flood concurrent stalled connection_flood; do
    echo "# $case_name"
    run_case "$case_name"
  done
  check "healthy at the end" healthy
  check "status page at the end" scrape_quiet /
  stop_exporter
  check "SIGTERM exit status 0 ($STOP_RC)" [ "$STOP_RC" = 0 ]
  check "no sanitizer report in the exporter's output" no_sanitizer_report "$EXPORTER_LOG"
else
  check "exporter started" false
fi

# The flood past the descriptor limit: with 512 descriptors, client connections get at most
# half of them (224 after the connections to CivetWeb), so pidfds still open and exits are
# still counted while 5000 connections knock.
echo "# connection_flood under prlimit --nofile=512"
if start_exporter http_fd_limit "$WORK_DIR/config.yml" prlimit --nofile=512:512 -- --web.request-head-timeout=4s; then
  check "fd limit: max connections lowered and logged" grep -q "Lowering --web.max-connections" "$EXPORTER_LOG"
  run_case connection_flood max_connections=256
  stop_exporter
  check "fd limit: SIGTERM exit status 0 ($STOP_RC)" [ "$STOP_RC" = 0 ]
else
  check "exporter started under prlimit" false
fi
finish
