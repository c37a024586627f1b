"""A run stopped halfway and resumed equals the uninterrupted run, bit for bit (CPU)."""
import h5py
import numpy as np

from conftest import lnfree


def read_log(path):
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        out = {f"train/{k}": f["train"][k][:] for k in ("step", "tokens", "loss", "ce_loss", "aux_loss", "grad_norm", "lr")}
        out["ln/sigma"] = f["ln/sigma"][:]
        out["events/step"] = f["events/step"][:]
        out["events/kind"] = f["events/kind"].asstr()[:]
        for name in f["eval"]:
            out[f"eval/{name}"] = f["eval"][name]["loss"][:]
        out["status"] = f["status"].asstr()[()] if f["status"].shape == () else f["status"].asstr()[0]
    return out


def test_resumed_run_is_bitwise_identical(tmp_path, brown_tokens):
    full, split = tmp_path / "full", tmp_path / "split"
    lnfree("train", "--config", "configs/smoke.toml", "--out", full)
    lnfree("train", "--config", "configs/smoke.toml", "--out", split, "--stop-at", 18)
    halfway = read_log(split / "run.h5")
    assert len(halfway["train/step"]) == 18
    lnfree("train", "--config", "configs/smoke.toml", "--out", split, "--resume")
    a, b = read_log(full / "run.h5"), read_log(split / "run.h5")
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert len(a["train/step"]) == 36 and a["status"] == "complete"
    last = "step-000036/model.safetensors"
    assert (full / last).read_bytes() == (split / last).read_bytes()
    assert (full / "step-000036/optimizer.safetensors").read_bytes() == (split / "step-000036/optimizer.safetensors").read_bytes()
    print(f"resume: {len(a['train/step'])} identical losses (last {a['train/loss'][-1]:.6f}), identical final weights")


def test_resume_refuses_a_changed_config(tmp_path, brown_tokens):
    out = tmp_path / "run"
    lnfree("train", "--config", "configs/smoke.toml", "--out", out, "--stop-at", 2)
    r = lnfree("train", "--config", "configs/smoke.toml", "--out", out, "--resume", "--set", "optim.lr=1e-3", check=False)
    assert r.returncode == 1 and "differs" in r.stderr
    r = lnfree("train", "--config", "configs/smoke.toml", "--out", out, check=False)
    assert r.returncode == 1 and "--resume" in r.stderr
