"""Trainer-level timing of LN removal, checked on the run logs of tiny runs that differ in one
thing each (independent of the schedule code: the expectations come from the configs' numbers):
- an event at step S changes the update of step S, not S-1 or S+1;
- the frozen sigma is the value after step S-1's statistics (the divisor stops moving at S);
- evaluation forwards leave sigma alone (the reference updated it in eval too, spec §1.5 item 5)."""
import h5py
import numpy as np
import pytest

from conftest import lnfree

CONFIG = """
[run]
mode = "remove-ln"
seed = 4
init = "configs/models/tiny-2x64.toml"
device = "cpu"
threads = 1
[data]
train = "data/tokens/brown/manifest.json"
seq_len = 32
micro_batch = 4
tokens_per_step = 256
steps = 10
[optim]
lr = 3e-3
min_lr = 1e-3
warmup = 2
[ln]
momentum = 0.8
[schedule.ln2]
start = {ln2}
gap = 0
[schedule.ln1qk]
start = 6
gap = 0
[schedule.ln1v]
start = 7
gap = 0
[schedule.lnf]
start = 8
[eval]
interval = {eval_interval}
sets = ["data/tokens/brown/manifest.json:val"]
max_windows = 4
batch = 4
[checkpoint]
interval = 0
keep = 1
[log]
interval = 1
"""

S = 4  # the ln2 removal step of run "a"


def train(root, name, ln2=S, eval_interval=0):
    config = root / f"{name}.toml"
    config.write_text(CONFIG.format(ln2=ln2, eval_interval=eval_interval))
    lnfree("train", "--config", config, "--out", root / name)
    with h5py.File(root / name / "run.h5", "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f["ln"].attrs["names"]]
        return {"step": f["train/step"][:], "loss": f["train/loss"][:], "ln_step": f["ln/step"][:],
                "sigma": f["ln/sigma"][:], "fake": f["ln/fake"][:], "names": names}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, brown_tokens):
    root = tmp_path_factory.mktemp("timing")
    return {"a": train(root, "a"), "later": train(root, "later", ln2=S + 1),
            "evaluated": train(root, "evaluated", eval_interval=1)}


def test_an_event_at_step_s_changes_the_update_of_step_s(runs):
    a, later = runs["a"], runs["later"]
    assert list(a["step"]) == list(range(10))
    print("train loss, ln2 at 4 vs at 5:", [f"{x:.6f}/{y:.6f}" for x, y in zip(a["loss"], later["loss"])])
    np.testing.assert_array_equal(a["loss"][:S], later["loss"][:S])  # identical up to step S-1
    assert a["loss"][S] != later["loss"][S]  # the removal already acts in step S's forwards


def test_the_frozen_sigma_is_the_value_after_step_s_minus_1(runs):
    a = runs["a"]
    rows = {int(s): i for i, s in enumerate(a["ln_step"])}
    for col, name in enumerate(a["names"]):
        if not name.endswith("ln_2"):
            continue
        sigma = a["sigma"][:, col]
        print(f"{name}: sigma by step {np.array2string(sigma, precision=6)}")
        assert sigma[rows[S - 2]] != sigma[rows[S - 1]]  # it was still tracking at step S-1
        for step in range(S, 10):
            assert sigma[rows[step]] == sigma[rows[S - 1]], (name, step)  # frozen from step S on
        assert not a["fake"][rows[S - 1], col, 0] and a["fake"][rows[S], col, 0]


def test_evaluation_forwards_leave_sigma_alone(runs):
    a, evaluated = runs["a"], runs["evaluated"]
    np.testing.assert_array_equal(a["sigma"], evaluated["sigma"])
    np.testing.assert_array_equal(a["loss"], evaluated["loss"])
