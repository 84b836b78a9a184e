#!/usr/bin/env bash
# Issue 14's targets, two revisions side by side in one run: BASE_EXPORTER (e.g. a build of
# the revision before) and the exporter of BENCH_BUILD, interleaved round by round, with
# prometheus-process-exporter ("peer", -children=false -threads=false -gather-smaps=false) in
# the same rounds. The peer reads /proc only when scraped, so it is scraped every
# PEER_SCRAPE_EVERY seconds (default 1) in scenarios 1 and 2; the pidfd exporters are not
# scraped there (their work is done as events come).
#   1. unrelated host processes: one worker loops fork + exec /bin/true + waitpid (names that
#      no set matches), alone / beside base / beside new: loop rate, slowdown, exporter CPU per
#      host process (schedstat of all its threads). Beside them, bench/helpers/bare_listener
#      (connector events and taskstats records read and thrown away): "listener" reads each
#      event as it comes, the floor of any exporter that does; "batched" reads every 10 ms.
#   2. storms: MODE fork and exec of bench/events.sh (every process in a set "{{.Comm}}"),
#      and rename (workers in no set, each child renames itself into set "cmpstorm" and exits;
#      the parent reaps at once), 2 workers: exporter CPU per lifecycle, exits counted and reap
#      latencies observed.
#   3. idle and scan: N sleepers (default 10,000) in 100 sets, connector auto, scan_interval
#      left to its default (base: 5s; new: 30s with the connector), 5s and 1s, WINDOW seconds each: CPU per minute, scans, and the CPU one scan costs
#      per watched process ((cpu/min at 1s - cpu/min at 5s) / (scans/min at 1s - at 5s) / N).
#      The peer's scan is its scrape: its columns are scrapes every 15 s (a common Prometheus
#      scrape interval), 5 s and 1 s.
#   4. scrape: bench/scrape.sh's cells of the targets (1,000 processes in 1,000 sets, 10,000 in
#      100 sets), new, base and peer on the same sleepers.
# Usage: BASE_EXPORTER=/path/to/old/pidfd_exporter [NEW_EXPORTER=...] bench/compare.sh [--quick]
#        (SCENARIOS="unrelated storms idle scrape" and STORM_MODES="fork exec rename" by default;
#        ROUNDS, SECONDS_RUN, N, WINDOW, PEER_SCRAPE_EVERY)
source "$(dirname "$0")/lib.sh"
ensure_build

NEW_EXPORTER=${NEW_EXPORTER:-$EXPORTER}  # another binary than this build's, e.g. of an older revision
BASE_EXPORTER=${BASE_EXPORTER:?set BASE_EXPORTER to the exporter binary of the revision to compare with}
if [ $QUICK = 1 ]; then ROUNDS=${ROUNDS:-1}; SECONDS_RUN=${SECONDS_RUN:-3}; N=${N:-1000}; WINDOW=${WINDOW:-10}
else ROUNDS=${ROUNDS:-3}; SECONDS_RUN=${SECONDS_RUN:-5}; N=${N:-10000}; WINDOW=${WINDOW:-30}; fi
SCENARIOS=${SCENARIOS:-unrelated storms idle scrape}
PEER_SCRAPE_EVERY=${PEER_SCRAPE_EVERY:-1}
[ -x "$PE" ] || { echo "compare.sh measures process-exporter too: $PE is missing (scripts/install-deps.sh bench)" >&2; exit 1; }
machine_line
echo "base: $BASE_EXPORTER ($("$BASE_EXPORTER" --version 2>&1 | head -1))"
echo "new:  $NEW_EXPORTER ($("$NEW_EXPORTER" --version 2>&1 | head -1))"
echo "peer: $PE ($("$PE" -version 2>&1 | head -1))"

use() { if [ "$1" = base ]; then EXPORTER=$BASE_EXPORTER; else EXPORTER=$NEW_EXPORTER; fi; }
med() { awk -v c="$1" -v v="$2" '$1==v {print $c}' "$3" | median; }

# start_peer CONFIG EVERY: process-exporter, scraped every EVERY seconds in the background
# (sets PEER_SCRAPER); stop_peer ends both.
start_peer() {
  start_pe "$1"
  while sleep "$2"; do curl -s -o /dev/null "http://127.0.0.1:$PE_PORT/metrics" || true; done &
  PEER_SCRAPER=$!
  _bench_pids+=("$PEER_SCRAPER")
}
stop_peer() {
  kill -TERM "$PEER_SCRAPER" 2>/dev/null || true
  wait "$PEER_SCRAPER" 2>/dev/null || true
  stop_pe
}

