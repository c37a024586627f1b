"""The slurm/ scripts against a real SLURM: a one-node cluster this session starts (conftest.py,
cluster.py). A 2-rank training through slurm/submit.sh; preemption (SIGUSR1 -> checkpoint, exit 75,
requeue, resume) bit for bit equal to the uninterrupted run; a micro study through
slurm/submit-study.sh to its analysis, with the summary.json `lnfree study` writes on this machine;
a failing array element cancels the jobs after it; and the refusals: no srun MPI type fits, GPUs
asked of a CPU-only cluster."""
import json
import os
import re
import stat
import subprocess
import sys
import time

import pytest

from slurm_helpers import (LNFREE, SOURCE, assert_bitwise_equal_runs, job_logs, jobs, release_requeued, report, run,
                           script_env, submitted_id, wait_jobs)

HERE = os.path.dirname(os.path.abspath(__file__))
MICRO = os.path.join(SOURCE, "tests", "study")

# The micro study (tests/study/micro_study.py): 3 sizes, one seed, one schedule speed; 15 jobs of seconds.
sys.path.insert(0, MICRO)
from micro_study import micro_study_toml  # noqa: E402


# The resource table for the micro sizes: CPU rows as in slurm/sizes.tsv, plus its default rows.
MICRO_SIZES = """# size  config  nodes  tasks_per_node  gpus_per_node  cpus_per_task  mem  tokens_per_s_per_task  overhead_min  sets
a-2x64       -  1  1  0  1  1G  2000  5  -
b-3x96       -  1  1  0  1  1G  2000  5  -
c-4x128      -  1  1  0  1  1G  2000  5  -
default      -  1  1  1  8  -   0     30 -
default-cpu  -  1  1  0  1  1G  0     30 -
"""


# configs/smoke.toml shortened from 36 to 20 steps, every removal event kept (CI time on 2 cores);
# passed through slurm/submit.sh's --set.
SMOKE_SETS = ["--set", "data.steps=20", "--set", "schedule.ln1v.start=13", "--set", "schedule.ln1v.gap=2",
              "--set", "schedule.lnf.start=16", "--set", "schedule.eot.start=17"]


def step_reached(logs, job_id):
    steps = [int(s) for s in re.findall(r"step\s+(\d+)/\d+", job_logs(logs, job_id))]
    return max(steps, default=0)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("slurm-logs")


@pytest.fixture(scope="module")
def two_rank_run(cluster, logs, tmp_path_factory):
    """configs/smoke.toml (SMOKE_SETS) on 2 ranks through slurm/submit.sh (row "smoke"), uninterrupted."""
    out = tmp_path_factory.mktemp("smoke") / "two-ranks"
    started = time.monotonic()
    result = run(["slurm/submit.sh", "smoke", out, *SMOKE_SETS], script_env(cluster, logs))
    job = submitted_id(result.stdout, "smoke")
    (record,) = wait_jobs(cluster, [job], timeout=300)[job]
    seconds = time.monotonic() - started
    report(f"[slurm] 2-rank smoke run: job {job} {record['JobState']} in {seconds:.0f} s")
    return out, job, record, job_logs(logs, job)


def test_two_rank_training_through_submit(two_rank_run):
    out, job, record, text = two_rank_run
    assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", (record, text[-3000:])
    import h5py

    with h5py.File(out / "run.h5", "r") as f:
        assert int(f.attrs["world_size"]) == 2
        assert f["status"].asstr()[()] == "complete"
    # srun got the MPI type of Debian's Open MPI and no binding (this cluster has TaskPlugin=task/none).
    (launch,) = [line for line in text.splitlines() if line.startswith("slurm: srun ")]  # one launch: no requeue
    assert "--mpi=pmix" in launch and "--cpu-bind" not in launch and "--cpus-per-task=1" in launch, launch
    # srun warns on every launch when asked for a binding the cluster cannot give: no such line.
    assert not [line for line in text.splitlines() if re.search(r"cpu[-_ ]?bind", line, re.IGNORECASE)
                and not line.startswith("slurm: srun ")], text[-2000:]
    print(launch)


