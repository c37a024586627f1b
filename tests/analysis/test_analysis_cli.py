"""`python3 -m analysis` end to end on synthetic study folders with a planted exponent."""
import json
import math
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

import synthetic_study as syn
from analysis.__main__ import main

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def analyse(study, *args, plots=False):
    out = os.path.join(study, "analysis")
    code = main([study, "--bootstrap", "4000", *([] if plots else ["--no-plots"]), *args])
    summary = None
    if code == 0:
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
    return code, summary


def planted_study(tmp_path, exponent, scatter=(0.0, 0.0, 0.0, 0.0), t_smallest=40_000):
    root = str(tmp_path / f"b{exponent}")
    os.makedirs(root)
    sizes = syn.power_law_sizes(exponent, t_smallest=t_smallest, scatter=scatter)
    syn.make_study(root, sizes, budget_tokens=100_000)
    return root, sizes


@pytest.mark.parametrize("exponent,verdict", [(0.5, "sublinear"), (1.3, "superlinear")])
def test_planted_exponent_is_recovered_within_its_interval(tmp_path, exponent, verdict):
    root, sizes = planted_study(tmp_path, exponent, scatter=(0.04, -0.03, 0.03, -0.04), t_smallest=20_000)
    code, summary = analyse(root)
    assert code == 0
    b, low, high = summary["exponent"], summary["exponent_ci_low"], summary["exponent_ci_high"]
    print(f"planted b = {exponent}: fitted {b:.4f}, 95% CI [{low:.4f}, {high:.4f}], {summary['verdict']}; "
          f"total-parameter fit {summary['exponent_total']:.4f}")
    assert low <= exponent <= high
    assert abs(b - exponent) < 0.05
    assert summary["verdict"] == verdict
    for planted, entry in zip(sizes, summary["sizes"]):
        assert entry["n_params_nonembed"] == planted.n_nonembed
        assert entry["tokens_needed_low"] <= planted.t_needed <= entry["tokens_needed_high"]
    assert summary["exponent_total_ci_low"] < summary["exponent_total_ci_high"]


def test_exponent_one_with_scatter_is_undetermined(tmp_path):
    root, _ = planted_study(tmp_path, 1.0, scatter=(0.25, -0.25, 0.25, -0.25))
    code, summary = analyse(root)
    print(f"b = 1 with scatter: CI [{summary['exponent_ci_low']:.3f}, {summary['exponent_ci_high']:.3f}]")
    assert code == 0 and summary["verdict"] == "undetermined"


def test_summary_has_the_documented_fields(tmp_path):
    root, _ = planted_study(tmp_path, 0.5)
    code, summary = analyse(root)
    assert code == 0
    for key in ("exponent", "exponent_ci_low", "exponent_ci_high", "verdict", "exponent_total",
                "exponent_total_ci_low", "exponent_total_ci_high", "verdict_total", "delta", "budget_tokens"):
        assert key in summary, key
    for entry in summary["sizes"]:
        for key in ("n_params_nonembed", "tokens_needed_low", "tokens_needed_high", "final_gap", "zero_shot_damage"):
            assert isinstance(entry[key], (int, float)), (key, entry[key])
        assert entry["zero_shot_damage"] == pytest.approx(3.0 * math.sqrt(1e5 / entry["n_params_nonembed"]))
        assert entry["paper_speed"] == "g0" and entry["paper_tokens_to_ln_free"] == syn.START_STEP * 1024
    with open(os.path.join(root, "analysis", "summary.csv")) as f:
        rows = f.read().splitlines()
    assert rows[0].startswith("size,n_params_nonembed") and len(rows) == 5


def test_rerunning_the_analysis_gives_identical_files(tmp_path):
    root, _ = planted_study(tmp_path, 0.5, scatter=(0.04, -0.03, 0.03, -0.04))
    outputs = []
    for run in range(2):
        out = str(tmp_path / f"out{run}")
        # Through the real command line once, in-process once: both must agree byte for byte.
        if run == 0:
            r = subprocess.run([PYTHON, "-m", "analysis", root, "--out", out, "--seed", "7"], capture_output=True,
                               text=True, cwd=syn.REPO)
            assert r.returncode == 0, r.stderr
            assert "sublinear" in r.stdout and "summary.json" in r.stdout
        else:
            assert main([root, "--out", out, "--seed", "7"]) == 0
        outputs.append({name: open(os.path.join(out, name), "rb").read() for name in sorted(os.listdir(out))})
    assert list(outputs[0]) == list(outputs[1])
    assert {"loss_curves.png", "loss_curves.svg", "scaling.png", "scaling.svg", "sigma_S1.png", "summary.json",
            "summary.csv", "runs.csv"} <= set(outputs[0])
    for name in outputs[0]:
        assert outputs[0][name] == outputs[1][name], f"{name} differs between two runs of the analysis"


def _set_status(path, status):
    with h5py.File(path, "r+") as f:
        if status is None:
            del f["status"]
        else:
            f["status"][()] = status.encode()