unrelated() {
  printf 'process_sets:\n  - name: nomatch\n    comm: [nomatch_zz]\n' >"$WORK/nomatch.yml"
  printf 'process_names:\n  - name: nomatch\n    comm: [nomatch_zz]\n' >"$WORK/nomatch_pe.yml"
  export FORKER_EXEC=/bin/true
  local out="$WORK/unrelated.txt" round variant forks
  : >"$out"
  # loop_beside PID: the host loop for SECONDS_RUN beside PID; prints "forks cpu_ns_of_PID".
  loop_beside() {
    local n0 n1 loops
    sleep 1
    n0=$(cpu_ns "$1")
    loops=$("$HELPERS/forker" 1 "$SECONDS_RUN" exec | sed 's/forks=\([0-9]*\).*/\1/')
    sleep 1
    n1=$(cpu_ns "$1")
    echo "$loops $((n1 - n0))"
  }
  for ((round = 1; round <= ROUNDS; round++)); do
    for variant in alone base new peer listener batched; do
      if [ $variant = listener ] || [ $variant = batched ]; then
        local pause=0 listener_pid
        [ $variant = batched ] && pause=10
        # Lives until stopped: its CPU is read while it still runs, whatever the load.
        "$HELPERS/bare_listener" 3600 $pause taskstats >"$WORK/listener.out" 2>&1 &
        listener_pid=$!
        _bench_pids+=("$listener_pid")
        sleep 1
        if ! kill -0 "$listener_pid" 2>/dev/null; then
          echo "bare_listener failed (needs CAP_NET_ADMIN and the initial namespaces): $(cat "$WORK/listener.out")" >&2
          continue
        fi
        echo "$variant $(loop_beside "$listener_pid")" >>"$out"
        kill -TERM "$listener_pid"
        wait "$listener_pid" || true
        continue
      fi
      if [ $variant = alone ]; then
        forks=$("$HELPERS/forker" 1 "$SECONDS_RUN" exec | sed 's/forks=\([0-9]*\).*/\1/')
        echo "alone $forks 0" >>"$out"
        continue
      fi
      if [ $variant = peer ]; then
        start_peer "$WORK/nomatch_pe.yml" "$PEER_SCRAPE_EVERY"
        echo "peer $(loop_beside "$PE_PID")" >>"$out"
        stop_peer
        continue
      fi
      use $variant
      start_exporter "$WORK/nomatch.yml"
      echo "$variant $(loop_beside "$EXPORTER_PID")" >>"$out"
      stop_exporter
    done
  done
  echo
  echo "1. unrelated host processes: fork + exec /bin/true + waitpid, one at a time, config matching none (${SECONDS_RUN} s x $ROUNDS rounds; peer scraped every ${PEER_SCRAPE_EVERY} s)"
  printf '%-8s %10s %10s %22s\n' beside loop/s slowdown "exporter_cpu_us/proc"
  local alone
  alone=$(med 2 alone "$out")
  for variant in alone base new peer listener batched; do
    awk -v v=$variant -v a="$alone" -v s="$SECONDS_RUN" '$1==v {n++; r[n]=$2/s; sl[n]=(a/$2-1)*100; c[n]=$3/1e3/$2}
      function med(x, k,   i, j, t) { for (i=1;i<=k;i++) for (j=i+1;j<=k;j++) if (x[j]<x[i]) {t=x[i];x[i]=x[j];x[j]=t}
        return k%2 ? x[(k+1)/2] : (x[k/2]+x[k/2+1])/2 }
      END { printf "%-8s %10.0f %9.1f%% %22.1f\n", v, med(r,n), med(sl,n), v=="alone" ? 0 : med(c,n) }' "$out"
  done
  echo "raw (beside forks cpu_ns):"; sed 's/^/  /' "$out"
}

