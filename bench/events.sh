#!/usr/bin/env bash
# Scenario 2: event throughput. A fork storm (bench/helpers/forker.c: WORKERS processes
# named "fstorm" loop vfork -> child _exit(0) -> waitpid) runs SECONDS, alone and under a
# pidfd_exporter that watches every process (name "{{.Comm}}"), with proc_connector auto
# (taskstats exit records auto, and off) and off; the four variants are interleaved, ROUNDS
# times, and medians reported.
# Per variant: fork rate, slowdown vs alone, exporter CPU per process lifecycle (its CPU
# from ready to 2 s after the storm, divided by forks), share of exits counted
# (pidfd_process_exits_total{set="fstorm"} / (forks + workers)), share with a reap-latency
# observation (pidfd_reap_latency_seconds_count), connector overflows.
# MODE=exec: the children exec a symlink named "fstorm" to /bin/true (workers are "fworker"),
# so the shares say how many short-lived exec'd programs land in their set; unattributed =
# pidfd_exporter_unattributed_exits_total / forks.
# Variant "auto_no_exit_resources" is "auto" with the issue-13 additions off
# (--debug.disable-kernel-features=exit_resources,oom_kernel_log,oom_cgroup_counter): the cost
# of the exit resources and OOM attribution, side by side in the same rounds. Variant
# "auto_no_final_runtime" is "auto" without the eBPF probe (--debug.disable-kernel-features=
# final_runtime): its cost in the exporter and, in the storm's rate, in the kernel.
# Usage: [MODE=vfork|fork|exec] bench/events.sh [--quick]   (quick: 1 round of 3 s)
source "$(dirname "$0")/lib.sh"
ensure_build

MODE=${MODE:-vfork}
if [ $QUICK = 1 ]; then ROUNDS=${ROUNDS:-1}; SECONDS_RUN=${SECONDS_RUN:-3}; else ROUNDS=${ROUNDS:-5}; SECONDS_RUN=${SECONDS_RUN:-5}; fi
machine_line
if [ "$MODE" = exec ]; then
  ln -sf /bin/true "$WORK/fstorm"
  export FORKER_EXEC="$WORK/fstorm"
  IN_SET_WORKERS=0  # the workers are "fworker": only the exec'd children are in set fstorm
else
  IN_SET_WORKERS=""
fi

# The highest rate: try 1, 2 and 4 workers alone, keep the best.
WORKERS=${WORKERS:-}
if [ -z "$WORKERS" ]; then
  best=0
  for w in 1 2 4; do
    r=$("$HELPERS/forker" "$w" 2 "$MODE" | sed 's/.*rate=//')
    echo "probe: $w workers $MODE alone: $r/s"
    if [ "$r" -gt "$best" ]; then best=$r; WORKERS=$w; fi
  done
fi
IN_SET_WORKERS=${IN_SET_WORKERS:-$WORKERS}
echo "load: $WORKERS workers, $MODE+_exit+waitpid, ${SECONDS_RUN} s per run, $ROUNDS rounds"

cat >"$WORK/auto.yml" <<'YAML'
process_sets:
  - name: "{{.Comm}}"
discovery:
  scan_interval: 5s
  proc_connector: auto
YAML
sed 's/proc_connector: auto/proc_connector: off/' "$WORK/auto.yml" >"$WORK/off.yml"
printf '  taskstats: off\n' | cat "$WORK/auto.yml" - >"$WORK/auto_no_records.yml"

