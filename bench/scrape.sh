#!/usr/bin/env bash
# Scenario 1: scrape cost vs watched processes and sets, pidfd_exporter next to
# prometheus-process-exporter (-children=false -threads=false -gather-smaps=false, the same
# sets by comm), on the same sleeping processes, one after the other in the same run.
# Per cell: median curl time_total of SCRAPES scrapes (after one warm-up scrape), the body
# size, and the exporter's CPU per scrape (sum of its threads' schedstat run time, and
# utime+stime ticks as a cross-check). pidfd_exporter runs with scan_interval 1h here so
# that no /proc scan falls into the window (the scan is measured by idle.sh).
# BASE_EXPORTER=path/to/an/older/pidfd_exporter adds it as a third row per cell ("base"), on
# the same processes, between the two: a revision measured side by side with this one.
# Usage: bench/scrape.sh [--quick]   (quick: 1k processes, 100 sets, 5 scrapes)
source "$(dirname "$0")/lib.sh"
ensure_build

if [ $QUICK = 1 ]; then COUNTS=(1000); SETS=(100); SCRAPES=${SCRAPES:-5}
else COUNTS=(1000 10000); SETS=(10 100 1000); SCRAPES=${SCRAPES:-20}; fi
# process-exporter needs seconds per scrape at 10k processes: fewer scrapes there.
PE_SCRAPES_10K=${PE_SCRAPES_10K:-5}
CSV=${SCRAPE_CSV:-$WORK/scrape.csv}

machine_line
printf '%-8s %6s %-16s %12s %12s %12s %14s\n' processes sets exporter scrape_p50_ms scrape_p90_ms bytes cpu_ms/scrape
echo "processes,sets,exporter,scrape_p50_ms,scrape_p90_ms,bytes,cpu_ms_per_scrape" >"$CSV"

measure() {  # PORT PID LABEL N S [SCRAPES]
  local port=$1 pid=$2 label=$3 times="$WORK/times" i scrapes=${6:-$SCRAPES}
  curl -s -o /dev/null "http://127.0.0.1:$port/metrics"  # warm-up
  local c0 t0 c1 t1
  c0=$(cpu_ns "$pid"); t0=$(cpu_ticks "$pid")
  : >"$times"
  for ((i = 0; i < scrapes; i++)); do
    curl -s -o /dev/null -w '%{time_total} %{size_download}\n' "http://127.0.0.1:$port/metrics" >>"$times"
  done
  c1=$(cpu_ns "$pid"); t1=$(cpu_ticks "$pid")
  local p50 p90 bytes cpu
  p50=$(awk '{print $1*1000}' "$times" | median)
  p90=$(awk '{print $1*1000}' "$times" | pctl 0.9)
  bytes=$(awk '{print $2}' "$times" | median)
  cpu=$(awk -v a="$c0" -v b="$c1" -v n="$scrapes" 'BEGIN{printf "%.2f", (b-a)/1e6/n}')
  local cpu_t
  cpu_t=$(awk -v a="$t0" -v b="$t1" -v n="$scrapes" -v hz="$CLK_TCK" 'BEGIN{printf "%.1f", (b-a)*1000/hz/n}')
  printf '%-8s %6s %-16s %12.2f %12.2f %12s %9s (%s)\n' "$4" "$5" "$label" "$p50" "$p90" "$bytes" "$cpu" "$cpu_t"
  echo "$4,$5,$label,$p50,$p90,$bytes,$cpu" >>"$CSV"
}

# SCRAPE_CELLS="1000x1000 10000x100" measures only those processes x sets cells (bench/compare.sh).
CELLS=()
if [ -n "${SCRAPE_CELLS:-}" ]; then read -r -a CELLS <<<"$SCRAPE_CELLS"
else for n in "${COUNTS[@]}"; do for s in "${SETS[@]}"; do CELLS+=("${n}x${s}"); done; done; fi

for cell in "${CELLS[@]}"; do
  n=${cell%x*} s=${cell#*x}
  start_sleepers "$n" "$s" b
  write_sets_config "$WORK/pidfd.yml" "$s" b 1h auto
  start_exporter "$WORK/pidfd.yml"
  wait_metric "$EXPORTER_PORT" pidfd_processes "$n"
  measure "$EXPORTER_PORT" "$EXPORTER_PID" pidfd_exporter "$n" "$s"
  stop_exporter
  if [ -n "${BASE_EXPORTER:-}" ]; then
    EXPORTER="$BASE_EXPORTER" start_exporter "$WORK/pidfd.yml"
    wait_metric "$EXPORTER_PORT" pidfd_processes "$n"
    measure "$EXPORTER_PORT" "$EXPORTER_PID" base "$n" "$s"
    stop_exporter
  fi
  write_pe_config "$WORK/pe.yml" "$s" b
  start_pe "$WORK/pe.yml"
  pe_scrapes=$SCRAPES
  [ "$n" -ge 10000 ] && [ "$PE_SCRAPES_10K" -lt "$SCRAPES" ] && pe_scrapes=$PE_SCRAPES_10K
  measure "$PE_PORT" "$PE_PID" process-exporter "$n" "$s" "$pe_scrapes"
  stop_pe
  stop_sleepers
done
echo "(scrapes per cell: $SCRAPES; process-exporter at >= 10k processes: $PE_SCRAPES_10K)"
echo "(cpu_ms/scrape: schedstat of all threads; in parentheses utime+stime ticks, ${CLK_TCK} Hz resolution)"
