#!/usr/bin/env bash
# Robustness checks (docs/robustness.md), run by launch/test.sh after CTest:
#   1. sanitizers: the torch-free unit tests (lnfree_core_tests) built with ASan + UBSan (gcc) in
#      build-asan/;
#   2. fuzz: every libFuzzer target of tests/fuzz (clang, ASan + UBSan) in build-fuzz/, each run for
#      LNFREE_FUZZ_SECONDS (default 15) from its seed corpus tests/fuzz/<target>/.
# Neither build needs LibTorch (LNFREE_CORE_ONLY). Both folders are reused by later runs (ccache
# makes a fresh folder cheap too). Ends with one summary line per part; exits non-zero when a test
# fails, a sanitizer reports, or a fuzz target finds a crash, a hang or a memory blow-up.
#   LNFREE_JOBS=N             build parallelism (default: nproc)
#   LNFREE_FUZZ_SECONDS=S     time per fuzz target
#   LNFREE_ROBUSTNESS=asan|fuzz   run one part only
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CCACHE_BASEDIR="$ROOT"
JOBS=${LNFREE_JOBS:-$(nproc)}
FUZZ_SECONDS=${LNFREE_FUZZ_SECONDS:-15}
PARTS=${LNFREE_ROBUSTNESS:-asan fuzz}
# RelWithDebInfo: optimised enough to run the suites quickly, with line numbers in reports.
COMMON=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLNFREE_CORE_ONLY=ON -DLNFREE_WITH_NCCL=OFF
        -DLNFREE_SANITIZE=address,undefined -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# Every report fails the run; UBSan prints where. LSan stays on (the ASan default).
export ASAN_OPTIONS=${ASAN_OPTIONS:-strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

summary=()
status=0

configure_and_build() {  # folder target cmake-args...
  local dir=$1 target=$2
  shift 2
  cmake -S . -B "$dir" "${COMMON[@]}" "$@" >"$dir/configure.log" 2>&1 &&
    cmake --build "$dir" -j"$JOBS" --target "$target" >"$dir/build.log" 2>&1
}

run_sanitizers() {
  echo "[robustness] building lnfree_core_tests with ASan + UBSan into build-asan/"
  mkdir -p build-asan
  if ! configure_and_build build-asan lnfree_core_tests -DCMAKE_CXX_COMPILER=g++ -DCMAKE_C_COMPILER=gcc; then
    tail -n 40 build-asan/configure.log build-asan/build.log
    summary+=("sanitizers: build failed (build-asan/build.log)")
    return 1
  fi
  echo "[robustness] running lnfree_core_tests (ASan + UBSan)"
  local log=build-asan/core_tests.log rc=0
  build-asan/tests/lnfree_core_tests --gtest_brief=1 >"$log" 2>&1 || rc=$?
  local passed failed
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
  failed=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
  passed=${passed:-0} failed=${failed:-0}
  # A sanitizer report ends the process early (or at exit, for leaks) with a non-zero status.
  if ((rc != 0)) || grep -qE "^(SUMMARY: (Address|Undefined|Leak)Sanitizer|==[0-9]+==ERROR)|runtime error:" "$log"; then
    grep -E "FAILED|runtime error:|Sanitizer|==ERROR" "$log" | head -n 40
    tail -n 60 "$log"
    summary+=("sanitizers: lnfree_core_tests $passed passed, $failed failed, exit status $rc (ASan+UBSan; $log)")
    return 1
  fi
  summary+=("sanitizers: lnfree_core_tests $passed passed, $failed failed (ASan+UBSan)")
}

run_fuzzers() {
  echo "[robustness] building the fuzz targets (clang, libFuzzer, ASan + UBSan) into build-fuzz/"
  mkdir -p build-fuzz
  if ! configure_and_build build-fuzz lnfree_fuzz_targets -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
    -DLNFREE_FUZZ=ON -DLNFREE_BUILD_TESTS=OFF; then
    tail -n 40 build-fuzz/configure.log build-fuzz/build.log
    summary+=("fuzz: build failed (build-fuzz/build.log)")
    return 1
  fi
  local bad=0 bin name corpus log rc execs
  for bin in build-fuzz/fuzz/fuzz_*; do
    name=${bin##*/fuzz_}
    # New inputs go to build-fuzz/corpus/<name> (kept between runs); the seeds are read-only.
    corpus=build-fuzz/corpus/$name
    log=build-fuzz/fuzz-$name.log
    mkdir -p "$corpus" build-fuzz/artifacts
    rm -f build-fuzz/artifacts/"$name"-*  # what an earlier run found is in its log
    echo "[robustness] fuzzing $name for ${FUZZ_SECONDS}s"
    rc=0
    "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=5 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
      -artifact_prefix="build-fuzz/artifacts/$name-" "$corpus" "tests/fuzz/$name" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    if ((rc != 0)); then
      tail -n 60 "$log"
      summary+=("fuzz: $name ${execs:-?} execs, FAILED (exit status $rc; input in build-fuzz/artifacts/$name-*; $log)")
      bad=1
    else
      summary+=("fuzz: $name ${execs:-0} execs, 0 crashes")
    fi
  done
  return $bad
}

start=$SECONDS
for part in $PARTS; do
  case $part in
    asan) run_sanitizers || status=1 ;;
    fuzz) run_fuzzers || status=1 ;;
    *) echo "[robustness] unknown part '$part' (expected asan or fuzz)"; status=1 ;;
  esac
done
echo "[robustness] done in $((SECONDS - start)) s"
printf '%s\n' "${summary[@]}"
exit $status
