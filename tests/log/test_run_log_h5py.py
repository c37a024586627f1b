"""The run log (src/log/run_log.h) as analysis code sees it: read with h5py, after the run and while
the writer is still open (SWMR). The file is written by the gtest RunLogH5pyFixture in
lnfree_core_tests (tests/log/run_log_test.cpp); the expected values below mirror its formulas."""
import os
import subprocess
import time

import h5py
import numpy as np

SOURCE_DIR = os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CORE_TESTS = os.environ.get("LNFREE_CORE_TESTS", os.path.join(SOURCE_DIR, "build", "tests", "lnfree_core_tests"))
FIXTURE = ["--gtest_filter=RunLogH5pyFixture.WritesTheFileThatH5pyReads"]
LN_NAMES = ["h.0.ln_1", "h.0.ln_2", "h.1.ln_1", "h.1.ln_2", "ln_f"]


def fixture_env(path, handshake=None):
    env = dict(os.environ, LNFREE_RUNLOG_FIXTURE=str(path))
    if handshake is not None:
        env["LNFREE_RUNLOG_HANDSHAKE"] = str(handshake)
    return env


def check_ran(output):
    # The fixture skips itself unless the environment names the output: make sure it really ran.
    assert "[  PASSED  ] 1 test" in output and "SKIPPED" not in output, output


def expected_train(steps):
    s = np.array(steps, dtype=np.float64)
    return {
        "step": np.array(steps, dtype=np.int64),
        "tokens": 4096 * (np.array(steps, dtype=np.int64) + 1),
        "loss": 3.5 - 0.125 * s,
        "ce_loss": 3.0 - 0.125 * s,
        "aux_loss": np.full(len(steps), 0.5),
        "lr": np.array([6e-4 * (step + 1) / 5 for step in steps]),
        "grad_norm": 1.0 + 0.0625 * s,
        "tokens_per_s": 1000.0 + s,
    }


def expected_sigma(steps):
    return np.array([[1.0 + j + 0.25 * step for j in range(len(LN_NAMES))] for step in steps])


def expected_fake(steps):
    return np.array([[[j < step, j < step - 1] for j in range(len(LN_NAMES))] for step in steps], dtype=np.int8)


def as_text(dataset):
    """Fixed-length UTF-8 strings as Python str (the way analysis code reads them)."""
    assert h5py.check_string_dtype(dataset.dtype).encoding == "utf-8"
    return dataset.asstr()[()]


def test_h5py_reads_a_finished_run_log(tmp_path):
    path = tmp_path / "run.h5"
    run = subprocess.run([CORE_TESTS] + FIXTURE, env=fixture_env(path), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    check_ran(run.stdout)
    with h5py.File(path, "r") as f:
        attrs = f.attrs
        assert attrs["schema_version"] == 1
        assert attrs["config"] == "[model]\nn_layer = 2\nn_embd = 8\n"
        assert isinstance(attrs["mode"], str) and attrs["mode"] == "remove-ln"
        assert (attrs["n_layer"], attrs["n_embd"], attrs["n_head"]) == (2, 8, 2)
        assert (attrs["params_total"], attrs["params_non_embedding"]) == (1234, 567)
        assert attrs["seed"] == 1234 and attrs["lr_peak"] == 6e-4 and attrs["dataset"] == "brown"
        assert isinstance(attrs["lnfree_version"], str) and isinstance(attrs["git_commit"], str)

        want = expected_train(range(5))
        assert sorted(f["train"].keys()) == sorted(want.keys())
        for name, values in want.items():
            got = f["train"][name][()]
            assert got.dtype == values.dtype, name
            np.testing.assert_array_equal(got, values, err_msg=name)

        assert sorted(f["eval"].keys()) == ["brown_val", "nlp_val", "spare_val"]
        np.testing.assert_array_equal(f["eval/brown_val/step"][()], [0, 2, 4])
        np.testing.assert_array_equal(f["eval/brown_val/loss"][()], [4.0, 3.5, 3.0])
        np.testing.assert_array_equal(f["eval/nlp_val/step"][()], [0, 3])
        assert f["eval/spare_val/step"].shape == (0,)

        kinds = as_text(f["events/kind"])
        assert [type(k) for k in kinds] == [str] * 5
        assert list(kinds) == ["ln2", "ln1qk", "ln1v", "eot", "bos"]
        np.testing.assert_array_equal(f["events/step"][()], [1, 2, 2, 4, 4])
        np.testing.assert_array_equal(f["events/layer"][()], [0, 1, 1, -1, -1])

        assert list(f["ln"].attrs["names"]) == LN_NAMES
        assert list(f["ln/fake"].attrs["paths"]) == ["main", "v"]
        sigma = f["ln/sigma"][()]
        assert sigma.shape == (5, len(LN_NAMES))
        print(f"ln/sigma max abs error: {np.abs(sigma - expected_sigma(range(5))).max():.3g}")
        np.testing.assert_array_equal(sigma, expected_sigma(range(5)))
        np.testing.assert_array_equal(f["ln/step"][()], np.arange(5))
        np.testing.assert_array_equal(f["ln/fake"][()], expected_fake(range(5)))

        assert as_text(f["status"]) == "complete"
        assert as_text(f["status_message"]) == "finished 5 steps"


def wait_for(path, process, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"writer exited early ({process.returncode}): {process.communicate()[0]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"writer did not create {path.name} within {timeout} s")
        time.sleep(0.01)


def test_h5py_reads_the_log_while_the_writer_is_open(tmp_path):
    path = tmp_path / "run.h5"
    handshake = tmp_path / "handshake"
    handshake.mkdir()
    writer = subprocess.Popen([CORE_TESTS] + FIXTURE, env=fixture_env(path, handshake), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(handshake / "written_1", writer)
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            np.testing.assert_array_equal(f["train/step"][()], [0, 1, 2])
            np.testing.assert_array_equal(f["train/loss"][()], expected_train(range(3))["loss"])
            np.testing.assert_array_equal(f["ln/sigma"][()], expected_sigma(range(3)))
            assert list(as_text(f["events/kind"])) == ["ln2", "ln1qk", "ln1v"]
            assert as_text(f["status"]) == "running"
            (handshake / "read_1").touch()

            wait_for(handshake / "written_2", writer)
            for name in ["train/step", "train/loss", "ln/sigma", "ln/fake", "events/kind", "status"]:
                f[name].refresh()
            np.testing.assert_array_equal(f["train/step"][()], np.arange(5))
            np.testing.assert_array_equal(f["train/loss"][()], expected_train(range(5))["loss"])
            np.testing.assert_array_equal(f["ln/sigma"][()], expected_sigma(range(5)))
            np.testing.assert_array_equal(f["ln/fake"][()], expected_fake(range(5)))
            assert list(as_text(f["events/kind"])) == ["ln2", "ln1qk", "ln1v", "eot", "bos"]
            assert as_text(f["status"]) == "running"
            (handshake / "read_2").touch()

            output, _ = writer.communicate(timeout=60)
            assert writer.returncode == 0, output
            check_ran(output)
            # The writer has finished: the same reader sees the final status after a refresh.
            f["status"].refresh()
            f["status_message"].refresh()
            assert as_text(f["status"]) == "complete"
            assert as_text(f["status_message"]) == "finished 5 steps"
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate()