def test_preemption_checkpoints_requeues_and_resumes_bitwise(cluster, logs, two_rank_run, tmp_path):
    reference = two_rank_run[0]
    out = tmp_path / "preempted"
    started = time.monotonic()
    result = run(["slurm/submit.sh", "smoke", out, *SMOKE_SETS], script_env(cluster, logs))
    job = submitted_id(result.stdout, "smoke")
    deadline = time.monotonic() + 240
    while step_reached(logs, job) < 5:
        assert time.monotonic() < deadline, job_logs(logs, job)[-3000:]
        assert jobs(cluster, job)[0]["JobState"] in ("PENDING", "RUNNING"), job_logs(logs, job)[-3000:]
        time.sleep(0.3)
    # What SLURM does ahead of a time limit (--signal=B:USR1@300), sent now.
    run(["scancel", "--signal=USR1", "--batch", job], cluster.env)
    (record,) = wait_jobs(cluster, [job], timeout=300, poll=release_requeued(cluster))[job]
    text = job_logs(logs, job)
    print(text[-1500:])
    assert record["JobState"] == "COMPLETED" and int(record["Restarts"]) == 1, (record, text[-3000:])
    assert "preempted: checkpoint written; requeueing job" in text
    stopped = re.search(r"signal 10 received: stopped after step (\d+) with a checkpoint", text)
    assert stopped and int(stopped.group(1)) < 19, text[-3000:]  # it stopped before the end
    assert "restart 1" in text and "--resume" in text, text[-3000:]
    compared, last = assert_bitwise_equal_runs(reference, out)
    report(f"[slurm] preempted after step {stopped.group(1)} (SIGUSR1, exit 75), requeued, "
          f"resumed, completed in {time.monotonic() - started:.0f} s; bitwise equal to the uninterrupted run: "
          f"{len(compared)} run.h5 datasets and {last}/model+optimizer")


@pytest.fixture(scope="module")
def micro_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    config = root / "micro-slurm.toml"
    config.write_text(micro_study_toml("micro-slurm", "runs/cache", speeds=[("g1", 1)]))
    sizes = root / "sizes.tsv"
    sizes.write_text(MICRO_SIZES)
    return root, config, sizes


def test_study_through_submit_study_matches_lnfree_study(cluster, logs, micro_study):
    root, config, sizes = micro_study
    started = time.monotonic()
    slurm_dir = root / "slurm"
    result = run(["slurm/submit-study.sh", config, slurm_dir, "--set", f"study.cache={root / 'cache-slurm'}"],
                 script_env(cluster, logs, LNFREE_SIZES=sizes))
    print(result.stderr)
    analysis = submitted_id(result.stderr, "analysis")
    arrays = re.findall(r"submitted \S+: array job (\d+)", result.stderr)
    state = wait_jobs(cluster, arrays + [analysis], timeout=600)
    slurm_seconds = time.monotonic() - started
    for job, records in state.items():
        for r in records:
            assert r["JobState"] == "COMPLETED", (r, job_logs(logs, job)[-3000:])
    summary = json.loads((slurm_dir / "analysis" / "summary.json").read_text())
    report(f"[slurm] study through SLURM ({len(arrays)} arrays + analysis): {slurm_seconds:.0f} s")
    # The same study on this machine, as `lnfree study` runs it (2 processes at a time).
    started = time.monotonic()
    local_dir = root / "local"
    run([LNFREE, "study", "--config", config, "--out", local_dir, "--set", f"study.cache={root / 'cache-local'}"],
        {**os.environ, "LNFREE_SOURCE_DIR": SOURCE}, timeout=900)
    local_seconds = time.monotonic() - started
    report(f"[slurm] the same study by lnfree study: {local_seconds:.0f} s")
    local = json.loads((local_dir / "analysis" / "summary.json").read_text())
    assert summary == local
    report(f"[slurm] summary.json equal ({len(json.dumps(summary))} bytes): exponent {summary.get('exponent')}, "
          f"verdict {summary.get('verdict')}")


def failing_lnfree(tmp_path, match):
    """An lnfree for the study's jobs that fails (exit 3) on the jobs whose command contains `match`
    and pretends to succeed at once on the others; `config` and `study` (planning) run the real one."""
    stub = tmp_path / "lnfree"
    stub.write_text(f"""#!/usr/bin/env bash
case $1 in config|study) exec {LNFREE} "$@" ;; esac
case " $* " in *"{match}"*) echo "lnfree (test stand-in): failing on purpose: $*" >&2; exit 3 ;; esac
exit 0
""")
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return stub


