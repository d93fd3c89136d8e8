#!/usr/bin/env bash
# Builds the libFuzzer targets under ASan+UBSan in a build directory of their
# own and runs each for a while.
#
#   tests/fuzz/run.sh [BUILD_DIR] [SECONDS] [TARGET...]
#
#   BUILD_DIR  default: <source root>/build-fuzz
#   SECONDS    per target, default 60
#   TARGET     open, receive (default: both)
#
# Environment: JOBS (build parallelism, default 1), FUZZ_ARGS (extra libFuzzer
# flags, e.g. "-jobs=2 -workers=2" or "-dict=..."), CC/CXX (default clang).
# The corpus each target finds is kept in BUILD_DIR/tests/fuzz/corpus-<target>
# and grows from run to run; the checked-in seeds in tests/fuzz/corpus/<target>
# are only read. Crash inputs go to BUILD_DIR/fuzz-artifacts/.
# Exit status: 0 when no target found anything, 1 otherwise, 2 on a build error.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=$(cd "$script_dir/../.." && pwd)
build_dir=${1:-$source_dir/build-fuzz}
seconds=${2:-60}
shift $(($# < 2 ? $# : 2))
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(open receive)
fi

export CC=${CC:-clang}
export CXX=${CXX:-clang++}

mkdir -p "$build_dir"
echo "== configuring $build_dir"
if ! cmake -S "$source_dir" -B "$build_dir" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSLUICE_FUZZ=ON \
    -DSLUICE_SANITIZE=address \
    -DSLUICE_BUILD_BENCH=OFF \
    -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link >"$build_dir/fuzz-configure.log" 2>&1; then
  cat "$build_dir/fuzz-configure.log"
  echo "configure failed" >&2
  exit 2
fi

build_targets=()
for target in "${targets[@]}"; do
  build_targets+=("sluice_fuzz_$target")
done
echo "== building ${build_targets[*]}"
if ! cmake --build "$build_dir" --target "${build_targets[@]}" -j "${JOBS:-1}"; then
  echo "build failed (is tests/fuzz added to tests/CMakeLists.txt, with option SLUICE_FUZZ?)" >&2
  exit 2
fi

artifacts="$build_dir/fuzz-artifacts"
mkdir -p "$artifacts"
# Leaks are bugs; UBSan already stops at the first report (-fno-sanitize-recover).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if command -v llvm-symbolizer >/dev/null; then
  export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer)}
fi

failed=0
summary=()
for target in "${targets[@]}"; do
  binary="$build_dir/tests/fuzz/sluice_fuzz_$target"
  corpus="$build_dir/tests/fuzz/corpus-$target"
  seeds="$source_dir/tests/fuzz/corpus/$target"
  log="$build_dir/fuzz-$target.log"
  mkdir -p "$corpus"
  echo "== fuzzing $target for ${seconds}s (log: $log)"
  # shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
  "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts/$target-" ${FUZZ_ARGS:-} "$corpus" "$seeds" >"$log" 2>&1 &
  pid=$!
  status=0
  wait "$pid" || status=$?
  # A crashed run cannot remove its channel; its name carries its pid.
  rm -f "/dev/shm/sluice.fuzz-$target-$pid"

  executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  coverage=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  if [[ $status -eq 0 ]]; then
    result="no crash"
  else
    failed=1
    artifact=$(grep -oE "(Test unit written to|artifact_prefix.*; Test unit written to) [^ ]+" "$log" | tail -1 | awk '{print $NF}' || true)
    result="FAILED (exit $status) ${artifact:+input: $artifact}"
    echo "---- $target: last lines of $log"
    grep -nE "ERROR|runtime error|SUMMARY|invariant violated|deadly signal|Test unit written" "$log" | head -20 || true
    tail -n 40 "$log"
  fi
  line="$target: ${executions:-?} executions, ${coverage:-no coverage line}, $result"
  echo "$line"
  summary+=("$line")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
