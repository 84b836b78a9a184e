#!/usr/bin/env bash
# Scenario 8: accuracy of the resources of exited processes (issue 13). bench/helpers/resources.c
# forks N short-lived children (2 alive at a time), each touching TOUCH_MIB of memory and burning
# CPU_MS of CPU; the parent's getrusage(RUSAGE_CHILDREN) is the truth for the CPU, each child's
# own getrusage(RUSAGE_SELF) just before it exits the truth for its peak RSS.
# Compared: pidfd_process_cpu_seconds_total{set="resburn"} (user + system) against the children's
# CPU (target: within 2 %); pidfd_process_peak_rss_bytes: its _sum against the children's summed
# ru_maxrss, and its distribution against theirs in 1 % buckets from 80 % to 120 % of the
# calibrated peak: when every cumulative bucket count agrees, the exported peaks and the
# children's own are the same multiset at 1 % resolution (target: each within 5 %). Where
# prometheus-process-exporter is installed, it watches the same children (scraped every second)
# and its namedprocess_namegroup_cpu_seconds_total is shown beside.
# A second exporter with --debug.disable-kernel-features=final_runtime watches the same children:
# the CPU of the exit records alone, beside the records plus the eBPF probe's final run times.
# BURN=blind: the children burn a calibrated loop without reading their own CPU time (then the
# records' run time is up to a tick old; the peak RSS rows have no truth and are left out).
# Usage: bench/exit_resources.sh [--quick]   (quick: 200 children)
source "$(dirname "$0")/lib.sh"
ensure_build

if [ $QUICK = 1 ]; then N=${N:-200}; else N=${N:-1000}; fi
CPU_MS=${CPU_MS:-20}
TOUCH_MIB=${TOUCH_MIB:-4}
machine_line
echo "load: $N children, ${CPU_MS} ms CPU and ${TOUCH_MIB} MiB touched each, 2 alive at a time, burn ${BURN:-reading its clock}"

# Calibration without the exporter: the peak RSS a child reaches (parent's RSS shared at fork + TOUCH).
calibration=$(BURN= "$HELPERS/resources" 20 1 "$TOUCH_MIB" 2)
peak=$(sed 's/.*max_maxrss_bytes=\([0-9]*\).*/\1/' <<<"$calibration")
buckets=$(awk -v p="$peak" 'BEGIN{for (i = 80; i <= 120; i++) printf "%s%.0f", (i > 80 ? ", " : ""), p * i / 100}')
cat >"$WORK/res.yml" <<YAML
process_sets:
  - name: resburn
    comm: [resburn]
discovery:
  scan_interval: 5s
  proc_connector: auto
histograms:
  peak_rss_bytes: [$buckets]
YAML
EXPORTER_ARGS="--debug.disable-kernel-features=final_runtime" start_exporter "$WORK/res.yml"
RECORDS_PORT=$EXPORTER_PORT RECORDS_PID=$EXPORTER_PID
start_exporter "$WORK/res.yml"
pe_note="prometheus-process-exporter not installed"
if [ -x "$PE" ]; then
  printf 'process_names:\n  - name: resburn\n    comm: [resburn]\n' >"$WORK/pe.yml"
  start_pe "$WORK/pe.yml"
  ( while :; do curl -s -o /dev/null "http://127.0.0.1:$PE_PORT/metrics"; sleep 1; done ) &
  _bench_pids+=($!)
  SCRAPER_PID=$!
fi
truth=$("$HELPERS/resources" "$N" "$CPU_MS" "$TOUCH_MIB" 2)
truth_list=$(sed -n 's/^maxrss_bytes=//p' <<<"$truth")
truth=$(head -1 <<<"$truth")
echo "truth: $truth"
wait_metric "$EXPORTER_PORT" pidfd_process_peak_rss_bytes_count "$N" 'set="resburn"'
sleep 1
if [ -x "$PE" ]; then
  kill "$SCRAPER_PID" 2>/dev/null || true
  pe_cpu=$(metric "$PE_PORT" namedprocess_namegroup_cpu_seconds_total 'groupname="resburn"')
  stop_pe
