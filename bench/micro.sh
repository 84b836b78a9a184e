#!/usr/bin/env bash
# Scenario 6: Google Benchmark micro-benchmarks (bench/micro_bench.cc), REPS repetitions,
# medians of CPU time (the wall time of this shared machine is noisier).
# Usage: bench/micro.sh [--quick]   (quick: 1 repetition, short minimum time)
source "$(dirname "$0")/lib.sh"
ensure_build
if [ $QUICK = 1 ]; then ARGS=(--benchmark_repetitions=1 --benchmark_min_time=0.05); else ARGS=(--benchmark_repetitions=${REPS:-5}); fi
machine_line
"$HELPERS/micro_bench" "${ARGS[@]}" --benchmark_out="$WORK/micro.json" --benchmark_out_format=json >/dev/null 2>&1
python3 - "$WORK/micro.json" "$QUICK" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
quick = sys.argv[2] == "1"
print(f"{'benchmark':<56} {'cpu_median':>14} {'wall_median':>14} {'bytes':>10}")
for r in runs:
    if quick:
        if r.get("run_type") != "iteration": continue
    elif r.get("aggregate_name") != "median": continue
    name = r["run_name"]; unit = r["time_unit"]
    b = f"{r['bytes']:.0f}" if "bytes" in r else "-"
    print(f"{name:<56} {r['cpu_time']:>11.3f} {unit:<2} {r['real_time']:>11.3f} {unit:<2} {b:>10}")
PY
echo "(Tracker rows: wall = manual time of the two OnPidfdEvent calls; cpu column = the whole iteration incl. kill/waitpid)"
