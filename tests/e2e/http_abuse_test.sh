#!/usr/bin/env bash
# HTTP abuse against the real exporter binary on loopback: malformed requests, oversized
# headers and URIs, thousands of bad requests, 100 concurrent scrapers, slow clients holding
# connections (fewer than the 8 workers). After each: the exporter still runs and scrapes
# still succeed. No tight wall-clock asserts: only that answers come (within generous caps).
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
  output=$(timeout 240 python3 "$SOURCE_DIR/tests/e2e/helpers/http_abuse.py" "$EXPORTER_ADDR" "$1" 2>&1)
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

if start_exporter http "$WORK_DIR/config.yml"; then
  check "baseline scrape" scrape_quiet /metrics
  for case_name in malformed oversized flood concurrent slow; do
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
finish