fi
cpu=$(metric "$EXPORTER_PORT" pidfd_process_cpu_seconds_total 'set="resburn"')
records_cpu=$(metric "$RECORDS_PORT" pidfd_process_cpu_seconds_total 'set="resburn"')
kill -TERM "$RECORDS_PID" 2>/dev/null || true
user=$(metric "$EXPORTER_PORT" pidfd_process_cpu_seconds_total 'mode="user"')
count=$(metric "$EXPORTER_PORT" pidfd_process_peak_rss_bytes_count 'set="resburn"')
body=$(curl -s "http://127.0.0.1:$EXPORTER_PORT/metrics")
rss_sum=$(awk '/^pidfd_process_peak_rss_bytes_sum\{.*set="resburn"/{printf "%.0f", $NF}' <<<"$body")
# Largest difference between the exporter's cumulative bucket counts and the children's own.
mismatch=$(grep '^pidfd_process_peak_rss_bytes_bucket{.*set="resburn"' <<<"$body" | sed 's/.*le="\([^"]*\)".* \(.*\)/\1 \2/' |
  awk -v list="$truth_list" 'BEGIN{n = split(list, t, ",")}
    $1 != "+Inf" { c = 0; for (i = 1; i <= n; i++) if (t[i] <= $1 + 0) c++; d = $2 - c; if (d < 0) d = -d; if (d > m) m = d }
    END { print m + 0 }')
exits=$(metric "$EXPORTER_PORT" pidfd_process_exits_total 'set="resburn"')
stop_exporter

field() { sed "s/.*$1=\([0-9.]*\).*/\1/" <<<"$truth"; }
children_cpu=$(field children_cpu_seconds)
self_cpu=$(field self_cpu_seconds)
truth_rss=$(field sum_maxrss_bytes)
tmin=$(field min_maxrss_bytes)
tmax=$(field max_maxrss_bytes)
echo
printf '%-46s %14s %14s %10s\n' quantity exporter truth error
awk -v e="$cpu" -v t="$children_cpu" 'BEGIN{printf "%-46s %14.4f %14.4f %+9.2f%%\n", "CPU s (vs parent RUSAGE_CHILDREN)", e, t, (e-t)/t*100}'
awk -v e="$records_cpu" -v t="$children_cpu" 'BEGIN{printf "%-46s %14.4f %14.4f %+9.2f%%\n", "  exit records alone (final_runtime off)", e, t, (e-t)/t*100}'
awk -v e="$user" -v t="$cpu" 'BEGIN{printf "%-46s %14.4f %14s %9s\n", "  of which user", e, "-", "-"}'
if [ "${BURN:-}" != blind ]; then
  awk -v e="$cpu" -v t="$self_cpu" 'BEGIN{printf "%-46s %14.4f %14.4f %+9.2f%%\n", "CPU s (vs children'"'"'s last RUSAGE_SELF)", e, t, (e-t)/t*100}'
  awk -v e="$records_cpu" -v t="$self_cpu" 'BEGIN{printf "%-46s %14.4f %14.4f %+9.2f%%\n", "  exit records alone (final_runtime off)", e, t, (e-t)/t*100}'
  awk -v e="$rss_sum" -v t="$truth_rss" 'BEGIN{printf "%-46s %14.0f %14.0f %+9.3f%%\n", "peak RSS sum, bytes (vs summed ru_maxrss)", e, t, (e-t)/t*100}'
  printf '%-46s %14s %14s\n' "largest cumulative bucket difference (1 % buckets)" "$mismatch" "0 (truth: $tmin..$tmax)"
fi
printf '%-46s %14s %14s\n' "exits counted / resource observations" "$exits / $count" "$N"
if [ -x "$PE" ]; then
  awk -v e="$pe_cpu" -v t="$children_cpu" 'BEGIN{printf "%-46s %14.4f %14.4f %+9.2f%%\n", "process-exporter CPU s (1 s scrapes)", e, t, (e-t)/t*100}'
else
  echo "($pe_note)"
fi
