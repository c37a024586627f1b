#!/usr/bin/env bash
# The test command: sets up a fresh machine (packages, data, Release build) and runs every test —
# the GoogleTest suites and the pytest checks against independent references — through CTest —
# then the robustness checks: ASan + UBSan unit tests and bounded fuzzing (docs/robustness.md).
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh
echo "[test] running CTest (GoogleTest + pytest)"
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
launch/check-robustness.sh
