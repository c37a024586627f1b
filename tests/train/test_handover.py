"""Hand-over of an LN-free model (issue 9), on the end-to-end tiny runs (conftest.runs): the run's
checkpoint, its eps-trick HF export and its folded export agree; an independent float64 reader
(tests/ref/gpt2_numpy.py: textbook GPT-2, plain LayerNorm with config.json's epsilon) reproduces the
HF export's logits from the checkpoint's own weights and sigmas; DLA is exact for the LN-free model
and not for its LN original; the outlier report finds a planted unseen token and --filter-unseen
drops exactly the windows holding one; generation is deterministic; bad inputs are refused."""
import json
import os
import shutil
import sys

import h5py
import numpy as np
import pytest

from conftest import SOURCE, lnfree

sys.path.insert(0, os.path.join(SOURCE, "tests"))
from ref import gpt2_numpy  # noqa: E402

VAL = "data/tokens/brown/manifest.json:val"
SEQ = 128


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    lnfree("export", "--model", runs / "remove-ln", "--format", "hf", "--out", out / "hf")
    lnfree("export", "--model", runs / "remove-ln", "--format", "folded", "--out", out / "folded")
    return out


def checkpoint_folder(run):
    (step,) = sorted(p for p in os.listdir(run) if p.startswith("step-"))
    return run / step


def evaluate(model, out, *extra):
    lnfree("eval", "--model", model, "--data", VAL, "--seq-len", SEQ, "--max-windows", 24, "--outliers", 0,
           "--out", out, *extra)
    return json.loads(out.read_text())


def test_checkpoint_hf_export_and_folded_export_give_the_same_loss(runs, exports, tmp_path):
    forms = {"run folder (checkpoint)": runs / "remove-ln", "hf export": exports / "hf",
             "folded export": exports / "folded", "final/ (trainer's hf export)": runs / "remove-ln" / "final"}
    losses = {name: evaluate(path, tmp_path / f"{i}.json")["loss"][VAL] for i, (name, path) in enumerate(forms.items())}
    reference = losses["run folder (checkpoint)"]
    for name, loss in losses.items():
        print(f"{name:<30} {loss:.9f}  relative difference {abs(loss - reference) / reference:.2e}")
        assert abs(loss - reference) / reference < 1e-5, name


def test_folded_export_has_no_layer_norm_and_says_what_it_is(exports):
    config = json.loads((exports / "folded" / "config.json").read_text())
    assert config["model_type"] == "lnfree-folded-gpt2" and config["tie_word_embeddings"] is False
    names = set(gpt2_numpy.read_safetensors(exports / "folded" / "model.safetensors"))
    assert names and not [n for n in names if "ln_" in n], sorted(names)
    assert {"unembed.weight", "unembed.bias"} <= names


def test_independent_reader_reproduces_the_hf_export_logits(runs, exports):
    hf_config, hf_weights = gpt2_numpy.load(exports / "hf")
    assert hf_config["layer_norm_epsilon"] == 1e12 and hf_config["model_type"] == "gpt2"
    folder = checkpoint_folder(runs / "remove-ln")
    state = json.loads((folder / "state.json").read_text())
    raw = gpt2_numpy.read_safetensors(folder / "model.safetensors")
    weights = {k[len("transformer."):]: v for k, v in raw.items()}
    sigmas = {name: (e["sigma_main"], e["sigma_value"]) for name, e in state["ln"].items()}
    assert all(e["fake_main"] and (e["fake_value"] or not name.endswith("ln_1")) for name, e in state["ln"].items())
    text = "The jury said it did find that the city's election was conducted well.\n"
    ids = [int(t) for t in lnfree("tokenize", input_text=text).stdout.split()][:SEQ]
    hf_logits = gpt2_numpy.logits(hf_config, hf_weights, ids)
    free_logits = gpt2_numpy.logits(state["model"], weights, ids, sigmas)
    error = np.abs(hf_logits - free_logits).max() / np.abs(free_logits).max()
    print(f"eps-trick HF export (float64 textbook GPT-2) vs the checkpoint's LN-free function: "
          f"max |logit difference| / max |logit| = {error:.2e} over {len(ids)} positions")
    assert error < 1e-5
    expected = gpt2_numpy.mean_next_token_ce(hf_config, hf_weights, ids)
    for form in (exports / "hf", exports / "folded", runs / "remove-ln"):
        scored = float(lnfree("score", "--model", form, input_text=" ".join(map(str, ids)) + "\n").stdout)
        print(f"lnfree score on {form.name}: {scored:.7f}, numpy on the HF export {expected:.7f}")
        assert abs(scored - expected) / expected < 1e-5
    info = json.loads(lnfree("info", "--model", runs / "remove-ln", "--json").stdout)
    assert (info["n_layer"], info["n_embd"]) == (state["model"]["n_layer"], state["model"]["n_embd"])


