"""Fixtures for the data-parallel tests (helpers live in dist_helpers.py)."""
import os

import pytest

from dist_helpers import SOURCE, read_log, run, train


@pytest.fixture(scope="session")
def smoke_data():
    manifest = os.path.join(SOURCE, "data", "tokens", "brown", "manifest.json")
    if not os.path.exists(manifest):
        pytest.fail(f"{manifest} is missing: run launch/setup.sh first")


@pytest.fixture(scope="session")
def one_rank_reference(tmp_path_factory, smoke_data):
    """configs/smoke.toml run by one process (2 micro-batches of 4 per step): the reference log."""
    out = tmp_path_factory.mktemp("dist") / "one-rank"
    run(train(out, "--set", "dist.check_weights=true"))
    return read_log(out)
