#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for a bounded time on its
# seed corpus (fuzz/corpus/<target>, seeded from tests/fixtures and config/).
#
#   scripts/fuzz.sh            # 30 s per target
#   scripts/fuzz.sh 300        # 300 s per target
#   BUILD_DIR=/tmp/fuzz-build FUZZ_TARGETS="fuzz_config" scripts/fuzz.sh 60
#
# New inputs that grow coverage go to a scratch corpus ($BUILD_DIR/corpus/<target>), not
# into the repository; `-merge=1` them into fuzz/corpus/ by hand when worth keeping.
# A crash leaves crash-* / leak-* / timeout-* files in $BUILD_DIR/artifacts/ and fails.
# Last line: "N passed, M failed" (targets).
set -uo pipefail

seconds=${1:-30}
source_dir=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$source_dir/build/fuzz}
jobs=${JOBS:-$(nproc)}

"$source_dir/scripts/install-deps.sh" fuzz || exit 1
cmake -S "$source_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DPIDFD_EXPORTER_SANITIZE=address,undefined \
  -DPIDFD_EXPORTER_BUILD_FUZZERS=ON -DPIDFD_EXPORTER_BUILD_TESTS=OFF -DPIDFD_EXPORTER_BUILD_BENCHMARKS=OFF -DPIDFD_EXPORTER_WERROR=ON \
  >/dev/null || exit 1
cmake --build "$build_dir" -j "$jobs" --target fuzzers || exit 1

targets=${FUZZ_TARGETS:-$(cd "$build_dir/fuzz" && ls fuzz_* 2>/dev/null | grep -v '\.' )}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
passed=0
failed=0
mkdir -p "$build_dir/artifacts"
for target in $targets; do
  name=${target#fuzz_}
  seeds=$source_dir/fuzz/corpus/$name
  scratch=$build_dir/corpus/$name
  mkdir -p "$scratch"
  dict=()
  [ -f "$source_dir/fuzz/$name.dict" ] && dict=(-dict="$source_dir/fuzz/$name.dict")
  echo "=== $target for ${seconds}s"
  "$build_dir/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$build_dir/artifacts/$target-" "${dict[@]}" \
    "$scratch" "$seeds" > "$build_dir/$target.log" 2>&1
  rc=$?
  grep -E '^(stat::number_of_executed_units|stat::new_units_added|#[0-9]+ *DONE)' "$build_dir/$target.log" | tr '\n' ' '
  echo
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1)); echo "=== $target: ok"
  else
    failed=$((failed + 1)); echo "=== $target: FAILED (exit $rc), see $build_dir/$target.log"
    grep -E 'ERROR|SUMMARY|artifact|Test unit written' "$build_dir/$target.log" | head -20
  fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
