#!/usr/bin/env bash
# Scenario 5: accuracy of the reap latency and exit -> /metrics visibility, against ground
# truth measured by the parent itself (bench/helpers/accuracy.c explains the method): one
# child at a time, reaped after 0, 1, 10, 100, 1000 ms; per observation the delta of
# pidfd_reap_latency_seconds_sum of that delay's set is compared with the parent's own
# exit -> reap time. Run with proc_connector auto (exit time = the connector's in-kernel
# timestamp) and off (exit time = when the loop saw EPOLLIN; scan_interval 2s for discovery).
# SCAN_INTERVAL overrides the 2s (with 1h and connector auto no scan runs during the test:
# a scan blocks the loop thread, and an event arriving meanwhile is seen late).
# Usage: bench/accuracy.sh [--quick]   (quick: connector auto only, 10 observations per delay)
source "$(dirname "$0")/lib.sh"
ensure_build

if [ $QUICK = 1 ]; then OBS=${OBS:-10}; MODES=(auto); else OBS=${OBS:-50}; MODES=(auto off); fi
machine_line
for mode in "${MODES[@]}"; do
  {
    echo "process_sets:"
    for d in 0 1 10 100 1000; do printf '  - name: acc_d%s\n    comm: [acc_d%s]\n' "$d" "$d"; done
    printf '  - name: vis\n    comm: [vis]\ndiscovery:\n  scan_interval: %s\n  proc_connector: %s\n' "${SCAN_INTERVAL:-2s}" "$mode"
  } >"$WORK/acc.yml"
  start_exporter "$WORK/acc.yml"
  echo
  echo "proc_connector: $mode, scan_interval ${SCAN_INTERVAL:-2s}${EXPORTER_PREFIX:+, exporter under $EXPORTER_PREFIX} ($OBS observations per delay, 1000 ms: $(( (OBS + 4) / 5 )); err = exporter - truth)"
  "$HELPERS/accuracy" "$EXPORTER_PORT" "$OBS" 0 1 10 100 1000
  stop_exporter
done
echo "(gt_unc = largest half-duration of the parent's waitpid call: the ground truth's own uncertainty;"
echo " p99 is nearest-rank: with 50 observations it is the largest value)"
