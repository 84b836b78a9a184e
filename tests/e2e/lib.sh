# Shared helpers for tests/e2e/*_test.sh (sourced, not run; not a test itself).
# Each test counts its checks with pass/fail and ends with `finish`, which prints
# "N passed, M failed" and exits non-zero on any failure.

PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }

# check "description" command args...: runs the command, counts the result, shows its output on failure.
check() {
  local what=$1; shift
  local out
  if out=$("$@" 2>&1); then
    pass "$what"
  else
    fail "$what"
    printf '%s\n' "$out" | sed 's/^/     /' | tail -40
  fi
}

finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit $?
}

# A python3 that has PyYAML (Debian's python3-yaml, installed by scripts/install-deps.sh). A python
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
