#!/usr/bin/env bash
# The prepared check for the GPU machine (one H100/H200, PyTorch + CUDA pip wheels, nvcc, CMake,
# ninja, transformers; no apt, no network) and its rehearsal on the CPU machine. docs/gpu-check.md
# has the exact device calls, what comes back and what to do when a phase fails.
#
#   bash launch/gpu-check.sh --phase A     GPU machine, first device call (kit carried)
#   bash launch/gpu-check.sh --phase B     GPU machine, second call, on the still-warm machine
#   bash launch/gpu-check.sh --rehearse    here: both phases, the same steps in the same order, on
#                                          the CPU build (build/) with tiny shapes; GPU-only parts
#                                          are reported "skipped: no GPU ..." (CI runs this)
# Without --phase both phases run, A then B.
#
# Phase A (one device call, ~335 s of step limits): probe, kit, configure, build, gpu-tests,
#   smoke-bf16, then GPT-2 XL: bench-gpt2-xl (lnfree bench train), reference-gpt2-xl (the paper's
#   setup, the baseline of the ">= 2x" target), careful-gpt2-xl (clean eager PyTorch).
# Phase B (~285 s): kit / configure / build only where phase A's are missing (the unpacked kit in
#   .gpu-kit/unpacked/ and build-gpu/ survive between calls on a warm machine; /tmp may not), score
#   (lnfree score vs transformers), bench / reference / careful for gpt2, gpt2-medium, gpt2-large,
#   and the torch.compile peer last (cold compilation is slow) under its own limit.
#
# Each step runs under `timeout` (bash -c of an exported function) with its own limit, cut to what is
# left of the phase's budget (LNFREE_GPU_CHECK_BUDGET_S, default: the sum of the phase's limits plus a
# little); a step that would get under 5 s is "skipped: budget spent". A step whose input failed is
# skipped and names it. Step logs go to $LNFREE_GPU_CHECK_WORK/logs-<phase>/ (default
# build-gpu-check/{gpu,rehearsal}/, git-ignored); $OUT receives per phase report-<phase>.md and
# logs-<phase>.tar.gz only (the device tool brings back at most 8 files), and each report is printed
# at the end of the phase's output. Exit status: 0 when every step passed or was skipped for a reason
# that is no failure (no GPU in a rehearsal, present from phase A, not selected by the test hook),
# 1 otherwise, 2 on a usage error.
#
# Test hooks (tests/launch/test_gpu_check.py): step names, separated by spaces or commas, in
#   LNFREE_GPU_CHECK_ONLY  run only these steps (the others: "skipped: not in LNFREE_GPU_CHECK_ONLY")
#   LNFREE_GPU_CHECK_FAIL  replace these steps by a command that fails
#   LNFREE_GPU_CHECK_HANG  replace these steps by a command that hangs (until its limit)
# and LNFREE_GPU_CHECK_BUDGET_S (seconds per phase), LNFREE_GPU_CHECK_BUILD (the build folder),
# LNFREE_KIT (the kit archive), LNFREE_GPU_CHECK_KIT_DIR (where it is unpacked).
# shellcheck disable=SC2034  # PHASE_A/B and DEFAULT_BUDGET_A/B are read by name (local -n, eval)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

usage() {
  echo "usage: bash launch/gpu-check.sh [--rehearse] [--phase A|B|all]"
  echo "  --phase A|B|all  which prepared device call to run (default all: A, then B)"
  echo "  --rehearse       on the CPU machine: the CPU build (build/), --device cpu, tiny shapes"
}

MODE=gpu
PHASES=""
while (($#)); do
  case $1 in
    --rehearse) MODE=rehearse ;;
    --phase) shift; PHASES=${1:-} ;;
    --phase=*) PHASES=${1#--phase=} ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case ${PHASES:-all} in
  A | a) PHASES=A ;;
  B | b) PHASES=B ;;
  all) PHASES="A B" ;;
  *) echo "gpu-check: --phase: expected A, B or all, got '$PHASES'" >&2; usage >&2; exit 2 ;;
esac

