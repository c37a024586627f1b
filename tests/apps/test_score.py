"""`lnfree score` against an independent float64 numpy forward (tests/ref/gpt2_numpy.py)."""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from ref import gpt2_numpy  # noqa: E402

LNFREE = os.environ.get("LNFREE_BINARY", "build/lnfree")
SHAPE = """[model]
n_layer = 3
n_embd = 48
n_head = 4
n_positions = 64
vocab_size = 50257
"""


def test_score_matches_float64_reference(tmp_path):
    (tmp_path / "shape.toml").write_text(SHAPE)
    model_dir = tmp_path / "model"
    subprocess.run([LNFREE, "init", "--model", str(tmp_path / "shape.toml"), "--seed", "7", "--out", str(model_dir)],
                   check=True)
    # Replace GPT-2's small initial weights by larger random ones (written by the reference's own
    # safetensors writer, with the transformer. prefix), so that logits are far from uniform and
    # an error in any part of the forward shows in the loss.
    rng = np.random.default_rng(0)
    _, initial = gpt2_numpy.load(model_dir)
    scaled = {"transformer." + k: rng.normal(0.0, 0.3 if "ln_" not in k else 1.0, v.shape) for k, v in initial.items()}
    gpt2_numpy.write_safetensors(model_dir / "model.safetensors", scaled)
    config, weights = gpt2_numpy.load(model_dir)
    lines = [rng.integers(0, 50257, size=n).tolist() for n in (2, 5, 17, 64, 65)]
    text = "\n".join(" ".join(map(str, ids)) for ids in lines) + "\n"
    out = subprocess.run([LNFREE, "score", "--model", str(model_dir)], input=text, capture_output=True, text=True,
                         check=True).stdout.split()
    assert len(out) == len(lines)
    worst = 0.0
    for ids, got in zip(lines, out):
        expected = gpt2_numpy.mean_next_token_ce(config, weights, ids)
        rel = abs(float(got) - expected) / abs(expected)
        worst = max(worst, rel)
        assert len(got.replace(".", "").replace("-", "").lstrip("0")) >= 7, got
    print(f"score vs float64 numpy reference: worst relative error {worst:.3g} over {len(lines)} lines")
    assert worst < 1e-5


def test_score_rejects_bad_input(tmp_path):
    (tmp_path / "shape.toml").write_text(SHAPE)
    for bad, needle in (("1\n", "at least 2"), ("1 2 x\n", "line 1"), ("3 50257\n", "50257")):
        r = subprocess.run([LNFREE, "score", "--model", str(tmp_path / "shape.toml"), "--random-init", "1"],
                           input=bad, capture_output=True, text=True)
        assert r.returncode == 1, r
        assert needle in r.stderr, r.stderr


def test_score_refuses_a_model_without_weights_unless_asked(tmp_path):
    (tmp_path / "shape.toml").write_text(SHAPE)
    r = subprocess.run([LNFREE, "score", "--model", str(tmp_path / "shape.toml")], input="1 2\n",
                       capture_output=True, text=True)
    assert r.returncode == 1 and "--random-init" in r.stderr
