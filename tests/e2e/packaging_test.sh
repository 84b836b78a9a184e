#!/usr/bin/env bash
# Packaging checks: what `cmake --install` puts in place, the systemd unit, the Dockerfile
# (without building it: scripts/container-check.sh does that) and the Kubernetes manifests.
#
#   bash tests/e2e/packaging_test.sh BUILD/pidfd_exporter SOURCE_DIR
#
# 1. cmake --install into a DESTDIR: binary, config, /etc/default file, unit, dashboards and
#    rules; the installed binary runs (--version, --config.check); a reinstall keeps an edited
#    config; another prefix moves ExecStart along.
# 2. deploy/pidfd_exporter.service: `systemd-analyze verify` prints nothing (it exits 0 on
#    unknown keys, so any output fails), `systemd-analyze security --offline=yes` exposure
#    <= 4.5, and the properties the exporter relies on.
# 3. Dockerfile: the runtime stage installs a package for every library the binary links
#    (ldd), dockerfile-utils lint, and its HEALTHCHECK command against a running exporter.
# 4. The Debian package (cmake/package.cmake, `make deb`), as root: cpack builds it from this
#    build directory; control fields, conffiles, Depends (ldd), maintainer scripts; then
#    `apt-get install ./pidfd_exporter_*.deb` on this machine: files, --version, the unit
#    verified and enabled, an edited conffile kept by a reinstall; remove (conffiles stay,
#    unit masked) and purge (nothing named pidfd_exporter left). An EXIT trap purges the
#    package whatever happens. PIDFD_EXPORTER_DEB=path tests a prebuilt package instead.
# 5. deploy/kubernetes/*.yaml: schemas (npm kubernetes-models, @kubernetes-models/
#    prometheus-operator, installed by `npm ci` into deploy/tools/node_modules), key fields,
#    the ConfigMap's config passes --config.check, the PrometheusRule is in sync with
#    dashboards/rules/pidfd_exporter.rules.yml and passes `promtool check rules`.
# Prints "packaging: N passed, M failed, K skipped"; exit 1 on any failure.
set -uo pipefail