storms() {
  ln -sf /bin/true "$WORK/cmpstorm"
  printf 'process_sets:\n  - name: "{{.Comm}}"\ndiscovery:\n  scan_interval: 5s\n  proc_connector: auto\n' >"$WORK/all.yml"
  printf 'process_sets:\n  - name: cmpstorm\n    comm: [cmpstorm]\ndiscovery:\n  scan_interval: 5s\n  proc_connector: auto\n' >"$WORK/renamed.yml"
  printf 'process_names:\n  - name: "{{.Comm}}"\n    cmdline: [".+"]\n' >"$WORK/all_pe.yml"
  printf 'process_names:\n  - name: cmpstorm\n    comm: [cmpstorm]\n' >"$WORK/renamed_pe.yml"
  local mode out round variant forks n0 n1 body exits reaps in_set config pe_config
  for mode in ${STORM_MODES:-fork exec rename}; do
    out="$WORK/storm_$mode.txt"
    : >"$out"
    config="$WORK/all.yml" pe_config="$WORK/all_pe.yml"
    case $mode in
      exec) export FORKER_EXEC="$WORK/cmpstorm"; in_set=0 ;;
      rename) config="$WORK/renamed.yml" pe_config="$WORK/renamed_pe.yml"; in_set=0 ;;
      *) in_set=2 ;;  # the two workers are named cmpstorm too
    esac
    for ((round = 1; round <= ROUNDS; round++)); do
      for variant in base new peer; do
        if [ $variant = peer ]; then
          start_peer "$pe_config" "$PEER_SCRAPE_EVERY"
          sleep 1
          n0=$(cpu_ns "$PE_PID")
          forks=$("$HELPERS/forker" 2 "$SECONDS_RUN" $mode cmpstorm | sed 's/forks=\([0-9]*\).*/\1/')
          sleep 2
          n1=$(cpu_ns "$PE_PID")
          stop_peer
          echo "peer $forks $((n1 - n0)) -1 -1 $((forks + in_set))" >>"$out"  # it counts no exits
          continue
        fi
        use $variant
        start_exporter "$config"
        sleep 1
        n0=$(cpu_ns "$EXPORTER_PID")
        forks=$("$HELPERS/forker" 2 "$SECONDS_RUN" $mode cmpstorm | sed 's/forks=\([0-9]*\).*/\1/')
        sleep 2
        n1=$(cpu_ns "$EXPORTER_PID")
        body=$(curl -s "http://127.0.0.1:$EXPORTER_PORT/metrics")
        exits=$(awk '/^pidfd_process_exits_total\{.*set="cmpstorm"/{s+=$NF} END{print s+0}' <<<"$body")
        reaps=$(awk '/^pidfd_reap_latency_seconds_count\{.*set="cmpstorm"/{s+=$NF} END{print s+0}' <<<"$body")
        stop_exporter
        echo "$variant $forks $((n1 - n0)) $exits $reaps $((forks + in_set))" >>"$out"
      done
    done
    echo
    if [ $mode = rename ]; then
      echo "2. rename storm, 2 workers in no set, each child renames itself into set cmpstorm and exits, reaped at once (${SECONDS_RUN} s x $ROUNDS rounds)"
    else
      echo "2. $mode storm, 2 workers, every process in a set (${SECONDS_RUN} s x $ROUNDS rounds)"
    fi
    printf '%-6s %10s %18s %14s %14s\n' exporter forks/s "cpu_us/lifecycle" exits_counted reap_observed
    for variant in base new peer; do
      awk -v v=$variant -v s="$SECONDS_RUN" '$1==v {n++; r[n]=$2/s; c[n]=$3/1e3/$2; e[n]=$4/$6*100; p[n]=$5/$6*100}
        function med(x, k,   i, j, t) { for (i=1;i<=k;i++) for (j=i+1;j<=k;j++) if (x[j]<x[i]) {t=x[i];x[i]=x[j];x[j]=t}
          return k%2 ? x[(k+1)/2] : (x[k/2]+x[k/2+1])/2 }
        END { if (v == "peer") printf "%-6s %10.0f %18.1f %14s %14s\n", v, med(r,n), med(c,n), "-", "-"
              else printf "%-6s %10.0f %18.1f %13.2f%% %13.2f%%\n", v, med(r,n), med(c,n), med(e,n), med(p,n) }' "$out"
    done
    echo "raw (exporter forks cpu_ns exits reaps expected_exits):"; sed 's/^/  /' "$out"
  done
}

