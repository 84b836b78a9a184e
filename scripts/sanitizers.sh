#!/usr/bin/env bash
# Builds the whole project twice — ASan+UBSan and TSan — and runs the full test suite
# (ctest: unit, integration, e2e) in each. LeakSanitizer checks every sanitized process at
# exit, including the exporter binary that the integration and e2e tests start and stop.
#
#   scripts/sanitizers.sh                  # both variants
#   scripts/sanitizers.sh asan             # one of them (asan | tsan)
#   BUILD_ROOT=/tmp/san scripts/sanitizers.sh   # where the build dirs go (default: build/)
#   CTEST_ARGS="-L unit" scripts/sanitizers.sh  # extra ctest arguments
#
# Prints the time of each phase and a last line "N passed, M failed" (variants); exits
# non-zero when any build or test fails.
set -uo pipefail

source_dir=$(cd "$(dirname "$0")/.." && pwd)
build_root=${BUILD_ROOT:-$source_dir/build}
jobs=${JOBS:-$(nproc)}
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(asan tsan)

# Sanitizer runtime options. detect_leaks=1: LeakSanitizer at every sanitized process's exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$source_dir/scripts/tsan.supp}
export LSAN_OPTIONS=${LSAN_OPTIONS:-}

"$source_dir/scripts/install-deps.sh" test || exit 1

passed=0
failed=0
summary=()
for variant in "${variants[@]}"; do
  case "$variant" in
    asan) sanitize=address,undefined ;;
    tsan) sanitize=thread ;;
    *) echo "sanitizers.sh: unknown variant '$variant' (asan | tsan)" >&2; exit 2 ;;
  esac
  build_dir=$build_root/$variant
  echo "=== $variant ($sanitize) in $build_dir"
  start=$SECONDS
  if ! cmake -S "$source_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
      -DPIDFD_EXPORTER_SANITIZE=$sanitize -DPIDFD_EXPORTER_BUILD_BENCHMARKS=OFF -DPIDFD_EXPORTER_WERROR=ON >/dev/null ||
     ! cmake --build "$build_dir" -j "$jobs"; then
    echo "=== $variant: BUILD FAILED"
    failed=$((failed + 1)); summary+=("$variant: build failed"); continue
  fi
  built=$SECONDS
  # shellcheck disable=SC2086
  (cd "$build_dir" && ctest --output-on-failure --timeout 300 -j "$jobs" ${CTEST_ARGS:-})
  rc=$?
  done_at=$SECONDS
  line="$variant: build $((built - start)) s, tests $((done_at - built)) s, ctest exit $rc"
  echo "=== $line"
  summary+=("$line")
  if [ $rc -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
