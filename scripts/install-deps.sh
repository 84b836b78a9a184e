#!/usr/bin/env bash
# Installs the Debian bookworm packages of the named groups, and only those:
#
#   scripts/install-deps.sh build          compile and run the exporter (`make run`)
#   scripts/install-deps.sh build test     + everything the tests use (`make test`, CI)
#   scripts/install-deps.sh deb            + what `make deb` (CPack's DEB generator) calls
#   scripts/install-deps.sh unit           + GoogleTest for the unit tests (the Dockerfile)
#   scripts/install-deps.sh fuzz           + clang's libFuzzer (scripts/fuzz.sh)
#   scripts/install-deps.sh bench          + the benchmarks' comparison and profiling tools
#   scripts/install-deps.sh container      buildah and friends (scripts/container-check.sh)
#   scripts/install-deps.sh --list GROUP...     print the packages, install nothing
#   scripts/install-deps.sh --dry-run GROUP...  print the packages that are missing
#
# Groups only add up: `test`, `deb`, `unit`, `fuzz` and `bench` imply `build`. Idempotent: when
# every package is present it prints nothing and touches no package list.
set -euo pipefail

usage() {
  echo "usage: install-deps.sh [--list|--dry-run] build|test|deb|unit|fuzz|bench|container..." >&2
  exit 2
}

# One function a group; each prints its packages, one a line.
group_build() {
  # toolchain
  echo g++ cmake ninja-build make pkg-config
  # libraries the exporter links
  echo prometheus-cpp-dev libcivetweb-dev civetweb libyaml-cpp-dev libre2-dev libcli11-dev
  echo zlib1g-dev libcrypt-dev
  # TLS: OpenSSL 3 headers for the CivetWeb shim (exporter/tls_shim/)
  echo libssl-dev
  # the eBPF program of exporter/final_runtime_probe.h: clang compiles it for the bpf target,
  # libbpf loads it (cmake/bpf_program.cmake)
  echo clang libbpf-dev
}
group_unit() {
  group_build
  echo libgtest-dev libgmock-dev
}
group_test() {
  group_unit
  # the benchmark binaries are built (not run) by `make test`
  echo libbenchmark-dev
  # end-to-end: the real Prometheus server and promtool, an HTTP client, test certificates
  echo prometheus curl ca-certificates openssl python3
  # rules/dashboard/Prometheus e2e tests read YAML (tests/e2e/lib.sh find_python)
  echo python3-yaml
  # packaging test: systemd-analyze verify/security on the unit; it builds the .deb
  echo systemd
  group_deb
  # fault-injection tests (prlimit)
  echo util-linux
  # status page e2e tests render / in headless Chromium (tests/e2e/status_page_test.sh)
  echo chromium
  # the old-kernel test boots Debian 12's kernel in QEMU with a busybox initramfs
  # (tests/e2e/old_kernel_vm_test.sh; the kernel package itself: scripts/fetch-vm-kernel.sh)
  echo qemu-system-x86 busybox-static cpio
}
group_deb() {
  group_build
  # CPack's DEB generator: dpkg-shlibdeps computes Depends, file(1) finds the ELF files
  echo dpkg-dev file
}
group_fuzz() {
  group_build
  echo clang libclang-rt-14-dev
}
group_bench() {
  group_build
  echo libbenchmark-dev          # bench/micro_bench.cc
  echo prometheus-process-exporter  # the comparison anchor of scenario 1
  echo prometheus-node-exporter     # the comparison anchor of bench/stalled.sh (Go net/http)
  echo gnuplot-nox               # PNG plots under bench/results/
  echo linux-perf valgrind       # profiling (perf record, callgrind)
  echo curl python3 gcc
}
group_container() {
  # buildah builds the Dockerfile on a debootstrap'ed base; promtool checks the scrape
  echo buildah debootstrap jq prometheus curl python3
}

mode=install
case "${1:-}" in
  --list) mode=list; shift ;;
  --dry-run) mode=dry-run; shift ;;
esac
[ $# -gt 0 ] || usage
packages=()
for group in "$@"; do
  case "$group" in
    build | test | deb | unit | fuzz | bench | container) mapfile -t -O ${#packages[@]} packages < <("group_$group" | tr ' ' '\n' | grep .) ;;
    *) usage ;;
  esac
done
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
if [ "$mode" = list ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for package in "${packages[@]}"; do
  # dpkg-query prints "install ok installed" only for a fully installed package.
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$package")
done
if [ "$mode" = dry-run ]; then
  echo "install-deps ($*): ${#packages[@]} packages, missing: ${missing[*]:-none}"
  exit 0
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -E "$0" "$@"
  fi
  echo "install-deps: missing packages (${missing[*]}) and not root; install them with apt-get" >&2
  exit 1
fi

echo "install-deps ($*): installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine are empty; refresh them once.
apt-get update -qq
# policy-rc.d keeps the prometheus and prometheus-process-exporter packages from starting
# their own services: the tests and benchmarks start their own instances on loopback.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
rc=0
# Another apt run (unattended-upgrades, a parallel job) may hold the dpkg lock: wait for it.
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null || rc=$?
[ $created_policy -eq 1 ] && rm -f "$policy"
exit $rc
