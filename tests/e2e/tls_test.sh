#!/usr/bin/env bash
# End to end: --web.config.file with TLS and basic auth, against the real binary.
#   - a test CA and certificates made here with the openssl CLI (server SAN IP:127.0.0.1);
#   - HTTPS with curl --cacert: 200, repeated and concurrent handshakes (CivetWeb 1.15 on
#     OpenSSL 3 crashed on the first one without exporter/tls_shim/), an untrusted CA
#     refused, plain HTTP not served, configured response headers present;
#   - basic auth over TLS: right password 200, wrong password / unknown user / none 401;
#   - client certificates (RequireAndVerifyClientCert): none or a foreign one refused,
#     one from client_ca_file accepted; min_version TLS13 refuses TLS 1.2;
#   - a real Prometheus (Debian's /usr/bin/prometheus) scrapes both servers over https
#     (tls_config ca_file, basic_auth; cert_file/key_file) until /api/v1/targets says "up";
#   - 256 stalled TLS connections of each kind (handshake never started, ClientHello
#     trickled a byte a second, handshake done then silence, answer never read) and a flood
#     of 5000: scrapes over TLS still succeed (tests/e2e/helpers/http_abuse.py);
#   - certificates rotate under a running exporter while it is scraped every few ms: new
#     handshakes get the new certificate, a broken file keeps the old one (logged, counted),
#     and no scrape fails;
#   - a bad web config stops start-up with file:line:col errors.
# Usage: tls_test.sh <exporter-binary> <source-dir>
set -uo pipefail
EXPORTER=$1
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/e2e/lib.sh"
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
for tool in "$PROMETHEUS" openssl curl python3; do
  command -v "$tool" >/dev/null || { fail "$tool not installed (Debian packages prometheus, openssl, curl)"; finish; }