def test_a_failing_element_cancels_the_jobs_after_it(cluster, logs, micro_study, tmp_path):
    root, config, sizes = micro_study
    started = time.monotonic()
    env = script_env(cluster, logs, LNFREE_SIZES=sizes, LNFREE_BIN=failing_lnfree(tmp_path, " vocab "))
    result = run(["slurm/submit-study.sh", config, tmp_path / "failing", "--set",
                  f"study.cache={tmp_path / 'cache'}"], env)
    analysis = submitted_id(result.stderr, "analysis")
    arrays = re.findall(r"submitted \S+: array job (\d+)", result.stderr)
    state = wait_jobs(cluster, arrays + [analysis], timeout=180)
    seconds = time.monotonic() - started
    records = [r for rs in state.values() for r in rs]
    failed = [r for r in records if r["JobState"] == "FAILED"]
    planted = [r for r in failed if r["ExitCode"] == "3:0"]
    assert planted, records
    # The stand-in's "successes" write no output: those elements fail too (exit 0 without the done
    # marker is a failure, as in lnfree study), exit 1, naming the missing file.
    assert all(r["ExitCode"] in ("3:0", "1:0") for r in failed), [(r["JobId"], r["ExitCode"]) for r in failed]
    if len(planted) < len(failed):
        assert "is missing" in "".join(job_logs(logs, j) for j in state)
    (last,) = state[analysis]
    assert last["JobState"] == "CANCELLED" and last["Reason"] == "DependencyNeverSatisfied", last
    cancelled = [r["JobId"] for r in records if r["JobState"] == "CANCELLED"]
    report(f"[slurm] {len(failed)} element(s) failed (exit 3): {[r['JobId'] for r in failed]}; cancelled, not left "
          f"pending: {cancelled} (analysis {analysis}: {last['Reason']}); {seconds:.0f} s")


def fake_srun(tmp_path, listed):
    """An srun whose --mpi=list offers only `listed`; every other call goes to the real srun."""
    real = subprocess.run(["bash", "-c", "command -v srun"], capture_output=True, text=True).stdout.strip()
    folder = tmp_path / "bin"
    folder.mkdir()
    stub = folder / "srun"
    lines = "".join(f"\\t{t}\\n" for t in listed)
    stub.write_text(f"""#!/usr/bin/env bash
if [ "$*" = --mpi=list ]; then printf 'MPI plugin types are...\\n{lines}'; exit 0; fi
exec {real} "$@"
""")
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return folder


def queued(cluster):
    """Ids of the jobs pending or running."""
    return subprocess.run(["squeue", "-h", "-t", "PENDING,RUNNING", "-o", "%i"], env=cluster.env, capture_output=True,
                          text=True, timeout=30).stdout.split()


def test_no_fitting_mpi_type_is_refused_before_submitting(cluster, logs, tmp_path):
    before = queued(cluster)
    env = script_env(cluster, logs)
    env["PATH"] = f"{fake_srun(tmp_path, ['none', 'pmi2', 'cray_shasta'])}:{env['PATH']}"
    result = run(["slurm/submit.sh", "smoke", tmp_path / "never"], env, check=False)
    print(result.stderr)
    assert result.returncode != 0
    assert "no srun MPI type fits" in result.stderr and "none pmi2" in result.stderr.replace("cray_shasta ", "")
    assert "LNFREE_SRUN_MPI" in result.stderr  # the fix
    # A type the cluster does not offer, set by hand, is refused naming the ones it does.
    bad = run(["slurm/submit.sh", "smoke", tmp_path / "never"], script_env(cluster, logs, LNFREE_SRUN_MPI="pmix_v9"),
              check=False)
    print(bad.stderr)
    assert bad.returncode != 0 and "LNFREE_SRUN_MPI=pmix_v9 is not one of" in bad.stderr and "pmix" in bad.stderr
    assert queued(cluster) == before and not (tmp_path / "never").exists()
    report(f"[slurm] refused before submitting: no fitting srun MPI type (exit {result.returncode}), "
           f"LNFREE_SRUN_MPI=pmix_v9 (exit {bad.returncode}); nothing queued")


def test_gpu_size_on_a_cpu_cluster_is_refused_naming_the_fix(cluster, logs, tmp_path):
    before = queued(cluster)
    result = run(["slurm/submit.sh", "gpt2", tmp_path / "never"], script_env(cluster, logs), check=False)
    print(result.stderr)
    assert result.returncode != 0
    assert "asks for 8 GPU(s) per node" in result.stderr and "has no GPUs" in result.stderr
    assert "LNFREE_PARTITION" in result.stderr and "gpus_per_node 0" in result.stderr
    assert queued(cluster) == before
    report(f"[slurm] refused before submitting: 8 GPUs per node asked of a CPU-only cluster (exit "
           f"{result.returncode}); nothing queued")
