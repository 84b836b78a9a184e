#!/usr/bin/env bash
# Packs the old-kernel test's initramfs (tests/vm/README.md): busybox (static), the
# exporter with the libraries ldd names at the same paths, the static workload and its
# links (one per process set), the test's config and scripts, and tests/vm/init as /init.
#   build_initramfs.sh EXPORTER WORKLOAD OUTPUT.cpio.gz
set -euo pipefail
exporter=$1 workload=$2 output=$3
here=$(cd "$(dirname "$0")" && pwd)
busybox=/bin/busybox
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  echo "a static /bin/busybox is needed (Debian's busybox-static; scripts/install-deps.sh installs it)" >&2
  exit 1
fi
root=$(mktemp -d "${TMPDIR:-/tmp}/pidfd_vm_root.XXXXXX")
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,vm/bin,etc}
cp "$busybox" "$root/bin/busybox"
cp "$exporter" "$root/vm/pidfd_exporter"
# The libraries the dynamic loader will look for, at the paths ldd resolved them to.
ldd "$exporter" | grep -oE '/[^ ]+' | while read -r library; do
  mkdir -p "$root$(dirname "$library")"
  cp -L "$library" "$root$library"
done
cp "$workload" "$root/vm/bin/workload"
for set_name in hold0 hold20 hold300 reuse_a reuse_b burst linger oom_hog oom_sib; do
  ln -s workload "$root/vm/bin/$set_name"
done
cp "$here/run_workload.sh" "$here/config.yml" "$root/vm/"
cp "$here/init" "$root/init"
chmod +x "$root/init" "$root/vm/run_workload.sh"
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$output"
