# The shared library of tests/e2e/*_test.sh (sourced, not run; not a test itself): counting
# checks, polling with a deadline, ports, stopping processes. Tests that run the exporter
# under their own control also source helpers/common.sh, which builds on this file.
# Each test counts its checks with pass/fail/check and ends with `finish`, which prints
# "N passed, M failed" and exits non-zero on any failure.

PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }

# check "description" command args...: runs the command, counts the result, shows its output
# (the last 40 lines) on failure. The command runs in this shell, so what it sets stays set.
check() {
  local what=$1; shift
  local out
  out=$(mktemp)
  if "$@" >"$out" 2>&1; then
    pass "$what"
  else
    fail "$what"
    sed 's/^/     /' "$out" | tail -40
  fi
  rm -f "$out"
}

# note TEXT: an informational line between the checks (measured values, why a part is skipped).
note() { echo "     # $*"; }

finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit $?
}

# A python3 that has PyYAML (Debian's python3-yaml, installed by scripts/install-deps.sh test). A python
# from pyenv or a venv earlier in PATH may lack it, so try /usr/bin/python3 too.
find_python() {
  local candidate
  for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "python3 with PyYAML not found (apt-get install python3-yaml)" >&2
  return 1
}

# Adds the numbers of a sub-check's final "N passed, M failed" line (in file $1) to the counters.
add_counts() {
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -1)
  if [ -z "$line" ]; then
    fail "no summary line in $1"
    return
  fi
  PASSED=$((PASSED + $(echo "$line" | cut -d' ' -f1)))
  FAILED=$((FAILED + $(echo "$line" | cut -d' ' -f3)))
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls the command every 0.1 s until it succeeds
# (a pass), or counts a failure once SECONDS have gone by.
wait_for() {
  local seconds=$1 what=$2; shift 2
  local end=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then fail "$what (not within ${seconds}s)"; return 1; fi
    sleep 0.1
  done
  pass "$what"
}

# listening_address LOG: the address in the exporter's "Listening on" log line (empty until then).
listening_address() { grep -o 'msg="Listening on" address=127\.0\.0\.1:[0-9]*' "$1" | head -1 | cut -d= -f3; }

# start_prometheus BINARY CONFIG DIR SECONDS: a Prometheus server on a free loopback port with
# its data and log (prometheus.log) in DIR, ready within SECONDS; sets PROM (host:port) and
# PROM_PID, counts a pass or a failure. A free port can be taken between the probe and the
# bind: three attempts.
start_prometheus() {
  local binary=$1 config=$2 dir=$3 seconds=$4 attempt end
  PROM_PID=
  for attempt in 1 2 3; do
    PROM=127.0.0.1:$(free_port)
    rm -rf "$dir/data"
    "$binary" --config.file="$config" --storage.tsdb.path="$dir/data" \
      --web.listen-address="$PROM" --log.level=warn >"$dir/prometheus.log" 2>&1 &
    PROM_PID=$!
    end=$((SECONDS + seconds))
    while [ $SECONDS -lt $end ] && kill -0 "$PROM_PID" 2>/dev/null && ! curl -sf "http://$PROM/-/ready" >/dev/null 2>&1; do sleep 0.2; done
    curl -sf "http://$PROM/-/ready" >/dev/null 2>&1 && break
    kill "$PROM_PID" 2>/dev/null; wait "$PROM_PID" 2>/dev/null; PROM_PID=
  done
  if [ -n "$PROM_PID" ]; then pass "prometheus ready on $PROM"; return 0; fi
  fail "prometheus did not start"
  tail -20 "$dir/prometheus.log"
  return 1
}

# A TCP port on 127.0.0.1 that was free a moment ago (python3, or $PY when the test set it).
free_port() {
  "${PY:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# stop_pids PID...: SIGTERM to each (empty arguments are skipped), up to 5 s each to go,
# then SIGKILL; reaps them.
stop_pids() {
  local pid
  for pid in "$@"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; done
  for pid in "$@"; do
    [ -n "$pid" ] || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
}
