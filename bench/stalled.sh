#!/usr/bin/env bash
# Scenario: scrape latency while 0, 64, 256 and 1024 stalled connections are held open
# (each sent half a request line, or over TLS half a ClientHello, and waits; the holder
# re-opens any the server closes), pidfd_exporter next to node_exporter (Debian's
# prometheus-node-exporter, Go net/http, default collectors), plain and TLS, one after the
# other in the same run, all on loopback. Per cell: p50/p99/max of SCRAPES scrapes in a row
# (a new connection each, 50 ms apart), failed scrapes, and the server's threads and RSS
# while the connections are held (bench/helpers/stalled_scrapes.py).
# Usage: bench/stalled.sh [--quick]   (quick: 0 and 256 stalled, 20 scrapes)
source "$(dirname "$0")/lib.sh"
NODE_EXPORTER=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
[ -x "$NODE_EXPORTER" ] || { echo "prometheus-node-exporter missing: scripts/install-deps.sh bench" >&2; exit 1; }
cmake --build "$BUILD" --target pidfd_exporter >"$WORK/build.log" 2>&1 || {
  cmake -S "$SOURCE_DIR" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
    cmake --build "$BUILD" --target pidfd_exporter >"$WORK/build.log" 2>&1
}

if [ $QUICK = 1 ]; then STALLED=(0 256); SCRAPES=${SCRAPES:-20}
else STALLED=(0 64 256 1024); SCRAPES=${SCRAPES:-200}; fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
printf 'tls_server_config:\n  cert_file: %s\n  key_file: %s\n' "$WORK/tls.crt" "$WORK/tls.key" >"$WORK/web.yml"
printf 'process_sets:\n  - name: "{{.Comm}}"\n' >"$WORK/pidfd.yml"

SERVER_PID=
start_server() {  # NAME TLS(0/1) PORT
  local web=()
  [ "$2" = 1 ] && web=(--web.config.file="$WORK/web.yml")
  if [ "$1" = pidfd_exporter ]; then
    "$EXPORTER" --config.file="$WORK/pidfd.yml" --web.listen-address="127.0.0.1:$3" "${web[@]}" \
      >"$WORK/server.log" 2>&1 &
  else
    "$NODE_EXPORTER" --web.listen-address="127.0.0.1:$3" "${web[@]}" >"$WORK/server.log" 2>&1 &
  fi
  SERVER_PID=$!
  _bench_pids+=("$SERVER_PID")
  local scheme=http curl_tls=()
  [ "$2" = 1 ] && scheme=https curl_tls=(--cacert "$WORK/tls.crt")
  for _ in $(seq 100); do
    curl -sf -o /dev/null "${curl_tls[@]}" "$scheme://127.0.0.1:$3/metrics" && return 0
    sleep 0.1
  done
  echo "$1 did not start:" >&2
  cat "$WORK/server.log" >&2
  return 1
}
stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}

machine_line
echo "command: bench/stalled.sh $*; $SCRAPES scrapes per cell; $(basename "$NODE_EXPORTER") $("$NODE_EXPORTER" --version 2>&1 | head -1 | awk '{print $3}')"
printf '%-15s %-5s %8s %9s %9s %9s %7s %8s %9s\n' server tls stalled p50_ms p99_ms max_ms failed threads rss_kib
for tls in 0 1; do
  for server in pidfd_exporter node_exporter; do
    port=$(free_port)
    start_server "$server" "$tls" "$port"
    ca=-
    [ "$tls" = 1 ] && ca=$WORK/tls.crt
    for stalled in "${STALLED[@]}"; do
      read -r p50 p99 max failed threads rss < <(timeout 600 python3 "$BENCH_DIR/helpers/stalled_scrapes.py" \
        "127.0.0.1:$port" "$stalled" "$SCRAPES" "$ca" "$SERVER_PID")
      printf '%-15s %-5s %8s %9s %9s %9s %7s %8s %9s\n' "$server" "$([ "$tls" = 1 ] && echo yes || echo no)" \
        "$stalled" "$p50" "$p99" "$max" "$failed" "$threads" "$rss"
    done
    stop_server
  done
done
