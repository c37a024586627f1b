#!/usr/bin/env bash
# The one command for the GPU machine (one H200, PyTorch + CUDA pip wheels, nvcc, CMake, ninja,
# transformers; no apt, no network). Needs the kit that launch/gpu-kit.sh packs here:
#   run (carry .gpu-kit/kit.tar.xz):  bash launch/gpu-check.sh
# Steps, each under `timeout`, each writing $OUT/<step>.log; one report, $OUT/report.md:
#   probe      GPU, driver, torch, CUDA, cuDNN, NCCL, nvcc, cmake, ninja
#   kit        unpack the kit (Debian's HDF5, spdlog, fmt, toml++, CLI11, nlohmann-json, ICU, GTest,
#              Open MPI, compression libraries; the Brown shards)
#   configure  CMake with the wheel's LibTorch, cuDNN and NCCL, the kit for everything else
#   build      lnfree and the LibTorch test suite, -j16
#   gpu-tests  CUDA vs CPU forward/backward of a small GPT-2 in fp32; a 1-rank NCCL world with the
#              during-backward gradient reducer (one GPU cannot host two NCCL ranks)
#   smoke-bf16 the smoke LN removal on cuda in bf16, through every removal event, evaluated
#   score      lnfree score vs transformers on random-init GPT2LMHeadModels (gpt2, gpt2-medium)
#   bench-*    lnfree bench train per GPT-2 size, then the PyTorch peers on the same shapes
# The whole run stays inside LNFREE_GPU_CHECK_BUDGET_S (default 500 s): a step that would run past
# it gets the time left, and later steps are skipped and marked so.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
REPORT=$OUT/report.md
BUDGET=${LNFREE_GPU_CHECK_BUDGET_S:-500}
KIT_TAR=${LNFREE_KIT:-$ROOT/.gpu-kit/kit.tar.xz}
KIT=${TMPDIR:-/tmp}/lnfree-kit
BUILD=$ROOT/build-gpu
T0=$(date +%s)

{
  echo "# lnfree GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "commit $(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown), budget ${BUDGET} s"
  echo
  echo "| step | result | seconds |"
  echo "|---|---|---|"
} > "$REPORT"
DETAILS=$OUT/details.md
: > "$DETAILS"

# step NAME LIMIT_S COMMAND...: runs COMMAND under timeout (at most the budget left), logs it, and
# records the result; returns COMMAND's status (124 on timeout).
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - ($(date +%s) - T0)))
  ((limit > left)) && limit=$left
  if ((limit < 5)); then
    echo "| $name | skipped: budget spent | 0 |" >> "$REPORT"
    return 125
  fi
  local start rc
  start=$(date +%s)
  echo "[gpu-check] $name (at most ${limit} s)"
  timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  local took=$(($(date +%s) - start)) result="ok"
  ((rc == 124)) && result="TIMEOUT after ${limit} s"
  ((rc != 0 && rc != 124)) && result="FAILED (exit $rc)"
  echo "| $name | $result | $took |" >> "$REPORT"
  {
    echo "## $name: $result"
    echo '```'
    tail -n "${TAIL_LINES:-25}" "$OUT/$name.log"
    echo '```'
  } >> "$DETAILS"
  echo "[gpu-check] $name: $result in ${took} s"
  return $rc
}

finish() {
  { echo; echo "total $(($(date +%s) - T0)) s"; echo; cat "$DETAILS"; } >> "$REPORT"
  rm -f "$DETAILS"
  echo "[gpu-check] report: $REPORT"
  exit "${1:-0}"
}

probe() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "nccl", ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else "-")
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
print("cmake prefix", torch.utils.cmake_prefix_path)
EOF
  nvcc --version | tail -2
  cmake --version | head -1
  ninja --version
  python3 -c "import transformers, safetensors; print('transformers', transformers.__version__)"
}

unpack_kit() {
  [ -f "$KIT_TAR" ] || { echo "no kit at $KIT_TAR: run launch/gpu-kit.sh on a Debian 12 machine and carry it"; return 1; }
  rm -rf "$KIT" && mkdir -p "$KIT" && tar -C "$KIT" -xJf "$KIT_TAR" && du -sh "$KIT"
  # The configs name data/tokens/brown relative to the repository: the kit's shards.
  [ -e "$ROOT/data" ] || ln -s "$KIT/data" "$ROOT/data"
  ls "$ROOT/data/tokens/brown/manifest.json"
}

configure() {
  local torch_prefix cudnn
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') || return 1
  # The cuDNN wheel ships lib/libcudnn.so.9 and include/ but no libcudnn.so: name both for Caffe2's
  # FindCUDNN. NCCL's wheel (site-packages/nvidia/nccl) is found by src/parallel/CMakeLists.txt.
  cudnn=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])') || return 1
  TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} cmake -S "$ROOT" -B "$BUILD" -G Ninja \
    -DTorch_DIR="$torch_prefix/Torch" -C "$KIT/kit.cmake" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" -DCUDNN_LIBRARY_PATH="$cudnn/lib/libcudnn.so.9" \
    -DCUDNN_INCLUDE_PATH="$cudnn/include" -DLNFREE_WITH_NCCL=ON -DLNFREE_WITH_MPI=ON -DLNFREE_BUILD_TESTS=ON
}

build() { cmake --build "$BUILD" -j16 --target lnfree lnfree_torch_tests; }

gpu_tests() {
  local log=$OUT/gpu-tests.gtest.txt rc
  "$BUILD/tests/lnfree_torch_tests" --gtest_filter='Gpt2Cuda.*:NcclWorldOfOne.*' > "$log" 2>&1
  rc=$?
  cat "$log"
  ((rc == 0)) || return $rc
  if grep -q "SKIPPED \[" "$log"; then echo "a GPU test was skipped: LibTorch sees no CUDA device"; return 1; fi
}

smoke_bf16() {
  local run=${TMPDIR:-/tmp}/lnfree-smoke-bf16
  rm -rf "$run"
  # The smoke config evaluates on Brown's val split at its end; run.h5 holds every removal event.
  "$BUILD/lnfree" train --config configs/smoke.toml --out "$run" --set run.device=cuda --set run.precision=bf16
}

bench() {  # bench SIZE MICRO_BATCH: lnfree, then its peers, the same shape and step
  local size=$1 mb=$2 common
  common=(--model "$size" --micro-batch "$mb" --seq-len 1024 --steps 12 --warmup 4 --device cuda --precision bf16)
  "$BUILD/lnfree" bench train "${common[@]}" || return 1
  for mode in careful compile reference; do
    python3 launch/peers/train_step_peer.py --mode "$mode" "${common[@]}" || echo "peer $mode failed"
  done
}

step probe 60 probe
step kit 60 unpack_kit || finish 1
# shellcheck source=/dev/null
source "$KIT/env.sh"
step configure 90 configure || finish 1
step build 300 build || finish 1
step gpu-tests 60 gpu_tests
step smoke-bf16 90 smoke_bf16
step score 90 python3 launch/peers/hf_score_check.py --lnfree "$BUILD/lnfree" --sizes gpt2 gpt2-medium
step bench-gpt2 60 bench gpt2 16
step bench-gpt2-xl 90 bench gpt2-xl 8
step bench-gpt2-medium 45 bench gpt2-medium 16
step bench-gpt2-large 45 bench gpt2-large 8
finish 0
