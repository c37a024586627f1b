"""lnfree study end to end on a micro family: runs, is killed midway, resumes without redoing
finished runs, and ends with the analysis (summary.json, plots)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

LNFREE = os.environ.get("LNFREE_BINARY", "build/lnfree")
SOURCE = os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from micro_study import micro_study_toml  # noqa: E402



def study_command(config, out):
    return [LNFREE, "study", "--config", str(config), "--out", str(out)]


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    config = root / "micro.toml"
    config.write_text(micro_study_toml("micro", root / "cache"))
    return root, config


def test_killed_study_resumes_without_redoing_finished_runs(micro):
    root, config = micro
    out = root / "out"
    process = subprocess.Popen(study_command(config, out), cwd=SOURCE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    def finished_runs():  # a run is finished once its last checkpoint (step 30) is complete
        return sorted((out / "runs").glob("*/seed-*/*/step-000030/DONE")) if (out / "runs").exists() else []

    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if len(finished_runs()) >= 2:
            break
        time.sleep(0.5)
    assert process.poll() is None, "the study finished before it could be interrupted:\n" + process.stdout.read()
    process.send_signal(signal.SIGTERM)
    first = process.communicate(timeout=60)[0]
    assert process.returncode != 0
    finished = [str(p.parent.parent.relative_to(out)) for p in finished_runs()]
    stamps = {}
    for run in finished:
        log = out / run / "run.h5"
        stamps[log] = log.stat().st_mtime_ns
    print(f"interrupted after {len(finished)} finished runs: {finished}")

    second = subprocess.run(study_command(config, out), cwd=SOURCE, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "already complete (skipped)" in second.stderr
    for log, stamp in stamps.items():
        assert log.stat().st_mtime_ns == stamp, f"{log} was run again"
    assert len(finished_runs()) == 3 * 3  # 3 models x (control + 2 speeds)
    summary = json.loads((out / "analysis" / "summary.json").read_text())
    for key in ("exponent", "exponent_ci_low", "exponent_ci_high", "verdict"):
        assert key in summary
    assert (out / "analysis").glob("*.png")
    print(second.stdout[-2500:])


def test_rerunning_the_analysis_gives_the_same_numbers(micro):
    root, _ = micro
    out = root / "out"
    runs = []
    for i in range(2):
        target = root / f"analysis-{i}"
        subprocess.run([sys.executable if os.path.exists("/usr/bin/python3") is False else "/usr/bin/python3",
                        "-m", "analysis", str(out), "--out", str(target)], cwd=SOURCE, check=True,
                       capture_output=True, text=True)
        runs.append(json.loads((target / "summary.json").read_text()))
    assert runs[0] == runs[1]
    assert runs[0] == json.loads((out / "analysis" / "summary.json").read_text())


def test_set_overrides_reach_every_job_of_the_plan(micro):
    root, config = micro
    out = root / "planned"
    plan = subprocess.run(study_command(config, out) + ["--set", "study.seed=5", "--set", "study.seeds=2",
                                                        "--print-plan"],
                          cwd=SOURCE, capture_output=True, text=True, timeout=60)
    assert plan.returncode == 0, plan.stderr
    ids = [line.split("\t")[0] for line in plan.stdout.splitlines()]
    for model in ("a-2x64", "b-3x96", "c-4x128"):
        for seed in (5, 6):
            for job in ("pretrain", "stats", "original", "zero-shot", "control", "speed-g0", "speed-g1"):
                assert f"{model}/seed-{seed}/{job}" in ids
    assert not any("seed-0" in i for i in ids)
    assert "run.seed=11" in plan.stdout and "run.seed=12" in plan.stdout  # pretraining 2v+1, fine-tuning 2v+2
    bad = subprocess.run(study_command(config, out) + ["--set", "study.seeds=zero", "--print-plan"],
                         cwd=SOURCE, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert "'seeds': expected an integer" in bad.stderr, bad.stderr
    assert not out.exists()  # a refused plan writes nothing
