#!/usr/bin/env bash
# Soak: the exporter under continuous process churn and scraping for a long time; samples
# its RSS, open descriptors and series count every --interval seconds, prints a table, and
# checks that none of them grows without bound.
#
#   bench/soak/soak.sh                         # 10 minutes, build/pidfd_exporter
#   bench/soak/soak.sh --duration=60           # short mode (CI)
#   bench/soak/soak.sh --binary=/tmp/asan-build/pidfd_exporter --duration=600 --interval=30
#
# Workload: 2 churn workers forking short-lived children (0-3 ms, --rate forks/s each, each
# child renamed to one of 40 names so that templated sets come and go under max_sets), 50
# long-lived sleepers, scrapes every second plus a burst of 8 concurrent scrapes each sample.
# Config: one set per comm ("{{.Comm}}", the default), proc connector auto, scan every 5 s.
# Checks: the exporter stays up; every scrape succeeds; from the first sample after warm-up
# (25% of the run) to the end, RSS grows < 20% + 4 MiB, descriptors < +16, series < +5%
# beyond 40 per set that appeared meanwhile (a new command name on the host is a new set).
# Last line: "N passed, M failed".
set -uo pipefail
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
duration=600
interval=30
rate=500
binary=$source_dir/build/pidfd_exporter
for argument in "$@"; do
  case "$argument" in
    --duration=*) duration=${argument#*=} ;;
    --interval=*) interval=${argument#*=} ;;
    --rate=*) rate=${argument#*=} ;;
    --binary=*) binary=${argument#*=} ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $argument" >&2; exit 2 ;;
  esac
done
[ "$duration" -lt 120 ] && [ "$interval" -eq 30 ] && interval=10  # short mode: more samples
[ -x "$binary" ] || { echo "soak.sh: no exporter binary at $binary (build first, or --binary=)" >&2; exit 2; }

work=$(mktemp -d /tmp/pidfd_soak.XXXXXX)
pids=()
exporter_pid=""
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  [ -n "$exporter_pid" ] && kill -KILL "$exporter_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cc -O2 -o "$work/soak_churn" "$source_dir/tests/e2e/helpers/fault_helper.c" || exit 1
cp "$work/soak_churn" "$work/soak_sleep"
cat >"$work/config.yml" <<'YAML'
process_sets:
  - name: "{{.Comm}}"
discovery:
  scan_interval: 5s
  proc_connector: auto
limits:
  max_sets: 256
YAML

"$binary" --config.file="$work/config.yml" --web.listen-address=127.0.0.1:0 >"$work/exporter.log" 2>&1 &
exporter_pid=$!
address=""
for _ in $(seq 300); do
  address=$(grep -o 'msg="Listening on" address=[0-9.:]*' "$work/exporter.log" | head -1 | sed 's/.*address=//')
  [ -n "$address" ] && grep -q 'First scan done' "$work/exporter.log" && break
  sleep 0.1
done
[ -n "$address" ] || { echo "exporter did not start:"; cat "$work/exporter.log"; exit 1; }

for _ in $(seq 50); do "$work/soak_sleep" sleep & pids+=($!); done
"$work/soak_churn" churn "$duration" 2 "$rate" 40 >"$work/churn.count" &
churn_pid=$!
pids+=("$churn_pid")

scrape_failures=0
scrapes=0
(
  # Background scraper: one scrape a second, counting failures in a file.
  while :; do
    if curl -sf --max-time 30 -o /dev/null "http://$address/metrics"; then echo ok; else echo fail; fi
    sleep 1
  done
) >"$work/scrapes.log" 2>/dev/null &
pids+=($!)

sample() {  # elapsed rss_kib fds series exits scrape_ms sets
  local status rss fds text series exits start_ns end_ns sets
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$exporter_pid/status" 2>/dev/null)
  fds=$(find "/proc/$exporter_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  start_ns=$(date +%s%N)
  text=$(curl -sf --max-time 30 "http://$address/metrics") || { echo "$1 ${rss:-0} $fds 0 0 -1 0"; return; }
  end_ns=$(date +%s%N)
  series=$(grep -vc '^#' <<<"$text")
  exits=$(awk '/^pidfd_process_exits_total\{/ { s += $2 } END { printf "%d", s }' <<<"$text")
  sets=$(grep -c '^pidfd_processes{' <<<"$text")
  echo "$1 ${rss:-0} $fds $series $exits $(((end_ns - start_ns) / 1000000)) $sets"
}

start=$SECONDS
samples=()
printf '%8s %10s %6s %8s %12s %10s\n' elapsed_s rss_mib fds series exits_total scrape_ms
while :; do
  elapsed=$((SECONDS - start))
  for _ in $(seq 8); do curl -sf --max-time 30 -o /dev/null "http://$address/metrics" & done
  line=$(sample "$elapsed")
  samples+=("$line")
  read -r e r f s x m _ <<<"$line"
  printf '%8s %10.1f %6s %8s %12s %10s\n' "$e" "$(awk -v k="$r" 'BEGIN { print k / 1024 }')" "$f" "$s" "$x" "$m"
  kill -0 "$exporter_pid" 2>/dev/null || break
  [ "$elapsed" -ge "$duration" ] && break
  sleep "$interval"
done
wait "$churn_pid" 2>/dev/null
created=$(cat "$work/churn.count" 2>/dev/null || echo "?")
scrapes=$(grep -c . "$work/scrapes.log")
scrape_failures=$(grep -c fail "$work/scrapes.log")

passed=0 failed=0
check() {
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   - $name"; else failed=$((failed + 1)); echo "FAIL - $name"; fi
}
echo "processes forked by the churn: ${created}; background scrapes: $scrapes ($scrape_failures failed)"
check "exporter still running" kill -0 "$exporter_pid"
check "every background scrape succeeded ($scrape_failures failed)" [ "$scrape_failures" -eq 0 ]
# Warm-up: the first sample at or after 25% of the run is the baseline.
baseline=""
for line in "${samples[@]}"; do
  read -r e _ <<<"$line"
  if [ "$e" -ge $((duration / 4)) ]; then baseline=$line; break; fi
done
last=${samples[-1]}
if [ -n "$baseline" ] && [ "$baseline" != "$last" ]; then
  read -r _ r0 f0 s0 _ _ n0 <<<"$baseline"
  read -r _ r1 f1 s1 _ m1 n1 <<<"$last"
  check "RSS bounded after warm-up ($((r0 / 1024)) -> $((r1 / 1024)) MiB)" [ "$r1" -le $((r0 + r0 / 5 + 4096)) ]
  check "descriptors bounded after warm-up ($f0 -> $f1)" [ "$f1" -le $((f0 + 16)) ]
  # One set per comm: a command name seen for the first time on the host (anything else
  # running meanwhile) adds a set of ~30 series, up to limits.max_sets. That is the config
  # working, not growth; bounded means per-set series stay flat: 40 allowed per new set.
  new_sets=$((n1 > n0 ? n1 - n0 : 0))
  check "series bounded after warm-up ($s0 -> $s1, sets $n0 -> $n1)" \
    [ "$s1" -le $((s0 + s0 / 20 + 10 + 40 * new_sets)) ]
  check "last scrape answered" [ "$m1" -ge 0 ]
else
  check "enough samples for a trend (run longer than 2 intervals)" false
fi
kill -TERM "$exporter_pid"
for _ in $(seq 200); do kill -0 "$exporter_pid" 2>/dev/null || break; sleep 0.05; done
wait "$exporter_pid"
rc=$?
exporter_pid=""
check "SIGTERM exit status 0 ($rc)" [ "$rc" -eq 0 ]
check "no sanitizer report" bash -c "! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer' '$work/exporter.log'"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