idle() {
  start_sleepers "$N" 100 i
  write_pe_config "$WORK/idle_pe.yml" 100 i
  local out="$WORK/idle.txt" variant interval t0 t1 k0 k1 f0 f1 every scrape_index elapsed_ns
  : >"$out"
  for interval in default 5s 1s; do
    for variant in base new peer; do
      if [ $variant = peer ]; then
        every=${interval%s}
        [ "$interval" = default ] && every=15
        start_pe "$WORK/idle_pe.yml"
        curl -s -o /dev/null "http://127.0.0.1:$PE_PORT/metrics" || true  # its first scrape reads every process
        f0=$(awk '/^processes/{print $2}' /proc/stat)
        t0=$(cpu_ns "$PE_PID")
        k0=$(date +%s%N)
        # WINDOW / every scrapes, each one interval after the previous one ended (slower than
        # the interval when a scrape takes long, as Prometheus would see it): rates per minute
        # of the time it really took.
        for ((scrape_index = 0; scrape_index < (WINDOW >= every ? WINDOW / every : 1); scrape_index++)); do
          sleep "$every"
          curl -s -o /dev/null "http://127.0.0.1:$PE_PORT/metrics" || true
        done
        t1=$(cpu_ns "$PE_PID")
        f1=$(awk '/^processes/{print $2}' /proc/stat)
        elapsed_ns=$(($(date +%s%N) - k0))
        stop_pe
        echo "peer $interval $(awk -v a="$t0" -v b="$t1" -v w="$elapsed_ns" 'BEGIN{printf "%.1f", (b-a)/1e6*60e9/w}') $(awk -v n="$scrape_index" -v w="$elapsed_ns" 'BEGIN{printf "%.1f", n*60e9/w}') $(((f1 - f0) * 60000000000 / elapsed_ns))" >>"$out"
        continue
      fi
      use $variant
      write_sets_config "$WORK/idle.yml" 100 i "$interval" auto auto
      # default: no scan_interval line (base: 5s; new: 30s with the connector)
      [ "$interval" = default ] && sed -i '/scan_interval/d' "$WORK/idle.yml"
      start_exporter "$WORK/idle.yml"
      wait_metric "$EXPORTER_PORT" pidfd_processes "$N"
      sleep 3
      k0=$(metric "$EXPORTER_PORT" pidfd_exporter_scan_duration_seconds_count)
      sleep 0.5
      f0=$(awk '/^processes/{print $2}' /proc/stat)
      t0=$(cpu_ns "$EXPORTER_PID")
      sleep "$WINDOW"
      t1=$(cpu_ns "$EXPORTER_PID")
      f1=$(awk '/^processes/{print $2}' /proc/stat)
      k1=$(metric "$EXPORTER_PORT" pidfd_exporter_scan_duration_seconds_count)
      stop_exporter
      echo "$variant $interval $(awk -v a="$t0" -v b="$t1" -v w="$WINDOW" 'BEGIN{printf "%.1f", (b-a)/1e6*60/w}') $(awk -v a="$k0" -v b="$k1" -v w="$WINDOW" 'BEGIN{printf "%.1f", (b-a)*60/w}') $(((f1 - f0) * 60 / WINDOW))" >>"$out"
    done
  done
  stop_sleepers
  echo
  echo "3. idle: $N sleeping watched processes in 100 sets, connector auto, ${WINDOW} s per cell, no scrapes (peer: its scrapes are its scans; default = every 15 s)"
  printf '%-6s %22s %10s %18s %10s %18s %10s %26s\n' exporter "cpu_ms/min (default)" "scans/min" "cpu_ms/min (5s)" "scans/min" "cpu_ms/min (1s)" "scans/min" "scan_cpu_us/watched_proc"
  for variant in base new peer; do
    awk -v v=$variant -v n="$N" '$1==v && $2=="default" {cd=$3; sd=$4} $1==v && $2=="5s" {c5=$3; s5=$4} $1==v && $2=="1s" {c1=$3; s1=$4}
      END { printf "%-6s %22.1f %10.1f %18.1f %10.1f %18.1f %10.1f %26.2f\n", v, cd, sd, c5, s5, c1, s1, (s1>s5) ? (c1-c5)*1000/(s1-s5)/n : 0 }' "$out"
  done
  echo "raw (exporter interval cpu_ms/min scans/min host_forks/min: other work's processes wake the connector too):"; sed 's/^/  /' "$out"
}

scrape() {
  echo
  echo "4. scrape: the targets' cells, this build (pidfd_exporter), base and peer on the same sleepers"
  [ "$NEW_EXPORTER" = "$BUILD/pidfd_exporter" ] || echo "(bench/scrape.sh measures this build's exporter, not NEW_EXPORTER)"
  local quick=()
  [ $QUICK = 1 ] && quick=(--quick)
  BASE_EXPORTER="$BASE_EXPORTER" SCRAPE_CELLS="1000x1000 10000x100" "$BENCH_DIR/scrape.sh" "${quick[@]}" |
    grep -v '^machine:'
}

for scenario in $SCENARIOS; do "$scenario"; done
