"""Shared helpers for the training tests: the lnfree binary and a run helper."""
import os
import subprocess

import pytest

LNFREE = os.environ.get("LNFREE_BINARY", "build/lnfree")
SOURCE = os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def lnfree(*args, check=True):
    """Runs lnfree from the source tree (configs use paths relative to it); returns the process."""
    result = subprocess.run([LNFREE, *map(str, args)], cwd=SOURCE, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"lnfree {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def brown_tokens():
    manifest = os.path.join(SOURCE, "data", "tokens", "brown", "manifest.json")
    if not os.path.exists(manifest):
        pytest.fail(f"{manifest} is missing: run launch/setup.sh first")
    return manifest
