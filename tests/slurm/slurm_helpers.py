"""Helpers for the tests against a real SLURM: running the slurm/ scripts, waiting for jobs, reading
their logs, comparing runs bit for bit."""
import glob
import os
import re
import shlex
import subprocess
import time

SOURCE = os.path.abspath(os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")))
LNFREE = os.path.abspath(os.environ.get("LNFREE_BINARY", os.path.join(SOURCE, "build", "lnfree")))
# What the suite ran and how long it took, a line per outcome; launch/test.sh prints it after CTest
# (whose output shows only failing tests).
SUMMARY = os.path.join(SOURCE, "build", "slurm-summary.txt")
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED"}


def report(line):
    """Prints an outcome line and adds it to the suite's summary file."""
    print(line)
    if os.path.isdir(os.path.dirname(SUMMARY)):
        with open(SUMMARY, "a") as f:
            f.write(line + "\n")


def script_env(cluster, logs, **extra):
    """The environment the slurm/ scripts run in: the test cluster's SLURM_CONF, this lnfree, job logs
    in `logs`."""
    env = {**cluster.env, "LNFREE_BIN": LNFREE, "LNFREE_SOURCE_DIR": SOURCE, "LNFREE_SLURM_LOGS": str(logs)}
    env.pop("LNFREE_DRY_RUN", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(command, env, timeout=120, check=True):
    """Runs a command from the source tree, printing it and its time; returns the CompletedProcess."""
    command = [str(c) for c in command]
    start = time.monotonic()
    result = subprocess.run(command, cwd=SOURCE, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"[slurm] ran {shlex.join(command)}: exit {result.returncode}, {time.monotonic() - start:.1f} s")
    if check and result.returncode != 0:
        raise AssertionError(f"{shlex.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                             f"{result.stderr[-3000:]}")
    return result


def submitted_id(output, label):
    """The job id in a submit script's "submitted LABEL: job ID" or "array job ID" line."""
    match = re.search(rf"submitted {re.escape(label)}: (?:array )?job (\d+)", output)
    assert match, f"no 'submitted {label}' line in:\n{output}"
    return match.group(1)


def jobs(cluster, job_id):
    """scontrol's records of a job (one per array element), as dicts of its KEY=VALUE fields."""
    result = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], env=cluster.env, capture_output=True,
                            text=True, timeout=30)
    records = []
    for line in result.stdout.splitlines():
        fields = {}
        for word in line.split():
            if "=" in word:
                key, value = word.split("=", 1)
                fields.setdefault(key, value)
        if fields:
            records.append(fields)
    return records


def wait_jobs(cluster, job_ids, timeout, poll=None):
    """Waits until every job (and every element of an array job) has finished; returns
    {job id: [records]}. `poll(records_by_id)` runs on every round (e.g. to release a requeued job)."""
    deadline = time.monotonic() + timeout
    while True:
        state = {j: jobs(cluster, j) for j in job_ids}
        if poll:
            poll(state)
        if all(records and all(r["JobState"] in FINISHED for r in records) for records in state.values()):
            return state
        if time.monotonic() > deadline:
            summary = {j: [(r.get("JobId"), r.get("JobState"), r.get("Reason")) for r in rs] for j, rs in state.items()}
            raise AssertionError(f"jobs not finished after {timeout} s: {summary}\n{cluster.logs()}")
        time.sleep(1)


def job_pids_left(cluster, job_id):
    """How many processes of a job's steps are still alive on this node (scontrol listpids)."""
    result = subprocess.run(["scontrol", "listpids", str(job_id)], env=cluster.env, capture_output=True, text=True,
                            timeout=30)
    return sum(1 for line in result.stdout.splitlines() if line[:1].isdigit())


def release_requeued(cluster):
    """A poll for wait_jobs: SLURM holds a requeued job back for about two minutes (EligibleTime);
    the tests let it start at once (scontrol update StartTime=now) to keep CI short, but only once
    no process of its previous run is left on the node: slurmd refuses to launch a job whose old
    steps are still finishing ("Job credential revoked", and the job ends FAILED), which happened
    when the old ranks took a few seconds to exit."""
    released = set()

    def poll(state):
        for records in state.values():
            for r in records:
                if r["JobState"] == "PENDING" and int(r.get("Restarts", "0")) > 0 and r["JobId"] not in released:
                    if job_pids_left(cluster, r["JobId"]):
                        continue  # the next round asks again
                    subprocess.run(["scontrol", "update", f"JobId={r['JobId']}", "StartTime=now"], env=cluster.env,
                                   check=True, capture_output=True, timeout=30)
                    print(f"[slurm] ran scontrol update JobId={r['JobId']} StartTime=now (requeued job, restart "
                          f"{r['Restarts']})")
                    released.add(r["JobId"])
    return poll


def job_logs(logs, job_id):
    """The text of a job's output files (an array job's elements, in element order)."""
    paths = sorted(glob.glob(os.path.join(str(logs), f"*-{job_id}.out")) +
                   glob.glob(os.path.join(str(logs), f"*-{job_id}_*.out")))
    return "\n".join(open(p, errors="replace").read() for p in paths)


def h5_datasets(path):
    """Every dataset of an HDF5 file as {name: numpy array or scalar}."""
    import h5py

    values = {}
    with h5py.File(path, "r") as f:
        def visit(name, item):
            if isinstance(item, h5py.Dataset):
                values[name] = item[()]
        f.visititems(visit)
    return values


def assert_bitwise_equal_runs(reference, other, ignore=("train/tokens_per_s",)):
    """Two run folders hold the same run: every run.h5 dataset but the measured speed bit for bit, and
    the same final checkpoint (model and optimizer state, byte for byte). Returns what was compared."""
    import numpy as np

    a, b = h5_datasets(os.path.join(reference, "run.h5")), h5_datasets(os.path.join(other, "run.h5"))
    assert sorted(a) == sorted(b), (sorted(set(a) ^ set(b)))
    compared = [k for k in sorted(a) if k not in ignore]
    for key in compared:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.shape == y.shape and x.dtype == y.dtype, (key, x.shape, y.shape, x.dtype, y.dtype)
        if x.dtype.kind == "f":
            assert np.array_equal(x.view(f"u{x.dtype.itemsize}"), y.view(f"u{y.dtype.itemsize}")), key
        else:
            assert np.array_equal(x, y), key
    last = sorted(p for p in os.listdir(reference) if p.startswith("step-"))[-1]
    for name in ("model.safetensors", "optimizer.safetensors"):
        with open(os.path.join(reference, last, name), "rb") as f, open(os.path.join(other, last, name), "rb") as g:
            assert f.read() == g.read(), f"{last}/{name} differs"
    return compared, last