# --- Settings the step functions read (exported: each step runs in its own bash under timeout) ---
export ROOT MODE
export KIT_TAR=${LNFREE_KIT:-$ROOT/.gpu-kit/kit.tar.xz}
# Unpacked inside the repository (git-ignored), not in /tmp: phase B finds it on the warm machine.
export KIT=${LNFREE_GPU_CHECK_KIT_DIR:-$ROOT/.gpu-kit/unpacked}
export WORK=${LNFREE_GPU_CHECK_WORK:-$ROOT/build-gpu-check/$([ "$MODE" = gpu ] && echo gpu || echo rehearsal)}
JOBS=$(nproc 2>/dev/null || echo 4)
export JOBS
if [ "$MODE" = gpu ]; then
  export BUILD=${LNFREE_GPU_CHECK_BUILD:-$ROOT/build-gpu}
  export PYTHON=${LNFREE_PYTHON:-python3}  # the image's python3 is the one with torch
  export DEVICE=cuda PRECISION=bf16 SEQ_LEN=1024
else
  export BUILD=${LNFREE_GPU_CHECK_BUILD:-$ROOT/build}
  # Debian's interpreter carries torch on the CPU machines (python3-torch).
  PYTHON=${LNFREE_PYTHON:-python3}
  [ -x /usr/bin/python3 ] && [ -z "${LNFREE_PYTHON:-}" ] && PYTHON=/usr/bin/python3
  export PYTHON DEVICE=cpu PRECISION=fp32 SEQ_LEN=64
fi
export STEPS=10 WARMUP=3
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT" "$WORK" || exit 1

list_has() {  # list_has NAME "a b,c": whether NAME is one of the list's words
  [[ " ${2//,/ } " == *" $1 "* ]]
}

# --- Step functions ------------------------------------------------------------------------------
# A step ends with status 0 (ok), non-zero (failed), or calls `skip REASON` (status 0, reported as
# "skipped: REASON", no failure); `note TEXT` adds to an ok's result.
skip() { echo "$*" > "$STEP_SKIP_FILE"; echo "skipped: $*"; exit 0; }
note() { echo "$*" >> "$STEP_NOTE_FILE"; }

# The stand-in shape of a GPT-2 size in the rehearsal: tiny models of growing size, full vocabulary.
shape_of() {
  if [ "$MODE" = gpu ]; then echo "$1"; return; fi
  case $1 in
    gpt2) echo tiny-2x64 ;;
    gpt2-medium) echo study-3x96 ;;
    gpt2-large) echo study-4x128 ;;
    gpt2-xl) echo study-4x192 ;;
  esac
}

probe() {
  echo "== tools"
  for tool in pkg-config xz g++ gcc c++ nvcc cmake ninja make python3 tar gzip ccache mpirun nvidia-smi; do
    printf '%-11s %s\n' "$tool" "$(command -v "$tool" || echo absent)"
  done
  echo "== g++ --version"
  g++ --version 2>&1 | head -1 || echo "g++: absent"
  echo "== /etc/os-release"
  grep -E '^(PRETTY_NAME|ID|VERSION_ID)=' /etc/os-release 2>/dev/null || echo "no /etc/os-release"
  echo "== GPU"
  local missing=()
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || echo "nvidia-smi failed"
  else
    echo "nvidia-smi: absent"
    missing+=("nvidia-smi")
  fi
  if command -v nvcc >/dev/null; then nvcc --version | tail -2; else missing+=("nvcc"); fi
  cmake --version 2>&1 | head -1
  command -v ninja >/dev/null && echo "ninja $(ninja --version)"
  echo "== $PYTHON"
  "$PYTHON" - <<'EOF' || missing+=("python3")
import importlib.util, sys
print("python", sys.version.split()[0], sys.executable)
try:
    import torch
    cuda = torch.cuda.is_available()
    nccl = torch.cuda.nccl.version() if cuda else "-"
    nccl = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else nccl
    print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
          "nccl", nccl)
    print("device", torch.cuda.get_device_name() if cuda else "none (torch sees no CUDA device)")
    print("cmake prefix", torch.utils.cmake_prefix_path)
