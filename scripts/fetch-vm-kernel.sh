#!/usr/bin/env bash
# Downloads Debian 12's own kernel (the image the linux-image-cloud-amd64 metapackage names:
# 6.1.x, serial console, CONFIG_PROC_EVENTS=y, CONFIG_TASKSTATS=y) with apt-get download and
# unpacks it under DIR (default build/vm-kernel), once: later runs reuse it. Prints the path
# of the vmlinuz. Used by tests/e2e/old_kernel_vm_test.sh (tests/vm/README.md).
#   scripts/fetch-vm-kernel.sh [DIR]
set -euo pipefail
dir=${1:-build/vm-kernel}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

image_package() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1; }
package=$(image_package)
if [ -z "$package" ]; then
  # A fresh machine's package lists may be empty.
  apt-get update -qq >&2
  package=$(image_package)
fi
if [ -z "$package" ]; then
  echo "fetch-vm-kernel: apt-cache knows no linux-image-cloud-amd64 (not Debian bookworm?)" >&2
  exit 1
fi
unpacked=$dir/$package
if [ ! -d "$unpacked/boot" ]; then
  # apt-get download writes to the current directory; as root it warns that _apt cannot
  # write there (harmless).
  (cd "$dir" && apt-get download -qq "$package" >&2 2>/dev/null) || {
    echo "fetch-vm-kernel: apt-get download $package failed" >&2
    exit 1
  }
  rm -rf "$unpacked.tmp"
  dpkg-deb -x "$dir/$package"_*.deb "$unpacked.tmp"
  mv "$unpacked.tmp" "$unpacked"
fi
ls "$unpacked"/boot/vmlinuz-* | head -1