done
[ -x "$EXPORTER" ] || { fail "exporter binary $EXPORTER not found"; finish; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  stop_pids "${PIDS[@]}"
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# --- certificates --------------------------------------------------------------------------
# cert NAME CA EXTENSIONS SUBJECT: an EC P-256 key and a certificate signed by CA (a CA itself
# when CA is "self").
cert() {
  local name=$1 ca=$2 extensions=$3 subject=$4
  if [ "$ca" = self ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "$subject" \
      -keyout "$TMP/$name.key" -out "$TMP/$name.crt" 2>>"$TMP/openssl.log"
  else
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subject" \
      -keyout "$TMP/$name.key" -out "$TMP/$name.csr" 2>>"$TMP/openssl.log" &&
      printf '%b' "$extensions" > "$TMP/$name.ext" &&
      openssl x509 -req -days 2 -in "$TMP/$name.csr" -CA "$TMP/$ca.crt" -CAkey "$TMP/$ca.key" \
        -CAcreateserial -extfile "$TMP/$name.ext" -out "$TMP/$name.crt" 2>>"$TMP/openssl.log"
  fi
}
if cert ca self "" "/CN=pidfd_exporter test CA" &&
   cert server ca "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" "/CN=127.0.0.1" &&
   cert client_ca self "" "/CN=pidfd_exporter test client CA" &&
   cert client client_ca "extendedKeyUsage=clientAuth\n" "/CN=prometheus" &&
   cert stranger_ca self "" "/CN=someone else" &&
   cert stranger stranger_ca "extendedKeyUsage=clientAuth\n" "/CN=stranger"; then
  pass "test CAs and certificates generated"
else
  fail "openssl could not generate the certificates"; cat "$TMP/openssl.log"; finish
fi

# bcrypt (cost 5, fast) of "correct horse" in the $2y$ spelling and of "battery staple" in $2b$.
PROMETHEUS_HASH='$2y$05$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2'
ALICE_HASH='$2b$05$ABCDEFGHIJKLMNOPQRSTUuKc95hIE.CdSSKhiXXieUyyQFdVSdFW.'

cat > "$TMP/exporter.yml" <<EOF
process_sets:
  - name: exporter
    comm: [pidfd_exporter]
EOF

# start NAME WEB_CONFIG [FLAGS...]: starts an exporter on an ephemeral port; sets ADDRESS.
start() {
  local name=$1 web_config=$2
  "$EXPORTER" --config.file="$TMP/exporter.yml" --web.listen-address=127.0.0.1:0 \
    --web.config.file="$web_config" "${@:3}" > "$TMP/$name.log" 2>&1 &
  PIDS+=($!)
  eval "${name}_PID=$!"
  address_of() { grep -o 'msg="Listening on" address=127\.0\.0\.1:[0-9]*' "$TMP/$1.log" | head -1 | cut -d= -f3; }
  if ! wait_for 15 "$name: exporter listening" address_of "$name"; then cat "$TMP/$name.log"; finish; fi
  ADDRESS=$(address_of "$name")
}

# status URL CURL-ARGS...: the HTTP status curl got ("000" when TLS or the connection failed).
status() {
  local url=$1; shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$url"
}
expect_status() {
  local what=$1 want=$2 url=$3; shift 3
  local got
  got=$(status "$url" "$@")
  if [ "$got" = "$want" ]; then pass "$what ($got)"; else fail "$what: want $want, got $got"; fi
}

# --- 1. TLS + basic auth ---------------------------------------------------------------------
# Relative paths: resolved against the web config's directory, as in exporter-toolkit.
cat > "$TMP/web_basic.yml" <<EOF
tls_server_config:
  cert_file: server.crt
  key_file: server.key
http_server_config:
  http2: true
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: $PROMETHEUS_HASH
  alice: '$ALICE_HASH'
EOF
start basic "$TMP/web_basic.yml"
BASIC=$ADDRESS
URL=https://$BASIC/metrics
CA=(--cacert "$TMP/ca.crt")
expect_status "https + right password (\$2y\$ hash)" 200 "$URL" "${CA[@]}" -u "prometheus:correct horse"
expect_status "https + right password (\$2b\$ hash)" 200 "$URL" "${CA[@]}" -u "alice:battery staple"
expect_status "https + wrong password" 401 "$URL" "${CA[@]}" -u "prometheus:wrong horse"
expect_status "https + unknown user" 401 "$URL" "${CA[@]}" -u "mallory:correct horse"
expect_status "https without credentials" 401 "$URL" "${CA[@]}"
expect_status "every path needs credentials (/-/healthy)" 401 "https://$BASIC/-/healthy" "${CA[@]}"
expect_status "certificate from another CA is refused by the client" 000 "$URL" \
  --cacert "$TMP/stranger_ca.crt" -u "prometheus:correct horse"
expect_status "plain HTTP on the TLS port is not served" 000 "http://$BASIC/metrics" -u "prometheus:correct horse"

headers=$(curl -s -D - -o /dev/null --max-time 10 "${CA[@]}" "$URL" 2>&1 | tr -d '\r')
check "401 carries WWW-Authenticate: Basic" grep -qi '^WWW-Authenticate: Basic' <<<"$headers"
check "configured X-Frame-Options on every answer (401 too)" grep -qx 'X-Frame-Options: deny' <<<"$headers"
check "configured Strict-Transport-Security" grep -qx 'Strict-Transport-Security: max-age=31536000' <<<"$headers"
body=$(curl -s --max-time 10 "${CA[@]}" -u "prometheus:correct horse" "$URL")
check "metrics body served over TLS" grep -q '^pidfd_exporter_build_info\|^# TYPE pidfd_' <<<"$body"
check "http2: true is accepted with a warning" grep -q 'http2: ignored' "$TMP/basic.log"

# Many handshakes, sequential and concurrent: the crash this guards against came on the first.
ok=0
for _ in $(seq 20); do [ "$(status "$URL" "${CA[@]}" -u "alice:battery staple")" = 200 ] && ok=$((ok + 1)); done
check "20 sequential https scrapes all 200 (got $ok)" test "$ok" -eq 20
for i in $(seq 16); do status "$URL" "${CA[@]}" -u "alice:battery staple" > "$TMP/concurrent.$i" & done
wait_concurrent() { local i; for i in $(seq 16); do [ "$(cat "$TMP/concurrent.$i" 2>/dev/null)" = 200 ] || return 1; done; }
wait_for 30 "16 concurrent https scrapes all 200" wait_concurrent
check "exporter still running after the TLS traffic" kill -0 "$basic_PID"

# --- 2. client certificates and TLS 1.3 only ---------------------------------------------------
cat > "$TMP/web_mtls.yml" <<EOF
tls_server_config:
  cert_file: $TMP/server.crt
  key_file: $TMP/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: $TMP/client_ca.crt
  min_version: TLS13
EOF
start mtls "$TMP/web_mtls.yml"
MTLS=$ADDRESS
expect_status "client certificate from client_ca_file accepted" 200 "https://$MTLS/metrics" "${CA[@]}" \
  --cert "$TMP/client.crt" --key "$TMP/client.key"
expect_status "no client certificate refused" 000 "https://$MTLS/metrics" "${CA[@]}"
expect_status "client certificate from another CA refused" 000 "https://$MTLS/metrics" "${CA[@]}" \
  --cert "$TMP/stranger.crt" --key "$TMP/stranger.key"
expect_status "TLS 1.2 refused with min_version TLS13" 000 "https://$MTLS/metrics" "${CA[@]}" \
  --cert "$TMP/client.crt" --key "$TMP/client.key" --tls-max 1.2

# --- 3. a real Prometheus scrapes both over https ---------------------------------------------
cat > "$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: tls_basic_auth
    scheme: https
    tls_config:
      ca_file: $TMP/ca.crt
    basic_auth:
      username: prometheus
      password: correct horse
    static_configs:
      - targets: ["$BASIC"]
  - job_name: tls_client_cert
    scheme: https
    tls_config:
      ca_file: $TMP/ca.crt
      cert_file: $TMP/client.crt
      key_file: $TMP/client.key
    static_configs:
      - targets: ["$MTLS"]
  - job_name: tls_wrong_password
    scheme: https
    tls_config:
      ca_file: $TMP/ca.crt
    basic_auth:
      username: prometheus
      password: wrong horse
    static_configs:
      - targets: ["$BASIC"]
EOF
start_prometheus "$PROMETHEUS" "$TMP/prometheus.yml" "$TMP" 30 || finish
PIDS+=("$PROM_PID")

# target_health JOB WANT: true when /api/v1/targets shows JOB's target with health WANT.
target_health() {
  curl -sf "http://$PROM/api/v1/targets" | python3 -c '
import json, sys
job, want = sys.argv[1], sys.argv[2]
targets = [t for t in json.load(sys.stdin)["data"]["activeTargets"] if t["labels"]["job"] == job]
sys.exit(0 if targets and all(t["health"] == want for t in targets) else 1)' "$1" "$2"
}
wait_for 60 "prometheus scrapes over https with basic auth (health up)" target_health tls_basic_auth up
wait_for 60 "prometheus scrapes over https with a client certificate (health up)" target_health tls_client_cert up
wait_for 60 "prometheus with a wrong password is refused (health down)" target_health tls_wrong_password down
last_error=$(curl -sf "http://$PROM/api/v1/targets" | python3 -c '
import json, sys
print([t["lastError"] for t in json.load(sys.stdin)["data"]["activeTargets"] if t["labels"]["job"] == "tls_wrong_password"])')
check "wrong password shows as 401 in Prometheus ($last_error)" grep -q 401 <<<"$last_error"
samples=$(curl -sf -G "http://$PROM/api/v1/query" --data-urlencode 'query=count({job="tls_basic_auth",__name__=~"pidfd_.*"})' |
  python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
check "exporter series stored from the https scrapes ($samples)" test "${samples:-0}" -gt 0

# --- 4b. stalled and flooding TLS clients ------------------------------------------------------
cat > "$TMP/web_plain_tls.yml" <<EOF
tls_server_config:
  cert_file: $TMP/server.crt
  key_file: $TMP/server.key
EOF
start abuse "$TMP/web_plain_tls.yml" --web.request-head-timeout=4s
for case_name in stalled connection_flood; do
  output=$(timeout 300 python3 "$SRC/tests/e2e/helpers/http_abuse.py" "$ADDRESS" "$case_name" \
    pid="$abuse_PID" head_timeout=4 tls_ca="$TMP/ca.crt" 2>&1)
  while IFS= read -r line; do
    case "$line" in
      "ok   - "*) pass "${line#ok   - }" ;;
      "FAIL - "*) fail "${line#FAIL - }" ;;
      *) echo "$line" ;;
    esac
  done <<<"$output"
done
check "exporter still running after the TLS abuse" kill -0 "$abuse_PID"

# --- 4c. certificate rotation under load --------------------------------------------------------
cert rotated ca "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" "/CN=rotated" ||
  fail "openssl could not make the rotated certificate"
cp "$TMP/server.crt" "$TMP/live.crt"
cp "$TMP/server.key" "$TMP/live.key"
cat > "$TMP/web_rotate.yml" <<EOF
tls_server_config:
  cert_file: $TMP/live.crt
  key_file: $TMP/live.key
EOF
start rotate "$TMP/web_rotate.yml"
ROTATE=$ADDRESS
# install CERT [KEY]: replaces the live certificate (and key) by renames, as cert-manager
# and certbot do, the certificate first.
install() {
  cp "$1" "$TMP/live.crt.new" && mv "$TMP/live.crt.new" "$TMP/live.crt"
  if [ -n "${2:-}" ]; then cp "$2" "$TMP/live.key.new" && mv "$TMP/live.key.new" "$TMP/live.key"; fi
}
served_subject() {
  openssl s_client -connect "$ROTATE" -servername 127.0.0.1 </dev/null 2>/dev/null | openssl x509 -noout -subject
}
served_is() { served_subject | grep -q "CN *= *$1\$"; }
rotation_metric() {
  curl -s --max-time 10 "${CA[@]}" "https://$ROTATE/metrics" | awk -v name="$1" '$1 == name { print $2 }'
}
metric_is() { [ "$(rotation_metric "$1")" = "$2" ]; }
check "before rotation: the first certificate is served" served_is 127.0.0.1
# A scraper in the background for the whole rotation: one scrape every ~20 ms, each result kept.
: > "$TMP/rotation_scrapes"
(
  end=$((SECONDS + 120))
  while [ ! -e "$TMP/rotation_done" ] && [ $SECONDS -lt $end ]; do
    echo "$(status "https://$ROTATE/metrics" "${CA[@]}")" >> "$TMP/rotation_scrapes"
    sleep 0.02
  done
) &
SCRAPER_PID=$!
PIDS+=("$SCRAPER_PID")
install "$TMP/rotated.crt" "$TMP/rotated.key"
wait_for 20 "rotation: new handshakes get the new certificate" served_is rotated
wait_for 10 "rotation: counted in pidfd_exporter_tls_certificate_reloads_total" \
  metric_is pidfd_exporter_tls_certificate_reloads_total 1
printf 'not a certificate\n' > "$TMP/broken.crt"
install "$TMP/broken.crt"
wait_for 20 "broken certificate file: counted as a failed reload" \
  metric_is pidfd_exporter_tls_certificate_reload_failures_total 1
check "broken certificate file: the previous certificate is still served" served_is rotated
check "broken certificate file: logged" grep -q 'TLS certificate reload failed' "$TMP/rotate.log"
check "broken certificate file: pidfd_exporter_tls_certificate_last_reload_successful 0" \
  metric_is pidfd_exporter_tls_certificate_last_reload_successful 0
install "$TMP/server.crt" "$TMP/server.key"
wait_for 20 "rotation back: the first certificate is served again" served_is 127.0.0.1
check "rotation back: pidfd_exporter_tls_certificate_last_reload_successful 1" \
  metric_is pidfd_exporter_tls_certificate_last_reload_successful 1
touch "$TMP/rotation_done"
wait "$SCRAPER_PID"
total=$(grep -c . "$TMP/rotation_scrapes")
failed=$(grep -vc '^200$' "$TMP/rotation_scrapes")
check "rotation: $total scrapes during the rotations (at least 20), $failed failed" test "$total" -ge 20 -a "$failed" -eq 0
check "rotation: 2 reloads and 1 failure counted at the end" \
  test "$(rotation_metric pidfd_exporter_tls_certificate_reloads_total)/$(rotation_metric pidfd_exporter_tls_certificate_reload_failures_total)" = 2/1

# --- 4. both servers stop cleanly -------------------------------------------------------------
for name in basic mtls abuse rotate; do
  pid_var=${name}_PID
  kill -TERM "${!pid_var}"
  rc=
  for _ in $(seq 100); do kill -0 "${!pid_var}" 2>/dev/null || { wait "${!pid_var}"; rc=$?; break; }; sleep 0.1; done
  check "$name: exits 0 on SIGTERM (rc=${rc:-still running})" test "${rc:-x}" = 0
done

# --- 5. bad web configs stop start-up with positions ------------------------------------------
# refused NAME EXPECTED-TEXT YAML: the exporter exits 1 and logs EXPECTED-TEXT.
refused() {
  local name=$1 expected=$2 yaml=$3
  printf '%s\n' "$yaml" > "$TMP/$name.yml"
  local out rc
  out=$(timeout 20 "$EXPORTER" --config.file="$TMP/exporter.yml" --web.listen-address=127.0.0.1:0 \
    --web.config.file="$TMP/$name.yml" 2>&1)
  rc=$?
  if [ "$rc" = 1 ] && grep -qF -- "$expected" <<<"$out"; then
    pass "refused: $name"
  else
    fail "refused: $name: rc=$rc, want 1 and \"$expected\" in:"; printf '%s\n' "$out" | tail -5 | sed 's/^/     /'
  fi
}
refused unknown_key "unknown_key.yml:4:3: tls_server_config: unknown key" \
"tls_server_config:
  cert_file: $TMP/server.crt
  key_file: $TMP/server.key
  ciphers: [x]"
refused missing_cert "missing_cert.yml:2:14: tls_server_config.cert_file: cannot read" \
"tls_server_config:
  cert_file: $TMP/nonexistent.crt
  key_file: $TMP/server.key"
refused bad_hash "bad_hash.yml:2:10: basic_auth_users.alice: not a bcrypt hash" \
"basic_auth_users:
  alice: plaintext"
refused cipher_suites "cipher_suites.yml:4:3: tls_server_config: " \
"tls_server_config:
  cert_file: $TMP/server.crt
  key_file: $TMP/server.key
  cipher_suites: [TLS_AES_128_GCM_SHA256]"
refused key_mismatch "tls: key_file $TMP/client.key does not match cert_file" \
"tls_server_config:
  cert_file: $TMP/server.crt
  key_file: $TMP/client.key"

finish