except Exception as e:  # reported, not fatal: the probe says what the machine has
    print("torch: absent or broken:", e)
for module in ("transformers", "safetensors", "nvidia.nccl", "nvidia.cudnn"):
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        print(f"{module}: absent")
    elif module.startswith("nvidia."):
        print(f"{module}: {list(spec.submodule_search_locations)[0]}")
    else:
        print(f"{module}: {__import__(module).__version__}")
EOF
  "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null ||
    missing+=("a CUDA device for torch")
  "$PYTHON" -c 'import transformers' 2>/dev/null || missing+=("transformers")
  ((${#missing[@]} == 0)) || note "absent: $(printf '%s\n' "${missing[@]}" | paste -sd, | sed 's/,/, /g')"
  return 0  # what the machine lacks is reported; the steps that need it fail or skip on their own
}

unpack_kit() {
  if [ ! -f "$KIT_TAR" ]; then
    [ "$MODE" = rehearse ] && skip "no kit at ${KIT_TAR#"$ROOT"/} (launch/gpu-kit.sh packs it); the rehearsal builds with this machine's packages"
    echo "no kit at $KIT_TAR: run launch/gpu-kit.sh on a Debian 12 machine and carry it (docs/gpu-check.md)"
    return 1
  fi
  local sum
  sum=$("$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$KIT_TAR") ||
    return 1
  if [ -f "$KIT/.kit-sha256" ] && [ "$(cat "$KIT/.kit-sha256")" = "$sum" ]; then
    note "this kit is unpacked already (${KIT#"$ROOT"/})"
  else
    rm -rf "$KIT" "$KIT.tmp" && mkdir -p "$KIT.tmp" || return 1
    # Python's tarfile, not tar -J: the GPU image may have no xz program.
    "$PYTHON" - "$KIT_TAR" "$KIT.tmp" <<'EOF' || return 1
import sys, tarfile
with tarfile.open(sys.argv[1], "r:xz") as archive:
    # The kit's links are relative and stay inside it; "tar" keeps them and refuses absolute names.
    archive.extractall(sys.argv[2], **({"filter": "tar"} if hasattr(tarfile, "data_filter") else {}))
EOF
    echo "$sum" > "$KIT.tmp/.kit-sha256" && mv "$KIT.tmp" "$KIT" || return 1
    du -sh "$KIT"
    note "unpacked"
  fi
  [ -f "$KIT/kit.cmake" ] && [ -f "$KIT/env.sh" ] || { echo "the kit has no kit.cmake or env.sh"; return 1; }
  if [ "$MODE" = gpu ]; then
    link_kit_data
  else
    note "the rehearsal's build keeps this machine's packages"
  fi
}

# The configs name data/tokens/brown relative to the repository: on the GPU machine, the kit's shards.
link_kit_data() {
  [ -e "$ROOT/data" ] || ln -s .gpu-kit/unpacked/data "$ROOT/data"
  ls "$ROOT/data/tokens/brown/manifest.json"
}

unpack_kit_if_missing() {
  if [ -f "$KIT/.kit-sha256" ] && [ -f "$KIT/env.sh" ]; then
    if [ "$MODE" = gpu ]; then link_kit_data || return 1; fi
    skip "present (${KIT#"$ROOT"/}, from phase A)"
  fi
  unpack_kit
}

# The generator's keep-going flag: one run lists every compile error, not the first.
keep_going() {
  if grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$BUILD/CMakeCache.txt" 2>/dev/null; then echo "-k 0"; else echo "-k"; fi
}

# The CPU build folder is shared with other builds on the development machine: one at a time.
locked() {
  if [ "$MODE" = rehearse ] && command -v flock >/dev/null; then flock /tmp/lnfree-build.lock "$@"; else "$@"; fi
}

configure() {
  if [ "$MODE" = rehearse ]; then
    # The CPU build as it is configured (setup.sh): a re-run proves the configure, pkg-config aside.
    locked cmake -S "$ROOT" -B "$BUILD"
    return
  fi
  local torch_prefix cudnn nccl cudnn_lib nccl_lib nccl_args=()
  torch_prefix=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)') || return 1
  # The wheels ship lib/libcudnn.so.9 and lib/libnccl.so.2 with include/ but no unversioned library:
  # both named explicitly (Caffe2's FindCUDNN; NCCL so that header and library come from one place).
  cudnn=$("$PYTHON" -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])') || return 1
  cudnn_lib=$(ls "$cudnn"/lib/libcudnn.so.[0-9]* 2>/dev/null | head -1)
  nccl=$("$PYTHON" -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null)
  nccl_lib=$(ls "$nccl"/lib/libnccl.so.[0-9]* 2>/dev/null | head -1)
  if [ -n "$nccl" ] && [ -f "$nccl/include/nccl.h" ] && [ -n "$nccl_lib" ]; then
    nccl_args=(-DNCCL_INCLUDE_DIR="$nccl/include" -DNCCL_LIBRARY="$nccl_lib")
  else
    echo "no nvidia-nccl wheel with include/nccl.h and lib/libnccl.so.N: CMake searches for NCCL"
  fi
  # libzstd from the kit by path (no pkg-config program here).
  local lib=$KIT/usr/lib/x86_64-linux-gnu
  TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} cmake -S "$ROOT" -B "$BUILD" -G Ninja \
    -C "$KIT/kit.cmake" -DTorch_DIR="$torch_prefix/Torch" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" -DCUDNN_LIBRARY_PATH="$cudnn_lib" -DCUDNN_INCLUDE_PATH="$cudnn/include" \
    -DZSTD_INCLUDE_DIR="$KIT/usr/include" -DZSTD_LIBRARY="$lib/libzstd.so" "${nccl_args[@]}" \
    -DLNFREE_WITH_NCCL=ON -DLNFREE_WITH_MPI=ON -DLNFREE_BUILD_TESTS=ON
}

