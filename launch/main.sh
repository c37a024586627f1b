#!/usr/bin/env bash
# The main job: sets up a fresh machine, then runs the default scaling study (configs/study/tiny.toml)
# on 2 CPU cores: four tiny GPT-2 models pretrained with LayerNorm on the Brown corpus (cached in
# runs/cache after the first run), each fine-tuned as a vanilla control and through LayerNorm removal
# at three schedule speeds, then analysed: tokens needed per size, the fitted exponent with its
# interval and verdict, and plots. Re-running continues the study in runs/study-tiny (finished runs
# are skipped); delete that folder to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh
exec build/lnfree study --config configs/study/tiny.toml --out runs/study-tiny "$@"
