#!/usr/bin/env bash
# Installs the Debian bookworm packages that only the benchmarks (bench/) need, on top of
# scripts/install-deps.sh (which CI runs for `make test`). Idempotent: when every package
# is present it prints nothing and touches no package list.
set -euo pipefail

packages=(
  prometheus-process-exporter  # the comparison anchor of scenario 1
  prometheus-node-exporter     # the comparison anchor of bench/stalled.sh (Go net/http)
  gnuplot-nox                  # PNG plots under bench/results/
  linux-perf valgrind          # profiling (perf record, callgrind)
  curl python3 gcc
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -E "$0" "$@"
  fi
  echo "install-bench-deps: missing packages (${missing[*]}) and not root; install them with apt-get" >&2
  exit 1
fi

echo "install-bench-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps prometheus-process-exporter and -node-exporter from starting their services: the
# benchmarks start their own instance on loopback.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ $created_policy -eq 1 ] && rm -f "$policy"
exit 0
