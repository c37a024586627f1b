"""Issue 10's defects, each with a test that failed before its fix: a resume under a changed config
names the keys (and --allow-change lets named ones through), a checkpoint written under another
config is refused, an id beyond the shard's vocabulary is reported with its file and offset, an
error leaves run.h5 "failed" with its message, data from another tokenizer is refused, partial
checkpoint folders of dead writers are removed, `lnfree config` refuses what `train` refuses, a
failed start writes no config.toml, `prepare` refuses an empty corpus, and SIGINT checkpoints and
exits 75 (status "preempted"), a second SIGINT ending the process at once; and
optim.on_divergence = "rollback" (returns to the checkpoint, lowers the learning rate, gives up
after max_rollbacks, resumes bitwise after a kill)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import LNFREE, SOURCE, lnfree

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "parallel"))
from dist_helpers import read_log  # noqa: E402

BROWN = os.path.join(SOURCE, "data", "tokens", "brown")
QUICK = ["--set", "data.steps=4", "--set", "optim.warmup=1", "--set", "checkpoint.interval=2", "--set", "eval.interval=0",
         "--set", "eval.max_windows=2", "--set", "log.interval=1"]


def train(out, *extra, check=True, env=None):
    args = [LNFREE, "train", "--config", "configs/tiny/pretrain.toml", "--out", str(out), *QUICK, *map(str, extra)]
    result = subprocess.run(args, cwd=SOURCE, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def status(run):
    with h5py.File(run / "run.h5", "r") as f:
        text = lambda name: f[name][()].decode().rstrip("\0") if isinstance(f[name][()], bytes) else str(f[name][()])
        return text("status"), text("status_message")


def copy_brown(tmp_path):
    target = tmp_path / "brown"
    shutil.copytree(BROWN, target)
    return target


def no_backtrace(stderr):
    assert "frame #" not in stderr and "Exception raised from" not in stderr, stderr


def test_resume_with_a_changed_config_names_the_keys_and_allows_named_changes(tmp_path):
    run = tmp_path / "run"
    train(run, "--stop-at", 2)
    refused = train(run, "--resume", "--set", "optim.lr=2e-3", check=False)
    assert refused.returncode == 1
    assert "optim.lr: 0.01 -> 0.002" in refused.stderr and "--allow-change optim.lr" in refused.stderr, refused.stderr
    train(run, "--resume", "--set", "data.steps=6", "--allow-change", "data.steps")
    changes = json.loads((run / "config-changes.json").read_text())
    assert changes[0]["changes"] == [{"key": "data.steps", "before": "4", "after": "6"}]
    assert "steps = 6" in (run / "config.toml").read_text()
    with h5py.File(run / "run.h5", "r") as f:
        assert f["train/step"][-1] == 5


def test_a_checkpoint_written_under_another_config_is_refused(tmp_path):
    run = tmp_path / "run"
    train(run, "--stop-at", 2)
    # A second writer replaced config.toml (what the lock now prevents): lr 3e-3 checkpoints, 2e-3 config.
    other = tmp_path / "other"
    train(other, "--set", "optim.lr=2e-3", "--stop-at", 1)
    shutil.copy(other / "config.toml", run / "config.toml")
    refused = train(run, "--resume", "--set", "optim.lr=2e-3", check=False)
    assert refused.returncode == 1 and "was written under config hash" in refused.stderr, refused.stderr


def test_a_token_id_beyond_the_vocabulary_names_the_shard_and_offset(tmp_path):
    data = copy_brown(tmp_path)
    shard = data / "train-00000.bin"
    tokens = np.frombuffer(shard.read_bytes()[256:], dtype="<u2").copy()
    tokens[::64] = 60000  # every window of the run holds one
    shard.write_bytes(shard.read_bytes()[:256] + tokens.tobytes())
    result = train(tmp_path / "run", "--set", f"data.train={data}/manifest.json", "--set", "eval.sets=", check=False)
    assert result.returncode == 1, result.stderr
    assert str(shard) in result.stderr and "is id 60000" in result.stderr and "vocab_size 50257" in result.stderr
    no_backtrace(result.stderr)
    assert status(tmp_path / "run")[0] == "failed"


def test_an_error_leaves_the_run_failed_with_its_message(tmp_path):
    env = dict(os.environ, LNFREE_DEBUG_DIE_AT_STEP="2", LNFREE_DEBUG_DIE_RANK="0", LNFREE_DEBUG_DIE_MODE="throw")
    result = train(tmp_path / "run", check=False, env=env)
    assert result.returncode == 1
    state, message = status(tmp_path / "run")
    assert state == "failed" and "failing at step 2" in message, (state, message)


def test_data_from_another_tokenizer_is_refused(tmp_path):
    data = copy_brown(tmp_path)
    manifest = json.loads((data / "manifest.json").read_text())
    real = manifest["tokenizer"]["hash"]
    fake = "917aad00917aad00"
    manifest["tokenizer"]["hash"] = fake
    (data / "manifest.json").write_text(json.dumps(manifest))
    for split in ("train", "val"):
        for entry in manifest["splits"][split]["shards"]:
            path = data / entry["file"]
            raw = bytearray(path.read_bytes())
            raw[32:32 + len(fake)] = fake.encode()
            path.write_bytes(bytes(raw))
    result = train(tmp_path / "run", "--set", f"data.train={data}/manifest.json", check=False)
    assert result.returncode == 1 and "tokenizer.hash" in result.stderr and real in result.stderr, result.stderr
    assert not (tmp_path / "run" / "config.toml").exists()
    result = lnfree("eval", "--model", "configs/models/tiny-2x64.toml", "--data", f"{data}/manifest.json:val",
                    check=False)
    assert result.returncode == 1 and "tokenizer.hash" in result.stderr, result.stderr


def test_partial_checkpoints_of_a_dead_writer_are_removed_on_resume(tmp_path):
    run = tmp_path / "run"
    train(run, "--stop-at", 2)
    stale = run / ".step-000004.tmp-999999"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")
    result = train(run, "--resume")
    assert not stale.exists() and "removed 1 partial checkpoint folder" in result.stderr, result.stderr


def test_config_refuses_what_train_refuses_and_a_failed_start_writes_nothing(tmp_path):
    bad = ["--set", "data.steps=20"]  # configs/smoke.toml's lnf event is at step 24
    result = lnfree("config", "--config", "configs/smoke.toml", *bad, check=False)
    assert result.returncode == 1 and "schedule.lnf.start" in result.stderr and "data.steps = 20" in result.stderr, \
        result.stderr
    result = lnfree("config", "--config", "configs/smoke.toml", "--set", "eval.sets=missing/manifest.json:val",
                    check=False)
    assert result.returncode == 1 and "missing/manifest.json" in result.stderr, result.stderr
    out = tmp_path / "run"
    result = lnfree("train", "--config", "configs/smoke.toml", "--out", out, "--set",
                    "eval.sets=missing/manifest.json:val", check=False)
    assert result.returncode == 1 and not (out / "config.toml").exists() and not (out / "run.h5").exists()


def test_prepare_refuses_an_empty_corpus(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "empty.txt").write_text("")
    result = lnfree("prepare", "--source", f"text:{tmp_path / 'docs'}", "--out", tmp_path / "tokens", check=False)
    assert result.returncode == 1 and "no document" in result.stderr, result.stderr
    assert not (tmp_path / "tokens" / "manifest.json").exists()


def test_sigint_checkpoints_and_exits_75_and_a_second_one_ends_at_once(tmp_path):
    run = tmp_path / "run"
    # Steps of 8k tokens (a second or more each): the second signal surely lands within a step.
    args = [LNFREE, "train", "--config", "configs/tiny/pretrain.toml", "--out", str(run), "--set", "data.steps=400",
            "--set", "data.tokens_per_step=8192", "--set", "log.interval=1", "--set", "eval.interval=0",
            "--set", "eval.max_windows=2"]
    log = tmp_path / "stderr"
    job = subprocess.Popen(args, cwd=SOURCE, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    deadline = time.monotonic() + 120
    while "step      1/" not in log.read_text() and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.1)
    job.send_signal(signal.SIGINT)
    assert job.wait(timeout=60) == 75, log.read_text()[-2000:]
    assert status(run)[0] == "preempted"
    assert any(p.startswith("step-") for p in os.listdir(run))
    # Resumed, then interrupted twice: the second SIGINT ends the process without its checkpoint.
    job = subprocess.Popen(args + ["--resume"], cwd=SOURCE, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    while "resuming" not in log.read_text() and job.poll() is None:
        time.sleep(0.05)
    job.send_signal(signal.SIGINT)
    time.sleep(0.3)  # two signals at once would merge into one pending signal
    job.send_signal(signal.SIGINT)
    assert job.wait(timeout=30) == -signal.SIGINT


def test_divergence_is_caught_at_its_step_before_any_checkpoint_holds_it(tmp_path):
    # lr 1e30: step 0's update blows the weights up, step 1's loss is not finite. Logging every 5
    # steps and checkpointing every 2, the old check (at log steps only) saved step 2's NaN weights.
    run = tmp_path / "run"
    result = train(run, "--set", "optim.lr=1e30", "--set", "optim.min_lr=0", "--set", "data.steps=8",
                   "--set", "log.interval=5", check=False)
    assert result.returncode != 0
    state, message = status(run)
    assert state == "diverged", (state, message)
    first = int(message.split("diverged at step ")[1].split(":")[0])
    assert first < 4, message  # found at its own step, not at the log step (step 4)
    assert (run / "DIVERGED").exists()
    # A checkpoint "step-N" holds the weights after step N-1: every one must predate the bad step.
    saved = [int(p.split("-")[1]) for p in os.listdir(run) if p.startswith("step-")]
    assert all(n <= first for n in saved), (saved, message)


# optim.on_divergence = "rollback". lr 2^100 blows the tiny model up in step 1, and step 2's loss is
# not finite; the checkpoint after step 1 (step-000002) holds finite weights that no learning rate
# saves. So the first rollback (to step-000002, lr x 2^-55) diverges again at once, and the second
# goes one checkpoint further back, to the step-0 one that rollback mode writes, at lr x 2^-110 =
# 2^-10 in all. With min_lr = 0 the schedule scales exactly by powers of two, so the run must then
# equal, bit for bit, a run that used lr 2^-10 from the start: the restore is exact.
ROLLBACK = ["--set", "optim.min_lr=0", "--set", "optim.on_divergence=rollback", "--set", "data.steps=6",
            "--set", "data.seq_len=64", "--set", "data.tokens_per_step=512",
            "--set", "checkpoint.keep=3"]
RECOVERS = [*ROLLBACK, "--set", f"optim.lr={2.0 ** 100!r}", "--set", f"optim.rollback_lr_factor={2.0 ** -55!r}"]


def newest(run):
    return run / sorted(p for p in os.listdir(run) if p.startswith("step-"))[-1]


def assert_same_run(a_dir, b_dir):
    a, b = read_log(a_dir), read_log(b_dir)
    for key in a:
        if key.startswith(("train/", "ln/", "events/", "eval/")) and key != "train/tokens_per_s":
            assert np.array_equal(a[key], b[key]), key
    assert newest(a_dir).name == newest(b_dir).name
    for name in ("model.safetensors", "optimizer.safetensors"):
        assert (newest(a_dir) / name).read_bytes() == (newest(b_dir) / name).read_bytes(), name


def test_rollback_returns_to_a_checkpoint_and_continues_at_the_lower_learning_rate(tmp_path):
    rolled, plain = tmp_path / "rolled", tmp_path / "plain"
    result = train(rolled, *RECOVERS)
    assert result.stderr.count("rolled back to") == 2, result.stderr[-3000:]
    train(plain, *ROLLBACK, "--set", f"optim.lr={2.0 ** -10!r}")
    log = read_log(rolled)
    assert log["status"] == "complete"
    # One row: the first rollback's went with the history the second abandoned (its count says 2).
    assert list(log["rollbacks/step"]) == [-1], log
    assert list(log["rollbacks/lr_scale"]) == [2.0 ** -110] and list(log["rollbacks/rollbacks"]) == [2]
    assert list(log["train/step"]) == list(range(6))  # the diverged attempts' rows are gone
    assert_same_run(plain, rolled)
    state = json.loads((newest(rolled) / "state.json").read_text())
    assert state["lr_scale"] == 2.0 ** -110 and state["rollbacks"] == 2


def test_rollback_gives_up_after_max_rollbacks_and_records_them(tmp_path):
    run = tmp_path / "run"
    result = train(run, *ROLLBACK, "--set", "optim.lr=1e30", "--set", "optim.rollback_lr_factor=0.5",
                   "--set", "optim.max_rollbacks=3", check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    no_backtrace(result.stderr)
    state, message = status(run)
    assert state == "diverged" and "after 3 rollbacks" in message, (state, message)
    log = read_log(run)
    # To step-000002, further back to step-000000 (lr x0.25 still diverges, and writes a new
    # step-000002), then to that new one: rows of the last two.
    assert list(log["rollbacks/step"]) == [-1, 1], log
    assert list(log["rollbacks/lr_scale"]) == [0.25, 0.125] and list(log["rollbacks/rollbacks"]) == [2, 3]


def test_a_run_killed_after_a_rollback_resumes_bitwise_identical(tmp_path):
    # The checkpoint at step 2 is written after the rollbacks: it must carry the lowered learning
    # rate (and the rollback count), or the resumed run diverges again and differs.
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train(whole, *RECOVERS)
    env = dict(os.environ, LNFREE_DEBUG_DIE_AT_STEP="3", LNFREE_DEBUG_DIE_RANK="0")
    assert train(killed, *RECOVERS, env=env, check=False).returncode == -signal.SIGKILL
    resumed = train(killed, *RECOVERS, "--resume")
    assert "rolled back" not in resumed.stderr, resumed.stderr[-2000:]
    assert_same_run(whole, killed)
    a, b = read_log(whole), read_log(killed)
    assert all(np.array_equal(a[k], b[k]) for k in a if k.startswith("rollbacks/"))
