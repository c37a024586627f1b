"""Training with RMSNorm (issue 24, docs/normalization.md).

1. `run.norm = "rmsnorm"` on a Pre-LN model is the Pre-LN run: every LayerNorm becomes an RMSNorm and
   every write to the residual stream is centred inside the forward, with the tied embedding kept
   tied, so the gradients with respect to the raw parameters, AdamW and weight decay are those of
   the Pre-LN model. configs/smoke.toml (removal events from step 4, the final LN at step 24) is run
   with and without it from the same initialisation; the per-step losses must agree to
   LOSS_TOLERANCE up to the final-LN event (the worst after it is printed and bounded too).
   Measured once with the in-forward centring disabled (2026-12-08): 2.3e-3 before the final-LN
   event and 4e-2 after it, so the test fails without the centring.
2. An RMSNorm model pretrained from scratch (Llama-style: nothing centred) goes through FakeRMSNorm
   removal; its folded export scores what the run's checkpoint scores (1e-5), has no normalisation
   tensor, and the hf export is refused (transformers' GPT-2 would centre its stream).
"""
import json
import os
import sys

import h5py
import numpy as np
import pytest

from conftest import SOURCE, lnfree

sys.path.insert(0, os.path.join(SOURCE, "tests"))
from ref import gpt2_numpy  # noqa: E402

LOSS_TOLERANCE = 1e-4  # relative, every step up to the final-LN event
SMOKE = ["--config", "configs/smoke.toml", "--set", "eval.interval=0", "--set", "eval.sets=", "--set",
         "checkpoint.interval=0", "--set", "run.threads=1"]
VAL = "data/tokens/brown/manifest.json:val"


def train_log(out):
    with h5py.File(out / "run.h5", "r") as f:
        assert f["status"].asstr()[()] == "complete"
        events = {int(s): k for s, k in zip(f["events/step"][:], f["events/kind"].asstr()[:])}
        return {"step": f["train/step"][:], "loss": f["train/loss"][:], "events": events,
                "sigma_step": f["ln/step"][:], "sigma": f["ln/sigma"][:],
                "norm": f.attrs["norm"], "centre_writes": int(f.attrs["centre_writes"])}


def test_rmsnorm_run_from_a_pre_ln_init_is_the_pre_ln_run(tmp_path):
    lnfree("init", "--model", "configs/models/tiny-2x64.toml", "--seed", 5, "--out", tmp_path / "init")
    init = ["--set", f"run.init={tmp_path / 'init'}"]
    lnfree("train", *SMOKE, *init, "--out", tmp_path / "ln")
    lnfree("train", *SMOKE, *init, "--set", 'run.norm="rmsnorm"', "--out", tmp_path / "rms")
    ln, rms = train_log(tmp_path / "ln"), train_log(tmp_path / "rms")
    assert (ln["norm"], ln["centre_writes"]) == ("layernorm", 0)
    assert (rms["norm"], rms["centre_writes"]) == ("rmsnorm", 1)
    assert np.array_equal(ln["step"], rms["step"])
    final_ln = min(s for s, k in ln["events"].items() if k == "lnf")
    rel = np.abs(rms["loss"] - ln["loss"]) / np.abs(ln["loss"])
    before, after = rel[ln["step"] < final_ln], rel[ln["step"] >= final_ln]
    print(f"\nrun.norm=rmsnorm vs Pre-LN, smoke config ({len(rel)} steps, final LN at step {final_ln}): worst "
          f"relative loss difference {before.max():.3g} before the final-LN event, {after.max():.3g} from it on")
    assert before.max() < LOSS_TOLERANCE, rel
    assert after.max() < 10 * LOSS_TOLERANCE, rel
    # σ tracks the RMSNorm statistic sqrt(mean x^2 + eps) on the centred stream: the LayerNorm one.
    assert np.array_equal(ln["sigma_step"], rms["sigma_step"])
    sigma_rel = np.abs(rms["sigma"] - ln["sigma"]) / np.abs(ln["sigma"])
    sigma_before = sigma_rel[ln["sigma_step"] < final_ln]
    print(f"σ rows: worst relative difference {sigma_before.max():.3g} before the final-LN event, "
          f"{sigma_rel.max():.3g} over the run (frozen σ included)")
    assert sigma_before.max() < LOSS_TOLERANCE
    check_ln_free_hand_over(tmp_path)


def check_ln_free_hand_over(tmp_path):
    """The LN-free runs' HF forms: the run.norm run's final/ (eps trick with 2^40, writes centred by
    LayerNorm itself) read by a textbook GPT-2 (LayerNorm, as transformers computes it) scores what the
    run's checkpoint scores; the Pre-LN run's checkpoint converted to Pre-RMSNorm (centred writes,
    untied head, eps trick) scores what that checkpoint scores, in lnfree and in the textbook reader."""
    rng = np.random.default_rng(1)
    lines = [rng.integers(0, 50257, size=n).tolist() for n in (3, 40, 129)]
    lnfree("convert", "--model", tmp_path / "ln/step-000036", "--to", "pre-rmsnorm", "--out", tmp_path / "converted")
    pairs = {"run.norm run: final/ vs its checkpoint": (tmp_path / "rms/final", tmp_path / "rms/step-000036"),
             "Pre-LN run converted vs its checkpoint": (tmp_path / "converted", tmp_path / "ln/step-000036")}
    for name, (folder, checkpoint) in pairs.items():
        config, weights = gpt2_numpy.load(folder)
        assert config["model_type"] == "gpt2" and config["layer_norm_epsilon"] == 2.0**40, config
        textbook = dict(config, lnfree_norm="layernorm")  # what transformers' GPT2LMHeadModel computes
        reference = np.array([gpt2_numpy.mean_next_token_ce(textbook, weights, ids) for ids in lines])
        got, expected = score(folder, lines), score(checkpoint, lines)
        worst = max(float(np.max(np.abs(got - expected) / expected)),
                    float(np.max(np.abs(reference - expected) / expected)))
        print(f"{name}: worst relative CE difference {worst:.3g} (lnfree and the textbook LayerNorm reader)")
        assert worst < 1e-5, (name, got, reference, expected)


