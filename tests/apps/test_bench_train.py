"""lnfree bench train on a tiny shape on the CPU: it prints its lines, the split adds up to the step,
and the FLOP count it prints equals the formula computed here from the shape file."""
import os
import re
import subprocess
import tomllib

LNFREE = os.environ.get("LNFREE_BINARY", "build/lnfree")
SOURCE = os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def test_bench_train_prints_throughput_split_flops_and_mfu():
    result = subprocess.run([LNFREE, "bench", "train", "--model", "tiny-2x64", "--micro-batch", "4", "--seq-len", "64",
                             "--steps", "4", "--warmup", "1", "--threads", "1"], cwd=SOURCE, capture_output=True,
                            text=True, timeout=300)
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    tokens_per_s = float(re.search(r"tokens/s (\d+)", out).group(1))
    step, fwd, bwd, opt = map(float, re.search(r"step ([\d.]+) ms = forward ([\d.]+) \+ backward ([\d.]+) \+ "
                                               r"optimizer ([\d.]+)", out).groups())
    assert tokens_per_s > 0 and abs(tokens_per_s - 4 * 64 / (step / 1e3)) / tokens_per_s < 0.01
    # Medians of each part need not add up exactly to the median step; within 10% they must.
    assert abs(fwd + bwd + opt - step) / step < 0.1, out
    with open(os.path.join(SOURCE, "configs", "models", "tiny-2x64.toml"), "rb") as f:
        m = tomllib.load(f)["model"]
    L, d, V, T = m["n_layer"], m["n_embd"], m["vocab_size"], 64
    expected = 6 * (12 * L * d * d + V * d) + 12 * L * d * T
    printed = float(re.search(r"= ([\d.e+]+)  \(N = ", out).group(1))
    assert abs(printed - expected) / expected < 1e-3, (printed, expected)
    mfu = float(re.search(r"MFU ([\d.]+)%", out).group(1))
    assert 0 < mfu < 100, out
    assert re.search(r"peak memory \d+ MB", out)


def test_bench_train_refuses_bf16_on_the_cpu():
    result = subprocess.run([LNFREE, "bench", "train", "--precision", "bf16"], cwd=SOURCE, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "bf16 needs --device cuda" in result.stderr, result.stderr
