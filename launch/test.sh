#!/usr/bin/env bash
# The test command: sets up a fresh machine (packages, data, Release build) and runs every test —
# the GoogleTest suites and the pytest checks against independent references — through CTest —
# then the GPU check's rehearsal on the CPU (docs/gpu-check.md), then the robustness checks: ASan +
# UBSan unit tests and bounded fuzzing (docs/robustness.md).
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh
echo "[test] running CTest (GoogleTest + pytest)"
status=0
rm -f build/faults-summary.txt build/slurm-summary.txt
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@" || status=$?
# The GPU machine's prepared check, rehearsed here (docs/gpu-check.md): the same driver and steps on
# the CPU build, what needs a GPU reported as skipped; it prints its reports.
echo "[test] rehearsing launch/gpu-check.sh"
bash launch/gpu-check.sh --rehearse || status=$?
launch/check-robustness.sh || status=$?
# The fault-injection suite's counts (tests/faults/) and what the SLURM suite ran (tests/slurm/), at
# the end where a reader looks.
[ -f build/faults-summary.txt ] && cat build/faults-summary.txt
[ -f build/slurm-summary.txt ] && cat build/slurm-summary.txt
exit "$status"