BIN=$(readlink -f "${1:?usage: packaging_test.sh BINARY SOURCE_DIR}")
SRC=$(readlink -f "${2:?usage: packaging_test.sh BINARY SOURCE_DIR}")
TMP=$(mktemp -d /tmp/pidfd_exporter-packaging.XXXXXX)
EXPORTER_PID=""
PACKAGE_INSTALLED_HERE=0
APT=(apt-get -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300)
cleanup() {
  [ -n "$EXPORTER_PID" ] && kill "$EXPORTER_PID" 2>/dev/null && wait "$EXPORTER_PID" 2>/dev/null
  # Never leave the package of a failed run installed on the machine.
  if [ "$PACKAGE_INSTALLED_HERE" = 1 ] && dpkg-query -W pidfd_exporter >/dev/null 2>&1; then
    echo "cleanup: purging the pidfd_exporter package"
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge pidfd_exporter >/dev/null 2>&1 ||
      dpkg --purge pidfd_exporter >/dev/null 2>&1
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
# A signal (ctest interrupted) still runs cleanup, which purges the package.
trap 'exit 130' INT TERM

passed=0
failed=0
skipped=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
skip() { skipped=$((skipped + 1)); echo "SKIP: $*"; }
check() {  # check DESCRIPTION COMMAND...: pass when the command succeeds
  local description=$1
  shift
  if "$@"; then pass "$description"; else fail "$description"; fi
}

# The build directory: the nearest parent of the binary with a CMakeCache.txt.
BUILD=$(dirname "$BIN")
while [ "$BUILD" != / ] && [ ! -f "$BUILD/CMakeCache.txt" ]; do BUILD=$(dirname "$BUILD"); done
[ -f "$BUILD/CMakeCache.txt" ] || { echo "no CMakeCache.txt above $BIN"; exit 1; }

########################## 1. cmake --install ##########################
echo "--- cmake --install (at ${SECONDS} s)"
ROOT="$TMP/root"
if DESTDIR="$ROOT" cmake --install "$BUILD" --prefix /usr > "$TMP/install.log" 2>&1; then
  pass "cmake --install (DESTDIR, prefix /usr)"
else
  cat "$TMP/install.log"
  fail "cmake --install (DESTDIR, prefix /usr)"
fi
installed_files_ok() {
  local ok=0 f
  for f in usr/bin/pidfd_exporter etc/pidfd_exporter/config.yml etc/default/pidfd_exporter \
           usr/lib/systemd/system/pidfd_exporter.service usr/share/pidfd_exporter/config.default.yml; do
    [ -s "$ROOT/$f" ] || { echo "  missing: /$f"; ok=1; }
  done
  [ -x "$ROOT/usr/bin/pidfd_exporter" ] || { echo "  not executable: /usr/bin/pidfd_exporter"; ok=1; }
  cmp -s "$SRC/config/pidfd_exporter.yml" "$ROOT/etc/pidfd_exporter/config.yml" ||
    { echo "  /etc/pidfd_exporter/config.yml differs from config/pidfd_exporter.yml"; ok=1; }
  grep -qx 'ExecStart=/usr/bin/pidfd_exporter $PIDFD_EXPORTER_OPTS' "$ROOT/usr/lib/systemd/system/pidfd_exporter.service" ||
    { echo "  installed unit: unexpected ExecStart"; ok=1; }
  return $ok
}
check "installed: binary, /etc/pidfd_exporter/config.yml, /etc/default, unit, config.default.yml" installed_files_ok
dashboards_installed() {
  local ok=0 f n=0
  while IFS= read -r f; do
    n=$((n + 1))
    [ -f "$ROOT/usr/share/pidfd_exporter/$f" ] || { echo "  missing: /usr/share/pidfd_exporter/$f"; ok=1; }
  done < <(cd "$SRC/dashboards" && find . -type f \( -name '*.json' -o -name '*.yml' \) \
             -not -path '*/tests/*' -not -path '*/tools/*' -not -name '*.test.yml' | sed 's#^\./##')
  [ -z "$(find "$ROOT/usr/share/pidfd_exporter" -path '*/tests/*' -o -name '*.py' 2>/dev/null)" ] ||
    { echo "  tests or tools were installed"; ok=1; }
  echo "  $n dashboard/rule files"
  return $ok
}
if [ -f "$SRC/dashboards/rules/pidfd_exporter.rules.yml" ]; then
  check "installed: dashboards and rules under /usr/share/pidfd_exporter (no tests, no tools)" dashboards_installed
else
  skip "dashboards/rules/pidfd_exporter.rules.yml does not exist yet"
fi
version_ok() {
  local out revision
  out=$("$ROOT/usr/bin/pidfd_exporter" --version 2>&1) || { echo "$out"; return 1; }
  echo "  $(echo "$out" | head -1)"
  git -C "$SRC" rev-parse HEAD >/dev/null 2>&1 || return 0  # not a git checkout: nothing to compare
  # The revision is taken at configure time, so it may be older than HEAD; it must be a commit.
  revision=$(echo "$out" | sed -n 's/.*revision: \([0-9a-f]\{7,\}\).*/\1/p' | head -1)
  [ -n "$revision" ] && git -C "$SRC" cat-file -e "$revision^{commit}" 2>/dev/null ||
    { echo "  no git revision of this repository in --version"; return 1; }
}
check "installed binary: --version shows the git revision" version_ok
check "installed binary: --config.check on the installed config" \
  "$ROOT/usr/bin/pidfd_exporter" --config.check --config.file="$ROOT/etc/pidfd_exporter/config.yml"
reinstall_keeps_config() {
  echo "# edited by the admin" >> "$ROOT/etc/pidfd_exporter/config.yml"
  echo 'PIDFD_EXPORTER_OPTS="--log.level=debug"' >> "$ROOT/etc/default/pidfd_exporter"
  DESTDIR="$ROOT" cmake --install "$BUILD" --prefix /usr > "$TMP/reinstall.log" 2>&1 || { cat "$TMP/reinstall.log"; return 1; }
  tail -1 "$ROOT/etc/pidfd_exporter/config.yml" | grep -q 'edited by the admin' &&
    grep -q 'log.level=debug' "$ROOT/etc/default/pidfd_exporter" &&
    grep -q 'Keeping existing' "$TMP/reinstall.log"
}
check "reinstall keeps an edited /etc/pidfd_exporter/config.yml and /etc/default file" reinstall_keeps_config
other_prefix() {
  DESTDIR="$TMP/root-local" cmake --install "$BUILD" --prefix /usr/local > "$TMP/install-local.log" 2>&1 ||
    { cat "$TMP/install-local.log"; return 1; }
  [ -x "$TMP/root-local/usr/local/bin/pidfd_exporter" ] &&
    [ -f "$TMP/root-local/etc/pidfd_exporter/config.yml" ] &&
    grep -qx 'ExecStart=/usr/local/bin/pidfd_exporter $PIDFD_EXPORTER_OPTS' \
      "$TMP/root-local/usr/local/lib/systemd/system/pidfd_exporter.service"
}
check "prefix /usr/local: binary in /usr/local/bin, unit follows it, config still in /etc" other_prefix

########################## 2. systemd unit ##########################
echo "--- systemd unit (at ${SECONDS} s)"
UNIT_SRC="$SRC/deploy/pidfd_exporter.service"
mkdir -p "$TMP/unit"
UNIT="$TMP/unit/pidfd_exporter.service"
# verify needs ExecStart's binary to exist: the binary under test.
sed "s#^ExecStart=/usr/bin/pidfd_exporter#ExecStart=$BIN#" "$UNIT_SRC" > "$UNIT"
if ! command -v systemd-analyze >/dev/null; then
  fail "systemd-analyze is missing (package systemd, scripts/install-deps.sh test)"
else
  verify_out=$(cd "$TMP/unit" && systemd-analyze verify "$UNIT" 2>&1)
  verify_rc=$?
  if [ $verify_rc -eq 0 ] && [ -z "$verify_out" ]; then
    pass "systemd-analyze verify: no output"
  else
    echo "$verify_out"
    fail "systemd-analyze verify (exit $verify_rc, output above)"
  fi
  security_out=$(systemd-analyze security --offline=yes "$UNIT" 2>&1)
  exposure=$(echo "$security_out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  if [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN { exit !(e <= 4.5) }'; then
    pass "systemd-analyze security: exposure $exposure <= 4.5"
  else
    echo "$security_out" | grep '✗' | head -30
    fail "systemd-analyze security: exposure '${exposure:-?}' (must be <= 4.5)"
  fi
fi
unit_properties() {
  local ok=0 line
  for line in 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
              'AmbientCapabilities=CAP_SYS_PTRACE' 'CapabilityBoundingSet=CAP_SYS_PTRACE' \
              'ExecReload=/bin/kill -HUP $MAINPID' 'EnvironmentFile=-/etc/default/pidfd_exporter'; do
    grep -qx "$line" "$UNIT_SRC" || { echo "  missing: $line"; ok=1; }
  done
  grep -q '^RestrictAddressFamilies=.*AF_NETLINK' "$UNIT_SRC" || { echo "  AF_NETLINK not allowed (proc connector)"; ok=1; }
  grep -Eq '^LimitNOFILE=[0-9]{6,}$' "$UNIT_SRC" || { echo "  LimitNOFILE below 100000 (one pidfd per process)"; ok=1; }
  ! grep -Eq '^(ProtectProc=(invisible|noaccess|ptraceable)|ProcSubset=pid|PrivateNetwork=yes|PrivateUsers=yes|PrivatePIDs=yes)' "$UNIT_SRC" ||
    { echo "  a setting that hides host processes or the host network"; ok=1; }
  return $ok
}
check "unit: capabilities, hardening, AF_NETLINK, LimitNOFILE, reload by SIGHUP, nothing hides /proc" unit_properties

########################## 3. Dockerfile ##########################
echo "--- Dockerfile (at ${SECONDS} s)"
DOCKERFILE="$SRC/Dockerfile"
# packages_cover_ldd BINARY PACKAGES: every shared library BINARY names itself (its NEEDED
# entries, resolved by ldd), other than the project's own (TLS shims) and those of every
# Debian system, is owned by a package named in PACKAGES (a word in that text). Libraries
# those load in turn (libbpf's libelf) come with their own packages' Depends.
packages_cover_ldd() {
  local binary=$1 packages=$2 lib path package needed="" ok=0 named
  named=" $(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ') "
  while read -r lib path; do
    case "$named" in *" $lib "*) ;; *) continue ;; esac
    case "$path" in "$BUILD"/* | */pidfd_exporter/lib*.so) continue ;; esac  # the TLS shims
    package=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)
    [ -n "$package" ] || package=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1)
    [ -n "$package" ] || { echo "  no Debian package owns $path ($lib)"; ok=1; continue; }
    case " libc6 libgcc-s1 libstdc++6 " in *" $package "*) continue ;; esac  # in every Debian image
    needed="$needed $package"
    echo "$packages" | grep -qw -- "$package" || { echo "  $lib needs $package, not in: $packages"; ok=1; }
  done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}')
  echo "  packages needed:$(echo "$needed" | tr ' ' '\n' | sort -u | tr '\n' ' ')"
  return $ok
}
# The runtime stage: from the last FROM on, continuation lines joined.
runtime_stage=$(awk '/^FROM /{s=""} {s=s $0 "\n"} END{printf "%s", s}' "$DOCKERFILE" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
if echo "$runtime_stage" | grep 'apt-get install' | grep -q 'pidfd_exporter_.*\.deb'; then
  # The image installs the package: its Depends (checked against ldd in section 4) bring
  # the libraries. The package must come from the build stage, not from outside.
  dockerfile_installs_package() {
    grep -Eq '^COPY --from=build .*pidfd_exporter_\*?.*\.deb' "$DOCKERFILE" ||
      { echo "  the .deb is not copied from the build stage"; return 1; }
    grep -q 'cpack' "$DOCKERFILE" || { echo "  the build stage does not run cpack"; return 1; }
  }
  check "Dockerfile runtime stage installs the build stage's .deb with apt-get (Depends bring the libraries)" \
    dockerfile_installs_package
else
  check "Dockerfile runtime stage installs every library the binary links (ldd)" \
    packages_cover_ldd "$BIN" "$(echo "$runtime_stage" | grep 'apt-get install')"
fi
dockerfile_contract() {
  local ok=0
  grep -q '^EXPOSE 9721$' "$DOCKERFILE" || { echo "  no EXPOSE 9721"; ok=1; }
  grep -Eq '^USER [1-9][0-9]*' "$DOCKERFILE" || { echo "  default USER is not a non-root uid"; ok=1; }
  grep -q '^HEALTHCHECK ' "$DOCKERFILE" || { echo "  no HEALTHCHECK"; ok=1; }
  [ "$(grep -c '^FROM ' "$DOCKERFILE")" -ge 2 ] || { echo "  not multi-stage"; ok=1; }
  grep -q 'ctest .*-L unit' "$DOCKERFILE" || { echo "  the build stage does not run the unit tests"; ok=1; }
  grep -q 'org.opencontainers.image.revision' "$DOCKERFILE" || { echo "  no OCI revision label"; ok=1; }
  grep -q -- '--config.file=/etc/pidfd_exporter/config.yml' "$DOCKERFILE" || { echo "  CMD does not name /etc/pidfd_exporter/config.yml"; ok=1; }
  grep -qx '.git' "$SRC/.dockerignore" || { echo "  .dockerignore does not exclude .git"; ok=1; }
  return $ok
}
check "Dockerfile: multi-stage, unit tests, EXPOSE 9721, non-root USER, HEALTHCHECK, OCI labels, .dockerignore" dockerfile_contract

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The HEALTHCHECK's command (exec form: the JSON array after CMD), with its port replaced.
healthcheck_cmd() {
  sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$DOCKERFILE" | sed -n 's/^HEALTHCHECK .* CMD \(\[.*\]\)$/\1/p' |
    python3 -c 'import json, sys; print("\0".join(json.loads(sys.stdin.read())), end="")' |
    sed "s#/9721#/$1#g" | tr '\0' '\n'
}
healthcheck_works() {
  local port cmd=() i
  port=$(free_port)
  mapfile -t cmd < <(healthcheck_cmd "$port")
  [ ${#cmd[@]} -gt 0 ] || { echo "  cannot parse the HEALTHCHECK CMD array"; return 1; }
  "$BIN" --web.listen-address="127.0.0.1:$port" --config.file="$SRC/config/pidfd_exporter.yml" > "$TMP/hc.log" 2>&1 &
  EXPORTER_PID=$!
  for i in $(seq 1 50); do
    timeout 5 "${cmd[@]}" 2>/dev/null && break
    sleep 0.2
  done
  timeout 5 "${cmd[@]}" || { echo "  healthy exporter: the command failed"; cat "$TMP/hc.log"; return 1; }
  kill "$EXPORTER_PID"; wait "$EXPORTER_PID" 2>/dev/null; EXPORTER_PID=""
  ! timeout 5 "${cmd[@]}" 2>/dev/null || { echo "  stopped exporter: the command still succeeds"; return 1; }
}
check "HEALTHCHECK command: 0 against a running exporter, non-zero once it stopped" healthcheck_works

########################## 4. Debian package ##########################
echo "--- Debian package (at ${SECONDS} s)"
# Names a file or directory of the package may leave on the machine (none after a purge).
leftovers() {
  find /etc /usr /var/lib/dpkg/info /var/lib/systemd -xdev -name '*pidfd_exporter*' 2>/dev/null | sort
}
deb_section() {
  local deb=${PIDFD_EXPORTER_DEB:-}
  if [ "$(id -u)" -ne 0 ]; then
    if [ "${CI:-}" = true ]; then fail "Debian package: CI runs as root, this test does not"; else skip "Debian package: not root (apt-get install)"; fi
    return
  fi
  if grep -q 'installed\|config-files' <<<"$(dpkg-query -W -f='${Status}' pidfd_exporter 2>/dev/null)"; then
    # An operator's installation on this machine is not ours to replace or purge.
    if [ "${CI:-}" = true ]; then fail "Debian package: pidfd_exporter is already installed"; else skip "Debian package: pidfd_exporter is already installed here"; fi
    return
  fi
  if [ -z "$deb" ]; then
    if ! command -v dpkg-shlibdeps >/dev/null || ! command -v file >/dev/null; then
      fail "dpkg-shlibdeps or file missing (scripts/install-deps.sh deb)"
      return
    fi
    if (cd "$TMP" && cpack -G DEB -B "$TMP/deb" --config "$BUILD/CPackConfig.cmake") > "$TMP/cpack.log" 2>&1; then
      deb=$(ls "$TMP"/deb/pidfd_exporter_*.deb 2>/dev/null | head -1)
    fi
    if [ -z "$deb" ]; then
      tail -30 "$TMP/cpack.log"
      fail "cpack -G DEB"
      return
    fi
    pass "cpack -G DEB: $(basename "$deb")"
  fi
  deb=$(readlink -f "$deb")

  control_ok() {
    local ok=0 field version
    for field in Package Version Architecture Maintainer Description Depends Section; do
      [ -n "$(dpkg-deb -f "$deb" "$field")" ] || { echo "  control: no $field"; ok=1; }
    done
    [ "$(dpkg-deb -f "$deb" Package)" = pidfd_exporter ] || { echo "  Package is not pidfd_exporter"; ok=1; }
    version=$(sed -n 's/^project(pidfd_exporter VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
    [[ "$(dpkg-deb -f "$deb" Version)" == "$version"-* ]] || { echo "  Version $(dpkg-deb -f "$deb" Version), project $version"; ok=1; }
    echo "  Depends: $(dpkg-deb -f "$deb" Depends)"
    ! grep -q -- '-dev' <<<"$(dpkg-deb -f "$deb" Depends)" || { echo "  Depends names a -dev package"; ok=1; }
    return $ok
  }
  check "package control: name, version $(dpkg-deb -f "$deb" Version 2>/dev/null), Depends without -dev packages" control_ok
  check "package Depends cover every library the binary links (ldd)" packages_cover_ldd "$BIN" "$(dpkg-deb -f "$deb" Depends)"
  mkdir -p "$TMP/control"
  dpkg-deb -e "$deb" "$TMP/control"
  maintainer_files_ok() {
    local ok=0 script
    diff <(sort "$TMP/control/conffiles") <(printf '/etc/default/pidfd_exporter\n/etc/pidfd_exporter/config.yml\n') ||
      { echo "  conffiles differ from the two files under /etc"; ok=1; }
    for script in postinst prerm postrm; do
      [ -x "$TMP/control/$script" ] || { echo "  no executable $script"; ok=1; continue; }
      sh -n "$TMP/control/$script" || { echo "  $script: syntax error"; ok=1; }
    done
    grep -q 'deb-systemd-helper enable' "$TMP/control/postinst" || { echo "  postinst does not enable the unit"; ok=1; }
    return $ok
  }
  check "conffiles (/etc/pidfd_exporter/config.yml, /etc/default/pidfd_exporter), postinst/prerm/postrm" maintainer_files_ok

  local before
  before=$(leftovers)
  # The package enables its unit; where systemd is the running init it also starts it.
  PACKAGE_INSTALLED_HERE=1
  if DEBIAN_FRONTEND=noninteractive "${APT[@]}" install "$deb" > "$TMP/apt-install.log" 2>&1; then
    pass "apt-get install $deb"
  else
    tail -20 "$TMP/apt-install.log"
    fail "apt-get install $deb"
    return
  fi
  package_files_ok() {
    local ok=0 f libraries
    [ "$(dpkg-query -W -f='${Status}' pidfd_exporter)" = "install ok installed" ] || { echo "  dpkg status: not installed"; ok=1; }
    for f in /usr/bin/pidfd_exporter /etc/pidfd_exporter/config.yml /etc/default/pidfd_exporter \
             /usr/lib/systemd/system/pidfd_exporter.service /usr/share/pidfd_exporter/config.default.yml \
             /usr/share/doc/pidfd_exporter/README.md /usr/share/doc/pidfd_exporter/deployment.md; do
      [ -s "$f" ] || { echo "  missing: $f"; ok=1; }
    done
    [ -x /usr/bin/pidfd_exporter ] || { echo "  /usr/bin/pidfd_exporter is not executable"; ok=1; }
    cmp -s "$SRC/config/pidfd_exporter.yml" /etc/pidfd_exporter/config.yml || { echo "  /etc/pidfd_exporter/config.yml differs from config/pidfd_exporter.yml"; ok=1; }
    [ "$(stat -c %a /etc/pidfd_exporter/config.yml)" = 644 ] || { echo "  config mode $(stat -c %a /etc/pidfd_exporter/config.yml), want 644 (DynamicUser reads it)"; ok=1; }
    grep -qx 'ExecStart=/usr/bin/pidfd_exporter $PIDFD_EXPORTER_OPTS' /usr/lib/systemd/system/pidfd_exporter.service ||
      { echo "  installed unit: unexpected ExecStart"; ok=1; }
    diff <(dpkg-query -W -f='${Conffiles}\n' pidfd_exporter | awk 'NF {print $1}' | sort) \
         <(printf '/etc/default/pidfd_exporter\n/etc/pidfd_exporter/config.yml\n') || { echo "  dpkg's conffiles differ"; ok=1; }
    # (ldd's output in a variable: `ldd | grep -q` fails under pipefail when grep stops early.)
    libraries=$(ldd /usr/bin/pidfd_exporter)
    ! grep 'not found' <<<"$libraries" || ok=1
    # RUNPATH $ORIGIN/../lib/<triplet>/pidfd_exporter: ldd prints it unnormalised (/usr/bin/../lib/...).
    grep -Eq 'libssl\.so => /usr/[^ ]*/pidfd_exporter/libssl\.so ' <<<"$libraries" ||
      { echo "  libssl.so does not resolve to the package's TLS shim"; ok=1; }
    return $ok
  }
  check "installed: binary, conffiles (dpkg), unit, docs, TLS shims resolved" package_files_ok
  installed_version_ok() {
    local out
    out=$(/usr/bin/pidfd_exporter --version 2>&1) || { echo "$out"; return 1; }
    echo "  $(echo "$out" | head -1)"
    [[ "$out" == *"version $(dpkg-query -W -f='${Version}' pidfd_exporter | sed 's/-[^-]*$//')"* ]]
  }
  check "installed: /usr/bin/pidfd_exporter --version matches the package version" installed_version_ok
  check "installed: --config.check /etc/pidfd_exporter/config.yml" \
    /usr/bin/pidfd_exporter --config.check --config.file=/etc/pidfd_exporter/config.yml
  installed_unit_verifies() {
    local out
    out=$(systemd-analyze verify /usr/lib/systemd/system/pidfd_exporter.service 2>&1) || { echo "$out"; return 1; }
    [ -z "$out" ] || { echo "$out"; return 1; }
  }
  check "installed unit: systemd-analyze verify prints nothing" installed_unit_verifies
  unit_enabled() {
    [ "$(systemctl is-enabled pidfd_exporter.service 2>&1)" = enabled ] ||
      { echo "  systemctl is-enabled: $(systemctl is-enabled pidfd_exporter.service 2>&1)"; return 1; }
    [ -L /etc/systemd/system/multi-user.target.wants/pidfd_exporter.service ]
  }
  check "installed unit: enabled (multi-user.target.wants)" unit_enabled
  if [ -d /run/systemd/system ]; then
    service_active() {
      local deadline=$((SECONDS + 20))
      until systemctl is-active --quiet pidfd_exporter.service; do
        [ $SECONDS -lt $deadline ] || { systemctl status pidfd_exporter.service --no-pager | tail -15; return 1; }
        sleep 0.2
      done
    }
    check "systemd runs here: the service is active after installation" service_active
  else
    echo "  (systemd is not the running init here: postinst enables the unit and starts nothing)"
  fi
  reinstall_keeps_edit() {
    echo "# edited by the admin" >> /etc/pidfd_exporter/config.yml
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install --reinstall "$deb" > "$TMP/apt-reinstall.log" 2>&1 ||
      { tail -20 "$TMP/apt-reinstall.log"; return 1; }
    tail -1 /etc/pidfd_exporter/config.yml | grep -q 'edited by the admin'
  }
  check "apt-get install --reinstall keeps an edited conffile" reinstall_keeps_edit

  removed_ok() {
    local ok=0 f
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" remove pidfd_exporter > "$TMP/apt-remove.log" 2>&1 ||
      { tail -20 "$TMP/apt-remove.log"; return 1; }
    [ "$(dpkg-query -W -f='${Status}' pidfd_exporter)" = "deinstall ok config-files" ] ||
      { echo "  dpkg status: $(dpkg-query -W -f='${Status}' pidfd_exporter)"; ok=1; }
    for f in /usr/bin/pidfd_exporter /usr/lib/systemd/system/pidfd_exporter.service /usr/share/pidfd_exporter \
             /usr/share/doc/pidfd_exporter /etc/systemd/system/multi-user.target.wants/pidfd_exporter.service; do
      [ ! -e "$f" ] || { echo "  still there: $f"; ok=1; }
    done
    [ -f /etc/pidfd_exporter/config.yml ] && [ -f /etc/default/pidfd_exporter ] ||
      { echo "  remove deleted a conffile"; ok=1; }
    return $ok
  }
  check "apt-get remove: program, unit and docs gone, conffiles kept" removed_ok
  purged_ok() {
    local after
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge pidfd_exporter > "$TMP/apt-purge.log" 2>&1 ||
      { tail -20 "$TMP/apt-purge.log"; return 1; }
    [ -z "$(dpkg-query -W -f='${Status}' pidfd_exporter 2>/dev/null)" ] ||
      { echo "  dpkg still knows it: $(dpkg-query -W -f='${Status}' pidfd_exporter)"; return 1; }
    after=$(leftovers)
    [ "$after" = "$before" ] || { echo "  left behind:"; diff <(echo "$before") <(echo "$after") | sed -n 's/^> /    /p'; return 1; }
  }
  check "apt-get purge: nothing named pidfd_exporter left in /etc, /usr, /var/lib/{dpkg,systemd}" purged_ok
  PACKAGE_INSTALLED_HERE=0
}
deb_section

########################## 5. npm tools: Dockerfile lint, Kubernetes ##########################
echo "--- deploy/tools (npm) (at ${SECONDS} s)"
TOOLS="$SRC/deploy/tools"
npm_ready=0
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  skip "node/npm missing: Dockerfile lint and Kubernetes manifest checks"
else
  # npm ci only when package-lock.json changed since the last install.
  stamp="$TOOLS/node_modules/.pidfd-npm-ci-stamp"
  if [ -d "$TOOLS/node_modules" ] && [ -f "$stamp" ] && cmp -s "$stamp" "$TOOLS/package-lock.json"; then
    npm_ready=1
    pass "deploy/tools/node_modules up to date with package-lock.json"
  elif (cd "$TOOLS" && timeout 240 npm ci --no-audit --no-fund --loglevel=error) > "$TMP/npm.log" 2>&1; then
    cp "$TOOLS/package-lock.json" "$stamp"
    npm_ready=1
    pass "npm ci in deploy/tools"
  else
    tail -20 "$TMP/npm.log"
    fail "npm ci in deploy/tools"
  fi
fi
if [ $npm_ready -eq 1 ]; then
  lint_out=$("$TOOLS/node_modules/.bin/dockerfile-utils" lint "$DOCKERFILE" 2>&1)
  lint_rc=$?
  if [ $lint_rc -eq 0 ]; then pass "dockerfile-utils lint Dockerfile"; else echo "$lint_out"; fail "dockerfile-utils lint Dockerfile"; fi

  if (cd "$TOOLS" && node validate-k8s.mjs --config-out "$TMP/configmap-config.yml" "$SRC"/deploy/kubernetes/*.yaml) > "$TMP/validate.log" 2>&1; then
    pass "Kubernetes manifests: schemas and key fields ($(grep -c '^ok' "$TMP/validate.log") checks)"
  else
    grep -v '^ok' "$TMP/validate.log"
    fail "Kubernetes manifests (deploy/tools/validate-k8s.mjs)"
  fi
  check "ConfigMap config.yml passes --config.check" "$BIN" --config.check --config.file="$TMP/configmap-config.yml"
  # The validator itself must catch a wrong type (it cannot catch unknown fields).
  sed 's/^\( *\)hostPID: true/\1hostPID: "yes"/' "$SRC/deploy/kubernetes/daemonset.yaml" > "$TMP/broken-daemonset.yaml"
  broken_out=$(cd "$TOOLS" && node validate-k8s.mjs "$TMP/broken-daemonset.yaml" 2>&1)
  if [[ "$broken_out" == *"hostPID must be boolean"* ]]; then
    pass "validator rejects hostPID: \"yes\""
  else
    fail "validator accepted a broken DaemonSet"
  fi

  RULES="$SRC/dashboards/rules/pidfd_exporter.rules.yml"
  if [ ! -f "$RULES" ]; then
    skip "PrometheusRule sync: dashboards/rules/pidfd_exporter.rules.yml does not exist yet"
  else
    check "deploy/kubernetes/prometheusrule.yaml in sync with dashboards/rules/pidfd_exporter.rules.yml" \
      node "$TOOLS/gen-prometheusrule.mjs" --check "$RULES" "$SRC/deploy/kubernetes/prometheusrule.yaml"
    if command -v promtool >/dev/null; then
      (cd "$TOOLS" && node -e '
        const fs = require("fs"), yaml = require("js-yaml");
        const o = yaml.load(fs.readFileSync(process.argv[1], "utf8"));
        fs.writeFileSync(process.argv[2], yaml.dump(o.spec, { lineWidth: -1 }));' \
        "$SRC/deploy/kubernetes/prometheusrule.yaml" "$TMP/prometheusrule-spec.yml")
      check "promtool check rules on the PrometheusRule's spec" promtool check rules "$TMP/prometheusrule-spec.yml"
    else
      skip "promtool missing: PrometheusRule spec not checked by promtool"
    fi
  fi
fi

echo "packaging: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
