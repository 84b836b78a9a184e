#!/usr/bin/env bash
# Installs exactly the Debian bookworm packages that building, running and testing
# pidfd_exporter need. Idempotent: when every package is present it prints nothing
# and touches no package list.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build make pkg-config
  # libraries the exporter links
  prometheus-cpp-dev libcivetweb-dev civetweb libyaml-cpp-dev libre2-dev libcli11-dev
  zlib1g-dev libcrypt-dev
  # TLS: OpenSSL 3 headers for the CivetWeb shim (exporter/tls_shim/); the CLI makes test certificates
  libssl-dev openssl
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # end-to-end: the real Prometheus server and promtool, an HTTP client
  prometheus curl ca-certificates python3
  # rules/dashboard/Prometheus e2e tests read YAML (tests/e2e/lib.sh find_python)
  python3-yaml
  # packaging test: systemd-analyze verify/security on deploy/pidfd_exporter.service
  systemd
  # fuzzers (scripts/fuzz.sh: clang's libFuzzer) and fault-injection tests (prlimit)
  clang libclang-rt-14-dev util-linux
  # status page e2e tests render / in headless Chromium (tests/e2e/status_page_test.sh)
  chromium
  # the old-kernel test boots Debian 12's kernel in QEMU with a busybox initramfs
  # (tests/e2e/old_kernel_vm_test.sh; the kernel package itself: scripts/fetch-vm-kernel.sh)
  qemu-system-x86 busybox-static cpio
)

missing=()
for package in "${packages[@]}"; do
  # dpkg-query prints "install ok installed" only for a fully installed package.
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -E "$0" "$@"
  fi
  echo "install-deps: missing packages (${missing[*]}) and not root; install them with apt-get" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine are empty; refresh them once.
apt-get update -qq
# policy-rc.d keeps the prometheus package from starting its own service: the tests
# start their own server on loopback.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ $created_policy -eq 1 ] && rm -f "$policy"
exit 0
