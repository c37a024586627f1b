"""Two trainings into one --out: the second fails at once, naming the first's PID, and leaves the
first run's folder alone (issue: the losing process used to overwrite config.toml, and --resume then
continued the other run's checkpoints under the wrong config)."""
import subprocess
import time

from conftest import LNFREE, SOURCE


def test_a_second_writer_fails_at_once_and_touches_nothing(tmp_path, brown_tokens):
    out = tmp_path / "run"
    first = subprocess.Popen([LNFREE, "train", "--config", "configs/smoke.toml", "--out", out,
                              "--set", "optim.lr=3e-3"], cwd=SOURCE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "config.toml").exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert (out / "config.toml").exists(), "the first run did not start"
        config_before = (out / "config.toml").read_text()
        for resume in ([], ["--resume"]):
            started = time.time()
            second = subprocess.run([LNFREE, "train", "--config", "configs/smoke.toml", "--out", out,
                                     "--set", "optim.lr=2e-3", *resume], cwd=SOURCE, capture_output=True,
                                    text=True, timeout=60)
            print(f"second writer{' with --resume' if resume else ''}: exit {second.returncode} after "
                  f"{time.time() - started:.1f} s: {second.stderr.strip().splitlines()[-1]}")
            assert second.returncode != 0
            assert f"another lnfree process (PID {first.pid})" in second.stderr
            assert "Traceback" not in second.stderr and "frame #" not in second.stderr
            assert (out / "config.toml").read_text() == config_before
        assert first.wait(timeout=300) == 0, first.stdout.read()
    finally:
        if first.poll() is None:
            first.kill()
    assert "\nlr = 0.003\n" in (out / "config.toml").read_text()  # the first run's, not the second's 0.002