@pytest.mark.parametrize("status", ["running", "failed", None])
def test_unfinished_runs_are_refused_with_the_file_named(tmp_path, capsys, status):
    root, _ = planted_study(tmp_path, 0.5)
    run = os.path.join(root, "runs", "S3", "speed-g2", "run.h5")
    _set_status(run, status)
    code, _ = analyse(root)
    err = capsys.readouterr().err
    print(err)
    assert code == 2
    assert run in err and "--allow-unfinished" in err and f"status '{status or 'missing'}'" in err
    code, summary = analyse(root, "--allow-unfinished")
    assert code == 0 and summary["unfinished_runs"] == ["runs/S3/speed-g2/run.h5"]


def test_diverged_runs_count_as_never_and_all_diverged_sizes_leave_the_fit(tmp_path):
    root = str(tmp_path)
    sizes = syn.power_law_sizes(0.5)
    diverged = [syn.SpeedSpec("g0", 0, diverge=True), syn.SpeedSpec("g2", 2, diverge=True)]
    syn.make_study(root, sizes, speeds={"S2": [syn.SpeedSpec("g0", 0, diverge=True), syn.SpeedSpec("g2", 2)],
                                        "S4": diverged}, budget_tokens=100_000)
    code, summary = analyse(root)
    assert code == 0
    s2, s4 = summary["sizes"][1], summary["sizes"][3]
    g0 = s2["speeds"][0]
    assert g0["status"] == "diverged" and g0["t_delta"] is None and not g0["t_delta_reached"]
    assert s2["best_speed"] == "g2" and s2["paper_faster_diverged"] == "g0"
    assert s4["tokens_needed"] is None and not s4["tokens_needed_reached"] and s4["tokens_needed_high"] is None
    assert summary["fit_sizes"] == ["S1", "S2", "S3"] and summary["excluded_sizes"] == ["S4"]
    assert summary["verdict"] == "undetermined" and "diverged" in summary["verdict_reason"]


def _edit_study(root, **changes):
    path = os.path.join(root, "study.json")
    with open(path) as f:
        study = json.load(f)
    study.update(changes)
    with open(path, "w") as f:
        json.dump(study, f)


def test_bad_input_is_refused_with_a_message_naming_the_problem(tmp_path, capsys):
    root, _ = planted_study(tmp_path, 0.5)
    cases = []
    assert main([str(tmp_path / "nowhere")]) == 2
    cases.append("not a folder")
    _edit_study(root, eval_set="other.val")
    assert analyse(root)[0] == 2
    cases.append("has no set 'other.val' (sets in the file: synthetic.val)")
    _edit_study(root, eval_set=syn.EVAL_SET, sizes=[{"name": "S1", "n_params_nonembed": 5}])
    assert analyse(root)[0] == 2
    cases.append("field 'sizes[0].n_params_nonembed' = 5, but the run logs say params_non_embedding = 100000")
    _edit_study(root, sizes=[{"name": "S9"}])
    assert analyse(root)[0] == 2
    cases.append("study.json lists size 'S9' but it has no run folder")
    _edit_study(root, sizes=[{"name": "S1"}], delta=None)
    assert analyse(root)[0] == 2
    cases.append("field 'delta' is missing: give --delta")
    assert analyse(root, "--delta", "0.1")[0] == 0
    with h5py.File(os.path.join(root, "runs", "S1", "control", "run.h5"), "r+") as f:
        f.attrs["mode"] = "remove-ln"
    assert analyse(root, "--delta", "0.1")[0] == 2
    cases.append("root attribute 'mode': expected 'finetune' for the control, got 'remove-ln'")
    err = capsys.readouterr().err
    print(err)
    for needle in cases:
        assert needle in err, needle
    assert err.count("analysis: error: ") == len(cases)


def test_a_removal_run_longer_than_its_control_is_refused(tmp_path, capsys):
    root, _ = planted_study(tmp_path, 0.5)
    control = os.path.join(root, "runs", "S1", "control", "run.h5")
    with h5py.File(control, "r+") as f:
        for name in ("step", "tokens", "loss"):
            data = f[f"eval/{syn.EVAL_SET}/{name}"]
            data.resize((len(data) // 2,))
    assert analyse(root)[0] == 2
    err = capsys.readouterr().err
    assert control in err and "cannot be judged" in err


def test_the_writer_layout_matches_the_smoke_run_when_one_exists():
    # The fixture writer must produce what the C++ RunLog produces: compare dtypes with a real file
    # when the smoke run has been made (runs/ is not in git, so this check is optional by nature).
    real = os.path.join(syn.REPO, "runs", "smoke", "run.h5")
    if not os.path.exists(real):
        pytest.skip("runs/smoke/run.h5 not present")
    with h5py.File(real, "r") as f:
        layout = {n: (f[n].dtype.str, h5py.check_string_dtype(f[n].dtype)) for n in
                  ("events/kind", "status", "status_message", "ln/fake", "ln/sigma", "train/step")}
        assert {k: v[0] for k, v in layout.items()} == {
            "events/kind": "|S16", "status": "|S16", "status_message": "|S1024", "ln/fake": "|i1",
            "ln/sigma": "<f8", "train/step": "<i8"}
        assert f.attrs["mode"] == "remove-ln"
    assert np.dtype(syn.STRING16).str == "|S16"
