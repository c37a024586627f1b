#!/usr/bin/env bash
# The test command: sets up a fresh machine (packages, data, Release build) and runs every test —
# the GoogleTest suites and the pytest checks against independent references — through CTest —
# then the robustness checks: ASan + UBSan unit tests and bounded fuzzing (docs/robustness.md).
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh
echo "[test] running CTest (GoogleTest + pytest)"
status=0
rm -f build/faults-summary.txt build/slurm-summary.txt
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@" || status=$?
launch/check-robustness.sh || status=$?
# The fault-injection suite's counts (tests/faults/) and what the SLURM suite ran (tests/slurm/), at
# the end where a reader looks.
[ -f build/faults-summary.txt ] && cat build/faults-summary.txt
[ -f build/slurm-summary.txt ] && cat build/slurm-summary.txt
exit "$status"
