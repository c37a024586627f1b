"""launch/gpu-check.sh, the driver of the GPU machine's two device calls, rehearsed on the CPU through
its test hooks (LNFREE_GPU_CHECK_ONLY / _FAIL / _HANG / _BUDGET_S): a failing step fails the run and
skips what needs it, a hanging step is cut at its limit, a spent budget skips the rest and fails
the run, steps that cannot run here are skipped with their reason without failing it, $OUT holds the
report and one archive per phase, and the report is the end of stdout. Plus the gtest guard on gtest's
own lines, and the kit's unpacking with Python's tarfile. The full rehearsal runs in launch/test.sh
after ctest."""
import os
import re
import subprocess
import tarfile
import time

import pytest

SOURCE = os.path.abspath(os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")))
SCRIPT = os.path.join(SOURCE, "launch", "gpu-check.sh")
LNFREE = os.path.abspath(os.environ.get("LNFREE_BINARY", os.path.join(SOURCE, "build", "lnfree")))
BUILD = os.path.dirname(LNFREE)


def run_check(tmp_path, *args, timeout=120, kit=None, **hooks):
    """The rehearsal with LNFREE_GPU_CHECK_<hook> set from **hooks, its output under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LNFREE_GPU_CHECK_") and k != "OUT"}
    env.update(OUT=str(tmp_path / "out"), LNFREE_GPU_CHECK_WORK=str(tmp_path / "work"), LNFREE_GPU_CHECK_BUILD=BUILD,
               LNFREE_KIT=str(kit or tmp_path / "no-kit.tar.xz"))
    env.update({f"LNFREE_GPU_CHECK_{k}": str(v) for k, v in hooks.items()})
    start = time.monotonic()
    result = subprocess.run(["bash", SCRIPT, "--rehearse", *args], cwd=SOURCE, env=env, capture_output=True,
                            text=True, timeout=timeout)
    result.seconds = time.monotonic() - start
    print(result.stdout[-6000:], result.stderr[-2000:])
    return result


def steps(report):
    """{step: (result, seconds, limit)} from a report's table."""
    rows = re.findall(r"^\| ([a-z0-9-]+) \| (.*) \| (\d+) \| (-?\d+) \|$", report, re.M)
    return {name: (result, int(seconds), int(limit)) for name, result, seconds, limit in rows}


def report_of(tmp_path, phase):
    with open(tmp_path / "out" / f"report-{phase}.md") as f:
        return f.read()


def test_a_failing_step_fails_the_run_and_skips_what_needs_it(tmp_path):
    r = run_check(tmp_path, "--phase", "A", ONLY="configure,build,gpu-tests,reference-gpt2-xl", FAIL="configure")
    assert r.returncode == 1, r.returncode
    report = report_of(tmp_path, "A")
    s = steps(report)
    assert s["configure"][0] == "FAILED (exit 1)"
    assert s["build"][0] == "skipped: needs configure (FAILED)"
    assert s["gpu-tests"][0] == "skipped: needs build (skipped: needs configure)"
    # A GPU-only step is skipped with its reason, and that is no failure.
    assert s["reference-gpt2-xl"][0].startswith("skipped: no GPU"), s
    assert s["probe"][0] == "skipped: not in LNFREE_GPU_CHECK_ONLY"
    assert "RESULT: FAILED (configure build gpu-tests)" in report
    # $OUT: the report and one archive of the logs, the failing log's tail in the report too.
    assert sorted(os.listdir(tmp_path / "out")) == ["logs-A.tar.gz", "report-A.md"]
    with tarfile.open(tmp_path / "out" / "logs-A.tar.gz") as archive:
        log = archive.extractfile("logs-A/configure.log").read().decode()
    assert "planted failure (LNFREE_GPU_CHECK_FAIL)" in log
    assert "### configure: FAILED (exit 1)\n```\nplanted failure" in report
    # The report is the end of stdout (the device tool's reply shows the output's tail).
    assert r.stdout.rstrip().endswith(report.rstrip())


def test_a_hanging_step_is_cut_at_the_budget_left_and_the_rest_is_skipped(tmp_path):
    r = run_check(tmp_path, "--phase", "A", ONLY="smoke-bf16,reference-gpt2-xl,careful-gpt2-xl",
                  HANG="smoke-bf16", BUDGET_S=6)
    assert r.returncode == 1
    s = steps(report_of(tmp_path, "A"))
    # The step's own limit (180 s in the rehearsal) cut to the 6 s the budget had left.
    assert s["smoke-bf16"][0] == "TIMEOUT after 6 s" and s["smoke-bf16"][2] == 6, s
    assert 6 <= s["smoke-bf16"][1] <= 9, s
    assert s["reference-gpt2-xl"][0] == "skipped: budget spent (6 s)"
    assert s["careful-gpt2-xl"][0] == "skipped: budget spent (6 s)"
    assert r.seconds < 30


def test_a_spent_budget_skips_every_step_and_fails_each_phase(tmp_path):
    r = run_check(tmp_path, BUDGET_S=0)  # both phases
    assert r.returncode == 1
    for phase in "AB":
        s = steps(report_of(tmp_path, phase))
        assert s and all(result == "skipped: budget spent (0 s)" for result, _, _ in s.values()), s
    assert sorted(os.listdir(tmp_path / "out")) == ["logs-A.tar.gz", "logs-B.tar.gz", "report-A.md", "report-B.md"]
    assert r.stdout.rstrip().endswith(report_of(tmp_path, "B").rstrip())


@pytest.mark.skipif(not os.path.isfile(os.path.join(BUILD, "CMakeCache.txt")), reason="no configured build")
def test_phase_b_keeps_phase_a_build_runs_the_bench_and_skips_the_gpu_peers(tmp_path):
    r = run_check(tmp_path, "--phase", "B",
                  ONLY="configure,build,bench-gpt2,reference-gpt2,careful-gpt2,compile-gpt2-xl")
    assert r.returncode == 0, r.stdout[-3000:]
    report = report_of(tmp_path, "B")
    s = steps(report)
    assert s["configure"][0].startswith("skipped: present") and s["build"][0].startswith("skipped: present"), s
    assert s["bench-gpt2"][0] == "ok (tiny-2x64 for gpt2, cpu fp32)", s
    assert s["careful-gpt2"][0] == "ok (tiny-2x64 for gpt2, cpu fp32)", s
    assert s["reference-gpt2"][0] == "skipped: no GPU (train_step_peer.py --mode reference needs CUDA)"
    assert s["compile-gpt2-xl"][0] == "skipped: no GPU (train_step_peer.py --mode compile needs CUDA)"
    assert "RESULT: passed" in report
    # The numbers side by side: both on the CPU, both the process's maximum resident set.
    for name in ("bench-gpt2", "careful-gpt2"):
        assert re.search(rf"^\| {name} \| \d+ \| [\d.]+ \| [\d.]+% \| \d+ MB \(process maximum resident set\) \|$",
                         report, re.M), report
    assert re.search(r"^- gpt2: lnfree / careful = [\d.]+x$", report, re.M), report


@pytest.mark.skipif(not os.path.isfile(os.path.join(BUILD, "tests", "lnfree_gpu_tests")),
                    reason="lnfree_gpu_tests is not built")
def test_gpu_tests_without_a_gpu_are_caught_by_the_guard_and_reported_skipped(tmp_path):
    r = run_check(tmp_path, "--phase", "A", ONLY="gpu-tests")
    assert r.returncode == 0
    result = steps(report_of(tmp_path, "A"))["gpu-tests"][0]
    assert result.startswith("skipped: no GPU (the guard caught Gpt2Cuda"), result


def test_the_kit_is_unpacked_with_tarfile_once_and_phase_b_keeps_it(tmp_path):
    stage = tmp_path / "stage"
    (stage / "usr" / "lib").mkdir(parents=True)
    (stage / "kit.cmake").write_text("# kit\n")
    (stage / "env.sh").write_text("# env\n")
    os.symlink("../kit.cmake", stage / "usr" / "lib" / "link")  # the kit's links are relative
    kit = tmp_path / "kit.tar.xz"
    with tarfile.open(kit, "w:xz") as archive:
        archive.add(stage, arcname=".")
    unpacked = tmp_path / "unpacked"
    r = run_check(tmp_path, "--phase", "A", kit=kit, ONLY="kit", KIT_DIR=unpacked)
    assert r.returncode == 0
    assert steps(report_of(tmp_path, "A"))["kit"][0].startswith("ok (unpacked"), report_of(tmp_path, "A")
    assert os.readlink(unpacked / "usr" / "lib" / "link") == "../kit.cmake"
    assert (unpacked / ".kit-sha256").is_file()
    r = run_check(tmp_path, kit=kit, ONLY="kit", KIT_DIR=unpacked)  # A again, then B
    assert r.returncode == 0
    assert steps(report_of(tmp_path, "A"))["kit"][0].startswith("ok (this kit is unpacked already")
    assert steps(report_of(tmp_path, "B"))["kit"][0].startswith("skipped: present")


def guard(tmp_path, gtest_output, listed):
    """launch/gpu-check.sh's gtest_guard on a gtest log: (status, what it printed)."""
    log = tmp_path / "gtest.txt"
    log.write_text(gtest_output)
    r = subprocess.run(["bash", "-c", f'source <(sed -n "/^gtest_guard() {{/,/^}}/p" "{SCRIPT}"); '
                        f'gtest_guard "{log}" {listed}'], capture_output=True, text=True)
    return r.returncode, r.stdout.strip()


def test_the_gtest_guard_reads_gtests_own_lines(tmp_path):
    passed = "[==========] 1 test from 1 test suite ran. (3 ms total)\n[  PASSED  ] 1 test.\n"
    assert guard(tmp_path, passed, 1) == (0, "guard: 1 of 1 passed, none skipped")
    # A build without one of the tests: fewer passed than listed is no pass.
    assert guard(tmp_path, passed, 2)[0] == 1
    skipped = ("[ RUN      ] Gpt2Cuda.MatchesTheCpuInFp32\ntests/model/gpt2_cuda_test.cpp:24: Skipped\n"
               "no CUDA device (this LibTorch or this machine)\n\n"
               "[  SKIPPED ] Gpt2Cuda.MatchesTheCpuInFp32 (0 ms)\n"
               "[==========] 1 test from 1 test suite ran. (0 ms total)\n[  PASSED  ] 0 tests.\n"
               "[  SKIPPED ] 1 test, listed below:\n[  SKIPPED ] Gpt2Cuda.MatchesTheCpuInFp32\n")
    assert guard(tmp_path, skipped, 1) == (3, "guard: skipped: Gpt2Cuda.MatchesTheCpuInFp32 (gtest reports 0 passed of 1)")


@pytest.mark.parametrize("args", [["--phase", "C"], ["--bogus"]])
def test_usage_errors_exit_2(tmp_path, args):
    r = run_check(tmp_path, *args)
    assert r.returncode == 2 and "usage:" in r.stderr