def test_dla_is_exact_for_the_ln_free_model_and_not_for_its_original(runs, exports, tmp_path):
    results = {}
    for name, model in {"LN-free checkpoint": runs / "remove-ln", "folded export": exports / "folded",
                        "original (real LNs)": runs / "pretrain" / "final"}.items():
        out = tmp_path / "dla.json"
        lnfree("interp", "dla", "--model", model, "--data", VAL, "--seq-len", 64, "--windows", 16, "--out", out)
        results[name] = json.loads(out.read_text())
        r = results[name]
        print(f"{name:<22} heads pooled NMAE {r['heads_pooled']:.3e}, all parts {r['all_pooled']:.3e}, "
              f"decomposition error {r['decomposition_error']:.1e}")
        assert r["decomposition_error"] < 1e-5
    assert results["LN-free checkpoint"]["all_pooled"] < 1e-4
    assert results["folded export"]["all_pooled"] < 1e-4
    assert results["original (real LNs)"]["heads_pooled"] > 1e-2


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Held-out text in Brown's style plus one document with tokens Brown's training split never
    has (tabs, a form feed, a double newline)."""
    root = tmp_path_factory.mktemp("planted")
    docs = root / "docs"
    docs.mkdir()
    plain = "The committee met on Monday and agreed that the new school would open in the fall. " * 6
    (docs / "a.txt").write_text(plain)
    (docs / "b.txt").write_text("Mr. Jones said the vote was fair, and the city council accepted it. " * 6)
    (docs / "c.txt").write_text("The report said:\n\n\tcolumn\tvalue\n\t\tnested\x0c end of the table. " + plain)
    lnfree("prepare", "--source", f"text:{docs}", "--out", root / "tokens", "--val-fraction", 0)
    return root / "tokens"


def read_tokens(manifest_path, split):
    manifest = json.loads(open(manifest_path).read())
    parts = []
    for shard in manifest["splits"][split]["shards"]:
        raw = open(os.path.join(os.path.dirname(manifest_path), shard["file"]), "rb").read()
        parts.append(np.frombuffer(raw[256:], dtype="<u2").astype(np.int64))
    return np.concatenate(parts)


def test_outlier_report_names_the_planted_unseen_token_and_the_filter_drops_exactly_those_windows(
        runs, planted, tmp_path):
    seq = 32
    brown = os.path.join(SOURCE, "data", "tokens", "brown", "manifest.json")
    out, h5 = tmp_path / "eval.json", tmp_path / "eval.h5"
    result = lnfree("eval", "--model", runs / "remove-ln", "--data", f"{planted}/manifest.json:train",
                    "--seq-len", seq, "--outliers", 3, "--filter-unseen", brown, "--out", out, "--h5", h5)
    print(result.stdout)
    report = json.loads(out.read_text())
    name = f"{os.path.basename(planted)}.train"
    full, filtered = report["sets"][name], report["sets"][name + ".filtered"]

    # Independent: which windows hold a token absent from Brown's training split.
    seen = set(np.unique(read_tokens(brown, "train")).tolist())
    tokens = read_tokens(planted / "manifest.json", "train")
    n_windows = (len(tokens) - 1) // seq
    holding = [i for i in range(n_windows) if set(tokens[i * seq:i * seq + seq + 1].tolist()) - seen]
    assert holding, "the planted document must hold unseen tokens"
    assert filtered["dropped_windows"] == holding
    assert filtered["windows"] == n_windows - len(holding) and full["windows"] == n_windows

    top = full["outliers_loss"][0]
    print("top loss outlier:", top)
    assert top["window"] in holding and top["unseen_tokens"]
    assert top["token"] not in seen, "the most extreme loss is on a token fine-tuning never showed"
    assert "unseen in fine-tuning" in result.stdout
    with h5py.File(h5, "r") as f:
        sets = [s.decode() if isinstance(s, bytes) else s for s in f["eval_suite/set"][:]]
        assert sets == [name, name + ".filtered"]
        np.testing.assert_allclose(f["eval_suite/mean"][:], [full["mean"], filtered["mean"]])
    lnfree("eval", "--model", runs / "remove-ln", "--data", f"{planted}/manifest.json:train", "--seq-len", seq,
           "--outliers", 0, "--h5", h5)
    with h5py.File(h5, "r") as f:
        assert len(f["eval_suite/mean"]) == 3


def test_generation_is_deterministic_and_the_same_from_checkpoint_and_folded(runs, exports):
    def generate(model, *extra):
        return lnfree("generate", "--model", model, "--prompt", "The city", "--max-tokens", 12, *extra).stdout
    a, b = generate(runs / "remove-ln", "--seed", 4), generate(runs / "remove-ln", "--seed", 4)
    assert a == b and a.startswith("The city") and len(a) > len("The city\n")
    greedy = generate(runs / "remove-ln", "--temperature", 0)
    assert greedy == generate(exports / "folded", "--temperature", 0)
    print("sampled:", repr(a), "greedy:", repr(greedy))


def test_refusals_name_the_problem(runs, exports, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(checkpoint_folder(runs / "remove-ln"), partial)
    state = json.loads((partial / "state.json").read_text())
    state["ln"]["ln_f"]["fake_main"] = False
    (partial / "state.json").write_text(json.dumps(state))
    r = lnfree("export", "--model", partial, "--format", "hf", "--out", tmp_path / "x", check=False)
    assert r.returncode == 1 and "ln_f" in r.stderr and "--allow-partial" in r.stderr, r.stderr
    assert not (tmp_path / "x").exists()
    lnfree("export", "--model", partial, "--format", "folded", "--out", tmp_path / "x", "--allow-partial")

    (partial / "DONE").unlink()
    r = lnfree("export", "--model", partial, "--format", "hf", "--out", tmp_path / "y", check=False)
    assert r.returncode == 1 and "incomplete checkpoint" in r.stderr, r.stderr

    r = lnfree("export", "--model", runs / "remove-ln", "--out", exports / "hf", check=False)
    assert r.returncode == 1 and "already exists" in r.stderr, r.stderr
    for line in (r.stderr + "").splitlines():
        assert "Traceback" not in line and "frame #" not in line
    # A run that kept its LayerNorms exports as a plain GPT-2 folder.
    lnfree("export", "--model", runs / "control", "--out", tmp_path / "control-hf")
    assert json.loads((tmp_path / "control-hf" / "config.json").read_text())["layer_norm_epsilon"] == 1e-5