configure_if_missing() {
  if [ -f "$BUILD/CMakeCache.txt" ] && { [ -f "$BUILD/build.ninja" ] || [ -f "$BUILD/Makefile" ]; }; then
    skip "present (${BUILD#"$ROOT"/}, from phase A)"
  fi
  configure
}

# lnfree and the GPU tests only: the torch test suite is CI's, not this machine's.
build() {
  # shellcheck disable=SC2046
  locked cmake --build "$BUILD" -j"$JOBS" --target lnfree lnfree_gpu_tests -- $(keep_going)
}

build_if_missing() {
  [ -x "$BUILD/lnfree" ] && skip "present (${BUILD#"$ROOT"/}/lnfree, from phase A)"
  # shellcheck disable=SC2046
  locked cmake --build "$BUILD" -j"$JOBS" --target lnfree -- $(keep_going)
}

# gtest_guard LOG: gtest's own count must show every listed test passed, none skipped (a LibTorch
# that sees no GPU skips them, and gtest then prints "[  PASSED  ] 0 tests." and "[  SKIPPED ]").
gtest_guard() {  # LOG LISTED; status 3: tests skipped
  local log=$1 listed=$2 passed skipped
  passed=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) tests?\..*/\1/p' "$log" | tail -1)
  if grep -q '^\[  SKIPPED \]' "$log"; then
    skipped=$(grep -oE '^\[  SKIPPED \] [A-Za-z0-9_]+\.[A-Za-z0-9_]+' "$log" | cut -c14- | sort -u | paste -sd' ')
    echo "guard: skipped: ${skipped:-?} (gtest reports ${passed:-no} passed of $listed)"
    return 3
  fi
  if [ "${passed:-none}" != "$listed" ]; then
    echo "guard: $listed test(s) listed, gtest reports ${passed:-no} passed"
    return 1
  fi
  echo "guard: $listed of $listed passed, none skipped"
}

