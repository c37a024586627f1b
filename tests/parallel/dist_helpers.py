"""Helpers for the data-parallel tests: the binaries, mpirun, run logs (imported by the tests)."""
import os
import subprocess
import time

import h5py
import numpy as np

SOURCE = os.path.abspath(os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")))
LNFREE = os.path.abspath(os.environ.get("LNFREE_BINARY", os.path.join(SOURCE, "build", "lnfree")))
CORE_TESTS = os.path.abspath(os.environ.get("LNFREE_CORE_TESTS", os.path.join(SOURCE, "build", "tests", "lnfree_core_tests")))
TORCH_TESTS = os.path.join(os.path.dirname(CORE_TESTS), "lnfree_torch_tests")
SMOKE = "configs/smoke.toml"

# Open MPI refuses root without these; the CI machines have 2 cores, and ctest runs other tests beside.
MPI_ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def mpirun(ranks, *command, export=()):
    """An mpirun command line for `ranks` local ranks; `export` names environment variables to pass."""
    line = ["mpirun", "--oversubscribe", "-np", str(ranks)]
    for name in export:
        line += ["-x", name]
    return line + [str(c) for c in command]


def train(out, *extra):
    return [LNFREE, "train", "--config", SMOKE, "--out", str(out), *map(str, extra)]


def run(command, timeout=300, env=None, check=True):
    """Runs a command from the source tree; returns (process, seconds)."""
    start = time.monotonic()
    result = subprocess.run(command, cwd=SOURCE, env=env or MPI_ENV, capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - start
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result, seconds


def read_log(run_dir):
    with h5py.File(os.path.join(run_dir, "run.h5"), "r") as f:
        out = {f"train/{k}": f["train"][k][:] for k in f["train"]}
        out["ln/sigma"] = f["ln/sigma"][:]
        out["events/step"] = f["events/step"][:]
        out["events/kind"] = f["events/kind"].asstr()[:]
        for name in f["eval"]:
            out[f"eval/{name}"] = f["eval"][name]["loss"][:]
        for k in f.get("rollbacks", {}):
            out[f"rollbacks/{k}"] = f["rollbacks"][k][:]
        out["status"] = f["status"].asstr()[()]
        out["world_size"] = int(f.attrs["world_size"])
    return out


# Logged values that a faithful run must reproduce (tokens_per_s is a measurement).
COMPARED = ("train/loss", "train/ce_loss", "train/aux_loss", "train/grad_norm", "train/lr", "ln/sigma", "eval/")


def max_relative_difference(a, b):
    """Largest |a - b| / |a| over the COMPARED columns (lengths must match)."""
    worst = 0.0
    for key in a:
        if key.startswith(COMPARED):
            assert a[key].shape == b[key].shape, key
            worst = max(worst, float(np.max(np.abs(a[key] - b[key]) / np.maximum(np.abs(a[key]), 1e-30))))
    return worst


def assert_same_run(reference, other, tolerance=1e-5):
    """Same steps and events, every logged float within `tolerance` (relative); returns the worst."""
    assert other["status"] == "complete"
    assert np.array_equal(reference["train/step"], other["train/step"])
    assert np.array_equal(reference["events/step"], other["events/step"])
    assert list(reference["events/kind"]) == list(other["events/kind"])
    worst = max_relative_difference(reference, other)
    assert worst <= tolerance, f"largest relative difference {worst:.3g} > {tolerance}"
    return worst


def child_pids(pid):
    """Direct children of `pid` (from /proc)."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    children.append(int(entry))
            except (OSError, IndexError):
                pass
    return children


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