RESULTS="$WORK/events.txt"
: >"$RESULTS"
for ((round = 1; round <= ROUNDS; round++)); do
  for variant in alone auto auto_no_final_runtime auto_no_exit_resources auto_no_records off; do
    if [ $variant = alone ]; then
      forks=$("$HELPERS/forker" "$WORKERS" "$SECONDS_RUN" "$MODE" fstorm | sed 's/forks=\([0-9]*\).*/\1/')
      echo "alone $forks" >>"$RESULTS"
      continue
    fi
    if [ $variant = auto_no_exit_resources ]; then
      EXPORTER_ARGS=--debug.disable-kernel-features=exit_resources,oom_kernel_log,oom_cgroup_counter \
        start_exporter "$WORK/auto.yml"
    elif [ $variant = auto_no_final_runtime ]; then
      EXPORTER_ARGS=--debug.disable-kernel-features=final_runtime start_exporter "$WORK/auto.yml"
    else
      start_exporter "$WORK/$variant.yml"
    fi
    c0=$(cpu_ticks "$EXPORTER_PID"); n0=$(cpu_ns "$EXPORTER_PID")
    forks=$("$HELPERS/forker" "$WORKERS" "$SECONDS_RUN" "$MODE" fstorm | sed 's/forks=\([0-9]*\).*/\1/')
    sleep 2
    c1=$(cpu_ticks "$EXPORTER_PID"); n1=$(cpu_ns "$EXPORTER_PID")
    body=$(curl -s "http://127.0.0.1:$EXPORTER_PORT/metrics")
    exits=$(awk '/^pidfd_process_exits_total\{.*set="fstorm"/{s+=$NF} END{print s+0}' <<<"$body")
    reaps=$(awk '/^pidfd_reap_latency_seconds_count\{.*set="fstorm"/{s+=$NF} END{print s+0}' <<<"$body")
    missed=$(awk '/^pidfd_exporter_missed_exits_total\{.*set="fstorm"/{s+=$NF} END{print s+0}' <<<"$body")
    overflow=$(awk '/^pidfd_exporter_errors_total\{.*connector_overflow/{s+=$NF} END{print s+0}' <<<"$body")
    unattributed=$(awk '/^pidfd_exporter_unattributed_exits_total /{s+=$NF} END{print s+0}' <<<"$body")
    stop_exporter
    echo "$variant $forks $((c1 - c0)) $((n1 - n0)) $exits $reaps $missed $overflow $unattributed" >>"$RESULTS"
  done
done

alone=$(awk '$1=="alone"{print $2}' "$RESULTS" | median)
printf '\n%-32s %10s %9s %14s %14s %12s %12s %12s %9s\n' variant forks/s slowdown "cpu_us/proc" "(ticks)" exits_counted reap_observed unattributed overflows
printf '%-32s %10.0f %9s %14s %14s %12s %12s %12s %9s\n' "alone" "$(awk -v f="$alone" -v s="$SECONDS_RUN" 'BEGIN{print f/s}')" "1.00" - - - - - -
for variant in auto auto_no_final_runtime auto_no_exit_resources auto_no_records off; do
  case $variant in
    auto) label="connector auto, taskstats auto" ;;
    auto_no_final_runtime) label="  the same, final_runtime off" ;;
    auto_no_exit_resources) label="  the same, issue 13 off" ;;
    auto_no_records) label="connector auto, taskstats off" ;;
    off) label="connector off" ;;
  esac
  awk -v v="$variant" -v label="$label" -v a="$alone" -v s="$SECONDS_RUN" -v w="$IN_SET_WORKERS" -v hz="$CLK_TCK" '$1==v {
      n++; rate[n]=$2/s; slow[n]=a/$2; cpu[n]=$4/1e3/$2; tick[n]=$3*1e6/hz/$2
      ex[n]=$5/($2+w)*100; rp[n]=$6/($2+w)*100; ov[n]=$8; un[n]=$9/$2*100 }
    function med(arr, k,   i, j, t, b) { for (i=1;i<=k;i++) b[i]=arr[i]
      for (i=1;i<=k;i++) for (j=i+1;j<=k;j++) if (b[j]<b[i]) {t=b[i];b[i]=b[j];b[j]=t}
      return k%2 ? b[(k+1)/2] : (b[k/2]+b[k/2+1])/2 }
    END { printf "%-32s %10.0f %9.2f %14.1f %14.1f %11.1f%% %11.1f%% %11.2f%% %9d\n", label,
          med(rate,n), med(slow,n), med(cpu,n), med(tick,n), med(ex,n), med(rp,n), med(un,n), med(ov,n) }' "$RESULTS"
done
echo "(medians of $ROUNDS interleaved rounds; slowdown = alone rate / rate; cpu_us/proc from schedstat of live threads, (ticks) from utime+stime)"
echo "raw (variant forks cpu_ticks cpu_ns exits reaps missed overflows unattributed):"
sed 's/^/  /' "$RESULTS"