# run_gtests FILTER MIN [LAUNCHER...]: runs the GPU test binary's tests that FILTER selects (at least
# MIN of them must exist in this build) and applies the guard.
run_gtests() {
  local filter=$1 min=$2 bin=$BUILD/tests/lnfree_gpu_tests listed log rc
  shift 2
  listed=$(count_gtests "$filter") || return 1
  if ((listed < min)); then
    echo "$filter: $listed test(s) in this build, $min expected (was the NCCL backend built?)"
    return 1
  fi
  log=$(mktemp)
  "$@" "$bin" --gtest_filter="$filter" > "$log" 2>&1
  rc=$?
  cat "$log"
  if ((rc != 0)); then rm -f "$log"; echo "$filter: exit $rc"; return 1; fi
  gtest_guard "$log" "$listed"
  rc=$?
  rm -f "$log"
  return $rc
}

count_gtests() {  # FILTER: how many tests of the GPU test binary it selects
  local bin=$BUILD/tests/lnfree_gpu_tests list
  list=$("$bin" --gtest_list_tests --gtest_filter="$1") || { echo "cannot run $bin --gtest_list_tests" >&2; return 1; }
  grep -c '^  ' <<< "$list"
}

gpu_tests() {
  local bin=$BUILD/tests/lnfree_gpu_tests rc
  [ -x "$bin" ] || { echo "no $bin (the build step builds it)"; return 1; }
  if [ "$MODE" = rehearse ]; then
    # Here the tests skip (no CUDA device): the guard must say so, which is what fails them on the
    # GPU machine.
    local log=$LOGS/gpu-tests.gtest.txt listed
    "$bin" --gtest_filter='Gpt2Cuda.*:NcclWorldOfOne.*' > "$log" 2>&1 || { cat "$log"; return 1; }
    cat "$log"
    listed=$(count_gtests 'Gpt2Cuda.*:NcclWorldOfOne.*') || return 1
    gtest_guard "$log" "$listed"
    rc=$?
    ((rc == 0)) && return 0
    ((rc == 3)) || return 1
    local nccl="NcclWorldOfOne not built here (no CUDA/NCCL)"
    "$bin" --gtest_list_tests | grep -q '^NcclWorldOfOne' && nccl="NcclWorldOfOne skipped too"
    skip "no GPU (the guard caught Gpt2Cuda skipping, as it would on a GPU machine whose LibTorch sees no device; $nccl)"
  fi
  run_gtests 'Gpt2Cuda.*' 1 || return 1
  # The NCCL world of one under the kit's mpirun (not an MPI singleton: root, relocated Open MPI).
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    run_gtests 'NcclWorldOfOne.*' 1 mpirun -np 1 --allow-run-as-root --mca btl self,vader
}

smoke_bf16() {
  local run=$WORK/smoke-run
  rm -rf "$run"
  if [ "$MODE" = rehearse ]; then
    note "cpu fp32, bf16 needs a GPU"
    "$BUILD/lnfree" train --config configs/smoke.toml --out "$run" --set run.device=cpu
    return
  fi
  # The smoke config evaluates on Brown's val split at its end; run.h5 holds every removal event.
  "$BUILD/lnfree" train --config configs/smoke.toml --out "$run" --set run.device=cuda --set run.precision=bf16
}

# The common options of lnfree bench train and its peer: the same shape and step.
bench_args() {  # SIZE MICRO_BATCH
  local mb=$2
  [ "$MODE" = rehearse ] && mb=4
  echo --model "$(shape_of "$1")" --micro-batch "$mb" --seq-len "$SEQ_LEN" --steps "$STEPS" --warmup "$WARMUP" \
    --device "$DEVICE" --precision "$PRECISION"
}

bench_lnfree() {  # SIZE MICRO_BATCH
  [ "$MODE" = rehearse ] && note "$(shape_of "$1") for $1, cpu fp32"
  # shellcheck disable=SC2046
  "$BUILD/lnfree" bench train $(bench_args "$1" "$2")
}

