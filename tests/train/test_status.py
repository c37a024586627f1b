"""`lnfree status` on the states a run can leave its folder in (complete, preempted by --stop-at, a
killed writer, running, diverged), on a folder of runs, its one-value form for scripts (--field),
and `lnfree train --resume=auto`, which starts a run in an empty folder and continues the one a
folder holds, bit for bit."""
import json
import os
import signal
import subprocess
import time

import numpy as np

from conftest import LNFREE, SOURCE, lnfree
from test_reliability import QUICK, read_log, train


def status(path, *extra, check=True):
    result = subprocess.run([LNFREE, "status", str(path), *extra], cwd=SOURCE, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def word(path):
    (run,) = json.loads(status(path, "--json").stdout)
    return run["status"], run["message"]


def test_status_of_each_way_a_run_ends(tmp_path, brown_tokens):
    study = tmp_path / "study"
    done, stopped, killed, diverged = (study / n for n in ("a/complete", "a/stopped", "b/killed", "b/diverged"))
    train(done)
    assert word(done)[0] == "complete"
    train(stopped, "--stop-at", 2)
    assert word(stopped) == ("preempted", "stopped after step 1 as asked (--stop-at)")
    env = dict(os.environ, LNFREE_DEBUG_DIE_AT_STEP="2", LNFREE_DEBUG_DIE_RANK="0")
    assert train(killed, env=env, check=False).returncode == -signal.SIGKILL
    state, message = word(killed)
    assert state == "failed" and "writer died" in message and "step-000002" in message, message
    train(diverged, "--set", "optim.lr=1e30", "--set", "optim.min_lr=0", check=False)
    assert word(diverged)[0] == "diverged"
    # The plain form the SLURM scripts read (slurm/lib.sh, run_status).
    assert status(diverged, "--field", "status").stdout == "diverged\n"
    assert status(stopped, "--field", "latest_checkpoint").stdout == f"{stopped / 'step-000002'}\n"
    text = status(study).stdout
    print(text)
    assert text.splitlines()[-1] == "4 runs: 1 complete, 1 diverged, 1 failed, 1 preempted"
    assert "a/stopped" in text and "newest checkpoint step-000002" in text
    assert status(tmp_path / "nothing", check=False).returncode == 1


def test_field_prints_one_value_and_none_where_no_run_is(tmp_path):
    assert status(tmp_path / "not-yet", "--field", "status").stdout == "none\n"
    assert status(tmp_path / "not-yet", "--field", "latest_checkpoint").stdout == "\n"  # null: an empty line
    unknown = status(tmp_path, "--field", "colour", check=False)
    assert unknown.returncode != 0 and "colour" in unknown.stderr
    assert status(tmp_path, "--field", "status", "--json", check=False).returncode != 0


def test_status_of_a_live_run_is_running(tmp_path, brown_tokens):
    run = tmp_path / "live"
    args = [LNFREE, "train", "--config", "configs/tiny/pretrain.toml", "--out", str(run), *QUICK,
            "--set", "data.steps=100000"]
    job = subprocess.Popen(args, cwd=SOURCE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run / "run.h5").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        state, _ = word(run)
        assert state == "running"
    finally:
        job.kill()
        job.wait()
    assert word(run)[0] == "failed"


def test_resume_auto_starts_or_continues(tmp_path, brown_tokens):
    whole, auto = tmp_path / "whole", tmp_path / "auto"
    train(whole)
    first = train(auto, "--resume=auto", "--stop-at", 2)
    assert "nothing to resume, starting" in first.stderr
    second = train(auto, "--resume=auto")
    assert "continuing the run there" in second.stderr
    a, b = read_log(whole), read_log(auto)
    for key in a:
        if key.startswith(("train/", "ln/", "events/", "eval/")) and key != "train/tokens_per_s":
            assert np.array_equal(a[key], b[key]), key
    assert word(auto)[0] == "complete"
    bad = lnfree("train", "--config", "configs/tiny/pretrain.toml", "--out", tmp_path / "x", "--resume=sometimes",
                 check=False)
    assert bad.returncode != 0 and "sometimes" in bad.stderr
