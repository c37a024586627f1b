"""Shared helpers for the training tests: the lnfree binary and a run helper."""
import os
import subprocess

import pytest

LNFREE = os.environ.get("LNFREE_BINARY", "build/lnfree")
SOURCE = os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def lnfree(*args, check=True, input_text=None):
    """Runs lnfree from the source tree (configs use paths relative to it); returns the process."""
    result = subprocess.run([LNFREE, *map(str, args)], cwd=SOURCE, capture_output=True, text=True, input=input_text)
    if check and result.returncode != 0:
        raise AssertionError(f"lnfree {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def brown_tokens():
    manifest = os.path.join(SOURCE, "data", "tokens", "brown", "manifest.json")
    if not os.path.exists(manifest):
        pytest.fail(f"{manifest} is missing: run launch/setup.sh first")
    return manifest


@pytest.fixture(scope="session")
def runs(tmp_path_factory, brown_tokens):
    """Pretrain a tiny GPT-2 on Brown, measure sigma, remove every LayerNorm, and run the vanilla
    control: shared by the end-to-end and the hand-over tests."""
    root = tmp_path_factory.mktemp("e2e")
    lnfree("train", "--config", "configs/tiny/pretrain.toml", "--out", root / "pretrain")
    lnfree("stats", "--model", root / "pretrain/final", "--data", brown_tokens, "--windows", 32, "--seq-len", 128,
           "--seed", 3, "--out", root / "stats.json")
    init = f"run.init={root / 'pretrain/final'}"
    lnfree("train", "--config", "configs/tiny/remove-ln.toml", "--out", root / "remove-ln", "--set", init,
           "--set", f"ln.sigma_init={root / 'stats.json'}")
    lnfree("train", "--config", "configs/tiny/finetune.toml", "--out", root / "control", "--set", init)
    return root