bench_peer() {  # MODE SIZE MICRO_BATCH
  local mode=$1
  if [ "$MODE" = rehearse ]; then
    [ "$mode" = careful ] || skip "no GPU (train_step_peer.py --mode $mode needs CUDA)"
    note "$(shape_of "$2") for $2, cpu fp32"
  fi
  # shellcheck disable=SC2046
  PYTHONUNBUFFERED=1 "$PYTHON" launch/peers/train_step_peer.py --mode "$mode" $(bench_args "$2" "$3")
}

score() {
  local sizes=(gpt2 gpt2-medium)
  if [ "$MODE" = rehearse ]; then
    "$PYTHON" -c 'import transformers' 2>/dev/null || skip "transformers is not installed here (the GPU image has it)"
    sizes=(gpt2)
    note "gpt2 only, on the CPU"
  fi
  PYTHONUNBUFFERED=1 "$PYTHON" launch/peers/hf_score_check.py --lnfree "$BUILD/lnfree" --sizes "${sizes[@]}"
}

export -f list_has skip note shape_of probe unpack_kit link_kit_data unpack_kit_if_missing keep_going locked \
  configure configure_if_missing build build_if_missing gtest_guard run_gtests count_gtests gpu_tests smoke_bf16 bench_args bench_lnfree \
  bench_peer score

# --- The phases: name, limit on the GPU (s), limit in the rehearsal (s), the step it needs, command --
# GPU limits are what the device call affords (docs/gpu-check.md); the rehearsal's are CI's (the CPU
# is slower at the smoke run, and a configure or build may have real work to do).
PHASE_A=(
  "probe             15  60  -          probe"
  "kit               20  60  -          unpack_kit"
  "configure         30  600 kit        configure"
  "build             140 900 configure  build"
  "gpu-tests         20  60  build      gpu_tests"
  "smoke-bf16        35  180 build      smoke_bf16"
  "bench-gpt2-xl     20  60  build      bench_lnfree gpt2-xl 8"
  "reference-gpt2-xl 35  60  -          bench_peer reference gpt2-xl 8"
  "careful-gpt2-xl   20  60  -          bench_peer careful gpt2-xl 8"
)
PHASE_B=(
  "kit                   20  60  -         unpack_kit_if_missing"
  "configure             30  600 kit       configure_if_missing"
  "build                 140 900 configure build_if_missing"
  "score                 45  120 build     score"
  "bench-gpt2            10  60  build     bench_lnfree gpt2 16"
  "reference-gpt2        20  60  -         bench_peer reference gpt2 16"
  "careful-gpt2          10  60  -         bench_peer careful gpt2 16"
  "bench-gpt2-medium     12  60  build     bench_lnfree gpt2-medium 16"
  "reference-gpt2-medium 25  60  -         bench_peer reference gpt2-medium 16"
  "careful-gpt2-medium   12  60  -         bench_peer careful gpt2-medium 16"
  "bench-gpt2-large      15  60  build     bench_lnfree gpt2-large 8"
  "reference-gpt2-large  30  60  -         bench_peer reference gpt2-large 8"
  "careful-gpt2-large    15  60  -         bench_peer careful gpt2-large 8"
  "compile-gpt2-xl       90  60  -         bench_peer compile gpt2-xl 8"
)
# Budgets: the limits' sum plus a little, so that a phase ends with its report well inside the device
# call's timeout (docs/gpu-check.md: timeout_s = budget + 40). Kit, configure and build only count in
# phase B when phase A's are missing, and then the budget cuts the steps at the end.
DEFAULT_BUDGET_A=345
DEFAULT_BUDGET_B=300
if [ "$MODE" = rehearse ]; then DEFAULT_BUDGET_A=1500 DEFAULT_BUDGET_B=1500; fi

COMMIT=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo "unknown (no .git)")
declare -A RESULT=() KIND=()  # per step: the report's text; ok | skipped | failed

