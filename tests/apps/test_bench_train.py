"""lnfree bench train on a tiny shape on the CPU: it prints its lines, the split adds up to the step,
and the FLOP count it prints equals the formula computed here from the shape file."""
import os
import sys
import subprocess
import tomllib

sys.path.insert(0, os.path.dirname(__file__))
from bench_line import check_bench_line  # noqa: E402

LNFREE = os.environ.get("LNFREE_BINARY", "build/lnfree")
SOURCE = os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def test_bench_train_prints_throughput_split_flops_and_mfu():
    result = subprocess.run([LNFREE, "bench", "train", "--model", "tiny-2x64", "--micro-batch", "4", "--seq-len", "64",
                             "--steps", "4", "--warmup", "1", "--threads", "1"], cwd=SOURCE, capture_output=True,
                            text=True, timeout=300)
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    check_bench_line(out, SOURCE)  # peak memory too: the process's maximum resident set on the CPU


def test_bench_train_refuses_bf16_on_the_cpu():
    result = subprocess.run([LNFREE, "bench", "train", "--precision", "bf16"], cwd=SOURCE, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "bf16 needs --device cuda" in result.stderr, result.stderr
