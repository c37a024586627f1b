"""Fixtures for the tests against a real SLURM (tests/slurm/): the one-node cluster of cluster.py,
started once for the session and stopped at its end."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster import Cluster, missing_binaries  # noqa: E402
from slurm_helpers import SOURCE, SUMMARY, report  # noqa: E402


@pytest.fixture(scope="session")
def cluster():
    missing = missing_binaries()
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} not found): launch/setup.sh installs "
                    "Debian's slurm-wlm and munge")
    manifest = os.path.join(SOURCE, "data", "tokens", "brown", "manifest.json")
    if not os.path.exists(manifest):
        pytest.fail(f"{manifest} is missing: run launch/setup.sh first")
    if os.path.exists(SUMMARY):
        os.remove(SUMMARY)
    c = Cluster(keep=os.environ.get("LNFREE_KEEP_CLUSTER") == "1")
    c.start()
    report(f"[slurm] one-node cluster ({c.cpus} CPUs, node {c.node}) up in {c.start_seconds:.1f} s: {c.conf}")
    started = time.monotonic()
    try:
        yield c
    finally:
        c.stop()
        report(f"[slurm] cluster stopped after {time.monotonic() - started:.0f} s of tests"
              + (f"; its files stay in {c.dir}" if c.keep else ""))