def test_run_norm_refuses_dropout_and_crmsnorm(tmp_path):
    r = lnfree("train", *SMOKE, "--set", 'run.norm="rmsnorm"', "--set", "model.dropout=0.1", "--out",
               tmp_path / "x", check=False)
    assert r.returncode == 1 and "model.dropout" in r.stderr and "centred" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def native_rms(tmp_path_factory):
    root = tmp_path_factory.mktemp("native-rms")
    lnfree("init", "--model", "configs/models/tiny-2x64.toml", "--norm", "rmsnorm", "--seed", 3, "--out",
           root / "init")
    lnfree("train", "--config", "configs/tiny/pretrain.toml", "--set", f"run.init={root / 'init'}", "--set",
           "data.steps=40", "--set", "eval.interval=0", "--set", "eval.sets=", "--out", root / "pretrain")
    lnfree("train", *SMOKE, "--set", f"run.init={root / 'pretrain/final'}", "--set", "checkpoint.interval=36",
           "--out", root / "remove")
    return root


def score(model, lines):
    text = "\n".join(" ".join(map(str, ids)) for ids in lines) + "\n"
    return np.array([float(v) for v in lnfree("score", "--model", model, input_text=text).stdout.split()])


def test_native_rmsnorm_model_is_removed_folded_and_scored(native_rms, tmp_path):
    with open(native_rms / "init/config.json") as f:
        config = json.load(f)
    assert config["model_type"] == "lnfree-gpt2" and config["lnfree_norm"] == "rmsnorm", config
    log = train_log(native_rms / "remove")
    assert log["norm"] == "rmsnorm" and log["centre_writes"] == 0
    with open(native_rms / "remove/final/config.json") as f:  # no hf form: final/ is the folded export
        assert json.load(f)["model_type"] == "lnfree-folded-gpt2"
    lnfree("export", "--model", native_rms / "remove", "--format", "folded", "--out", tmp_path / "folded")
    weights = gpt2_numpy.read_safetensors(tmp_path / "folded/model.safetensors")
    assert not [n for n in weights if "ln_" in n or "norm" in n], sorted(weights)
    rng = np.random.default_rng(0)
    lines = [rng.integers(0, 50257, size=n).tolist() for n in (2, 17, 65, 129)]
    run, folded = score(native_rms / "remove", lines), score(tmp_path / "folded", lines)
    worst = float(np.max(np.abs(folded - run) / np.abs(run)))
    print(f"\nnative RMSNorm model, FakeRMSNorm removal: folded export vs run checkpoint, worst relative CE "
          f"difference {worst:.3g} (CE {run.round(4).tolist()})")
    assert worst < 1e-5
    r = lnfree("export", "--model", native_rms / "remove", "--format", "hf", "--out", tmp_path / "hf", check=False)
    assert r.returncode == 1 and "not zero-mean" in r.stderr and "--format folded" in r.stderr, r.stderr
    assert not (tmp_path / "hf").exists()


def test_dla_and_eval_take_rmsnorm_models(native_rms, tmp_path):
    """DLA is exact for the LN-free RMSNorm model (FakeRMSNorm is linear) and not for its original;
    eval and generate read both."""
    results = {}
    for name, model in {"LN-free RMSNorm run": native_rms / "remove",
                        "original (real RMSNorms)": native_rms / "pretrain/final"}.items():
        out = tmp_path / f"dla-{len(results)}.json"
        lnfree("interp", "dla", "--model", model, "--data", VAL, "--seq-len", 64, "--windows", 8, "--out", out)
        r = results[name] = json.loads(out.read_text())
        print(f"\n{name:<26} DLA all parts pooled NMAE {r['all_pooled']:.3e}, decomposition error "
              f"{r['decomposition_error']:.1e}")
        assert r["decomposition_error"] < 1e-5
    assert results["LN-free RMSNorm run"]["all_pooled"] < 1e-4
    assert results["original (real RMSNorms)"]["all_pooled"] > 1e-2
    lnfree("eval", "--model", native_rms / "remove", "--data", VAL, "--seq-len", 64, "--max-windows", 8,
           "--outliers", 0, "--out", tmp_path / "eval.json")
    assert json.loads((tmp_path / "eval.json").read_text())
    greedy = [lnfree("generate", "--model", m, "--prompt", "The jury said", "--max-tokens", 6, "--temperature", 0).stdout
              for m in (native_rms / "remove", native_rms / "remove")]
    assert greedy[0] == greedy[1] and len(greedy[0].strip()) > len("The jury said"), greedy