# run_phase NAME: runs the phase's steps, writes $OUT/report-NAME.md and $OUT/logs-NAME.tar.gz, prints
# the report; returns 0 when no step failed.
run_phase() {
  local phase=$1 budget t0 table=() line failures=()
  local -n steps=PHASE_$phase
  budget=${LNFREE_GPU_CHECK_BUDGET_S:-$(eval echo "\$DEFAULT_BUDGET_$phase")}
  export LOGS=$WORK/logs-$phase
  rm -rf "$LOGS" && mkdir -p "$LOGS"
  RESULT=() KIND=()
  t0=$(date +%s)
  echo "[gpu-check] phase $phase ($MODE), budget ${budget} s, logs in $LOGS"
  for line in "${steps[@]}"; do
    # shellcheck disable=SC2086
    set -- $line
    local name=$1 limit=$2 needs=$4 cmd
    [ "$MODE" = rehearse ] && limit=$3
    shift 4
    cmd="$*"
    local result kind took=0 start rc left=$((budget - ($(date +%s) - t0)))
    # kind: ok | skipped (no failure) | failed (ran and failed) | blocked (needs a step that failed or
    # was blocked) | budget (no time left); the last three fail the run.
    if [ -n "${LNFREE_GPU_CHECK_ONLY:-}" ] && ! list_has "$name" "$LNFREE_GPU_CHECK_ONLY"; then
      result="skipped: not in LNFREE_GPU_CHECK_ONLY" kind=skipped
    elif [ "$needs" != - ] && [[ "${KIND[$needs]:-}" =~ ^(failed|blocked)$ ]]; then
      result="skipped: needs $needs (${RESULT[$needs]%% (*})" kind=blocked
    elif ((left < 5 || limit < 5)); then
      result="skipped: budget spent (${budget} s)" kind=budget
    else
      ((limit > left)) && limit=$left
      if list_has "$name" "${LNFREE_GPU_CHECK_FAIL:-}"; then
        cmd='echo "planted failure (LNFREE_GPU_CHECK_FAIL)"; exit 1'
      elif list_has "$name" "${LNFREE_GPU_CHECK_HANG:-}"; then
        cmd='echo "planted hang (LNFREE_GPU_CHECK_HANG)"; exec sleep 100000'
      fi
      export STEP_SKIP_FILE=$LOGS/.$name.skip STEP_NOTE_FILE=$LOGS/.$name.note
      rm -f "$STEP_SKIP_FILE" "$STEP_NOTE_FILE"
      echo "[gpu-check] $phase: $name (at most ${limit} s)"
      start=$(date +%s)
      # bash -c: timeout runs programs, not the shell functions exported above.
      timeout -k 5 "$limit" bash -c "set -o pipefail; $cmd" > "$LOGS/$name.log" 2>&1 < /dev/null
      rc=$?
      took=$(($(date +%s) - start))
      if ((rc == 124 || rc == 137)); then
        result="TIMEOUT after ${limit} s" kind=failed
      elif ((rc != 0)); then
        result="FAILED (exit $rc)" kind=failed
      elif [ -f "$STEP_SKIP_FILE" ]; then
        result="skipped: $(cat "$STEP_SKIP_FILE")" kind=skipped
      else
        result=ok kind=ok
        [ -f "$STEP_NOTE_FILE" ] && result="ok ($(awk 'NR > 1 { printf "; " } { printf "%s", $0 }' "$STEP_NOTE_FILE"))"
      fi
      rm -f "$STEP_SKIP_FILE" "$STEP_NOTE_FILE"
      echo "[gpu-check] $phase: $name: $result in ${took} s"
    fi
    RESULT[$name]=$result
    KIND[$name]=$kind
    [[ $kind =~ ^(failed|blocked|budget)$ ]] && failures+=("$name")
    table+=("| $name | $result | $took | $limit |")
    # After the kit: its libraries and Open MPI for every later step (not in the rehearsal, whose
    # build links this machine's copies).
    if [ "$name" = kit ] && [ "$MODE" = gpu ] && [ -f "$KIT/env.sh" ]; then
      # shellcheck source=/dev/null
      source "$KIT/env.sh"
    fi
  done

  local report=$OUT/report-$phase.md total=$(($(date +%s) - t0))
  {
    echo "# lnfree GPU check, phase $phase$([ "$MODE" = rehearse ] && echo " (rehearsal on the CPU)"), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "commit $COMMIT, $(hostname 2>/dev/null || echo host), budget ${budget} s, total ${total} s"
    [ "$MODE" = rehearse ] && echo "rehearsal: build/ (CPU), --device cpu fp32, tiny shapes for the GPT-2 sizes"
    echo
    echo "| step | result | seconds | limit |"
    echo "|---|---|---|---|"
    printf '%s\n' "${table[@]}"
    echo
    if ((${#failures[@]})); then
      echo "RESULT: FAILED (${failures[*]})"
    else
      echo "RESULT: passed (every step that can run here)"
    fi
    bench_summary "$phase"
    echo
    echo "## Log tails (skipped steps: their reason above; all logs: logs-$phase.tar.gz)"
    for line in "${steps[@]}"; do
      # shellcheck disable=SC2086
      set -- $line
      local log=$LOGS/$1.log lines=6
      [ -f "$log" ] && [ "${KIND[$1]}" != skipped ] || continue
      [[ ${KIND[$1]} =~ ^(failed|blocked|budget)$ ]] && lines=30
      [ "$1" = probe ] && lines=40
      echo
      echo "### $1: ${RESULT[$1]}"
      echo '```'
      tail -n "$lines" "$log"
      echo '```'
    done
  } > "$report"
  # One archive of the step logs next to the report: $OUT must stay under the tool's 8 files.
  "$PYTHON" - "$OUT/logs-$phase.tar.gz" "$LOGS" <<'EOF' 2>/dev/null || tar -C "$WORK" -czf "$OUT/logs-$phase.tar.gz" "logs-$phase"
import os, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as archive:
    archive.add(sys.argv[2], arcname=os.path.basename(sys.argv[2]))
EOF
  echo "[gpu-check] phase $phase: $OUT/report-$phase.md, $OUT/logs-$phase.tar.gz"
  echo
  cat "$report"
  ((${#failures[@]} == 0))
}

# The bench steps' numbers side by side, and lnfree's speed-up over each peer per size.
bench_summary() {
  local phase=$1 line name log tok ms mfu mem any=0
  local -n steps=PHASE_$phase
  declare -A tokens=()
  for line in "${steps[@]}"; do
    name=${line%% *}
    case $name in bench-* | reference-* | careful-* | compile-*) ;; *) continue ;; esac
    log=$LOGS/$name.log
    [ "${KIND[$name]:-}" = ok ] && [ -f "$log" ] || continue
    tok=$(grep -oE 'tokens/s [0-9]+' "$log" | head -1 | cut -d' ' -f2)
    [ -n "$tok" ] || continue
    ms=$(grep -oE 'step [0-9.]+ ms' "$log" | head -1 | cut -d' ' -f2)
    mfu=$(grep -oE 'MFU [0-9.]+%' "$log" | head -1 | cut -d' ' -f2)
    mem=$(grep -oE 'peak memory .*' "$log" | head -1 | sed 's/^peak memory //')
    if ((any == 0)); then
      echo
      echo "## bench train and its peers (medians of steps $((WARMUP + 1))-$STEPS)"
      echo
      echo "| step | tokens/s | step ms | MFU | peak memory |"
      echo "|---|---|---|---|---|"
      any=1
    fi
    echo "| $name | $tok | $ms | $mfu | $mem |"
    tokens[$name]=$tok
  done
  ((any)) || return 0
  local size peer
  echo
  for size in gpt2 gpt2-medium gpt2-large gpt2-xl; do
    [ -n "${tokens[bench-$size]:-}" ] || continue
    for peer in reference careful compile; do
      [ -n "${tokens[$peer-$size]:-}" ] || continue
      awk -v s="$size" -v p="$peer" -v a="${tokens[bench-$size]}" -v b="${tokens[$peer-$size]}" \
        'BEGIN { printf "- %s: lnfree / %s = %.2fx%s\n", s, p, a / b, p == "reference" ? " (target >= 2x)" : "" }'
    done
  done
}

status=0
for phase in $PHASES; do
  run_phase "$phase" || status=1
done
exit "$status"
