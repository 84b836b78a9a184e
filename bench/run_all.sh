#!/usr/bin/env bash
# Runs every benchmark scenario and prints its table. Full mode (~25 min) writes the
# tables and CSVs to bench/results/ and redraws the plots; --quick (< 2 min, smoke test
# for CI) writes nothing under bench/ and prints the tables only.
# Usage: bench/run_all.sh [--quick]     BENCH_BUILD=/tmp/bench-build by default.
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
"$BENCH/../scripts/install-deps.sh" bench

if [ $QUICK = 1 ]; then
  # Small, fast variants; each scenario still exercises its whole path.
  export N=1000 WINDOW=10
  SCRAPES=3 PE_SCRAPES_10K=3 "$BENCH/scrape.sh" --quick
  ROUNDS=1 SECONDS_RUN=2 WORKERS=2 "$BENCH/events.sh" --quick
  "$BENCH/idle.sh" --quick
  "$BENCH/memory.sh" --quick
  "$BENCH/accuracy.sh" --quick
  "$BENCH/micro.sh" --quick
  SCRAPES=10 "$BENCH/stalled.sh" --quick
  N=100 "$BENCH/exit_resources.sh" --quick
  exit 0
fi

OUT=$BENCH/results
mkdir -p "$OUT"
run() {  # NAME SCRIPT: prints the table and keeps it in results/NAME.txt
  echo "=== $1 ($(date -u +%FT%TZ))"
  "$BENCH/$2" 2>&1 | tee "$OUT/$1.txt"
}
SCRAPE_CSV=$OUT/scrape.csv run scrape scrape.sh
run events events.sh
MODE=exec run events_exec events.sh
MODE=fork run events_fork events.sh
run idle idle.sh
MEMORY_CSV=$OUT/memory.csv run memory memory.sh
run accuracy accuracy.sh
run micro micro.sh
run stalled stalled.sh
run exit_resources exit_resources.sh
"$BENCH/plot.sh" "$OUT"
