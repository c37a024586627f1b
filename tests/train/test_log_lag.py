"""The training loop reads its log values back from the device a log step late on CUDA
(train/step_metrics.h), so that the host never waits for the GPU between steps. The lagged rows must
be the rows an immediate read gives: this runs the CUDA path's lag on the CPU (LNFREE_DEBUG_LOG_LAG)
and compares run.h5 and the checkpoints bit for bit with the CPU's immediate read, for a plain LN
removal and for a run that diverges and rolls back (where the divergence is seen one log step
later, but before the checkpoint that would hold it)."""
import os
import re
import subprocess

import numpy as np

from conftest import LNFREE, SOURCE
from test_reliability import RECOVERS, assert_same_run, read_log, train


def smoke(out, lag):
    env = dict(os.environ, LNFREE_DEBUG_LOG_LAG=str(lag))
    args = [LNFREE, "train", "--config", "configs/smoke.toml", "--out", str(out), "--set", "log.interval=1"]
    result = subprocess.run(args, cwd=SOURCE, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    # The step lines without their timing (tokens/s, ETA).
    return [re.sub(r" \S+ tok/s.*", "", line.split("] ", 1)[-1]) for line in result.stderr.splitlines()
            if "] step " in line]


def test_lagged_log_rows_equal_the_immediate_ones(tmp_path, brown_tokens):
    lines = {lag: smoke(tmp_path / f"lag{lag}", lag) for lag in (0, 1, 3)}
    a = read_log(tmp_path / "lag0")
    for lag in (1, 3):
        b = read_log(tmp_path / f"lag{lag}")
        for key in a:
            if key.startswith(("train/", "ln/", "events/", "eval/")) and key != "train/tokens_per_s":
                assert np.array_equal(a[key], b[key]), (lag, key)
        assert lines[lag] == lines[0], lag  # the same step lines (but tok/s), in step order
        for name in ("model.safetensors", "optimizer.safetensors"):
            last = f"step-000036/{name}"
            assert (tmp_path / "lag0" / last).read_bytes() == (tmp_path / f"lag{lag}" / last).read_bytes()
    print(f"log lag 0, 1, 3: {len(a['train/step'])} identical train rows, {a['ln/sigma'].shape} sigma table, "
          f"{len(lines[0])} identical step lines, identical final checkpoints")


def test_a_lagged_divergence_rolls_back_to_the_same_checkpoint(tmp_path, brown_tokens):
    immediate, lagged = tmp_path / "immediate", tmp_path / "lagged"
    train(immediate, *RECOVERS)
    result = train(lagged, *RECOVERS, env=dict(os.environ, LNFREE_DEBUG_LOG_LAG="1"))
    assert result.stderr.count("rolled back to") == 2, result.stderr[-3000:]
    assert_same_run(immediate, lagged)
    a, b = read_log(immediate), read_log(lagged)
    for key in ("rollbacks/step", "rollbacks/lr_scale", "rollbacks/rollbacks"):
        assert np.array_equal(a[key], b[key]), key
    print("divergence with log lag 1: two rollbacks, then the immediate-read run bit for bit")
