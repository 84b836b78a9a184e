#!/usr/bin/env bash
# Plots (gnuplot, PNG) from the CSVs of scrape.sh and memory.sh:
#   scrape_time.png  scrape time (median) vs watched processes, per exporter and set count
#   memory_rss.png   exporter RSS and pidfd slab vs watched processes
# Usage: bench/plot.sh [RESULTS_DIR]   (default bench/results)
set -euo pipefail
DIR=${1:-$(cd "$(dirname "$0")" && pwd)/results}
command -v gnuplot >/dev/null || { echo "plot: gnuplot missing (scripts/install-deps.sh bench)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

if [ -f "$DIR/scrape.csv" ]; then
  plots=()
  while IFS=, read -r exporter sets; do
    f="$tmp/$exporter-$sets.dat"
    awk -F, -v e="$exporter" -v s="$sets" 'NR>1 && $3==e && $2==s {print $1, $4}' "$DIR/scrape.csv" | sort -n >"$f"
    plots+=("'$f' using 1:2 with linespoints title '$exporter, $sets sets'")
  done < <(awk -F, 'NR>1 {print $3 "," $2}' "$DIR/scrape.csv" | sort -u -t, -k1,1 -k2,2n)
  gnuplot <<GP
set terminal pngcairo size 900,560 noenhanced
set output '$DIR/scrape_time.png'
set title 'Scrape time (median curl time_total) vs watched processes, 2 vCPU shared VM'
set xlabel 'watched sleeping processes'
set ylabel 'scrape time, ms (log)'
set logscale xy
set grid
set key top left font ',9'
set xrange [700:14000]
plot $(IFS=,; echo "${plots[*]}")
GP
  echo "wrote $DIR/scrape_time.png"
fi

if [ -f "$DIR/memory.csv" ]; then
  awk -F, 'NR>1 {print $2, $3/1024, $4/1024}' "$DIR/memory.csv" | sort -n >"$tmp/mem.dat"
  gnuplot <<GP
set terminal pngcairo size 900,560 noenhanced
set output '$DIR/memory_rss.png'
set title 'pidfd_exporter memory vs watched processes'
set xlabel 'watched processes'
set ylabel 'MiB'
set grid
set key left top
plot '$tmp/mem.dat' using 1:2 with linespoints title 'exporter VmRSS', \
     '$tmp/mem.dat' using 1:3 with linespoints title 'kernel slab for pidfds (filp, dentry, pidfs, epoll)'
GP
  echo "wrote $DIR/memory_rss.png"
fi
