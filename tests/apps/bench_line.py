"""The checks of one `lnfree bench train` line (4 x 64 on tiny-2x64), shared by lnfree's test and
its PyTorch peer's, which prints the same format: one parser for both."""
import os
import re
import tomllib


def check_bench_line(out, source):
    """Asserts the line's numbers agree with each other and with the shape; returns the shape."""
    tokens_per_s = float(re.search(r"tokens/s (\d+)", out).group(1))
    step, fwd, bwd, opt = map(float, re.search(r"step ([\d.]+) ms = forward ([\d.]+) \+ backward ([\d.]+) \+ "
                                               r"optimizer ([\d.]+)", out).groups())
    assert tokens_per_s > 0 and abs(tokens_per_s - 4 * 64 / (step / 1e3)) / tokens_per_s < 0.01
    # Medians of each part need not add up exactly to the median step; within 10% they must.
    assert abs(fwd + bwd + opt - step) / step < 0.1, out
    with open(os.path.join(source, "configs", "models", "tiny-2x64.toml"), "rb") as f:
        m = tomllib.load(f)["model"]
    L, d, V, T = m["n_layer"], m["n_embd"], m["vocab_size"], 64
    expected = 6 * (12 * L * d * d + V * d) + 12 * L * d * T
    printed = float(re.search(r"= ([\d.e+]+)  \(N = ", out).group(1))
    assert abs(printed - expected) / expected < 1e-3, (printed, expected)
    mfu = float(re.search(r"MFU ([\d.]+)%", out).group(1))
    assert 0 < mfu < 100, out
    megabytes, what = peak_memory(out)
    device = "cuda" if re.search(r"\), cuda ", out) else "cpu"
    assert megabytes > 0 and what == PEAK_MEMORY_KIND[device], out
    return m  # the model shape, for further checks


# What the "peak memory" figure is, by device: the same in lnfree's line and the peer's.
PEAK_MEMORY_KIND = {"cpu": "process maximum resident set", "cuda": "CUDA allocator peak allocated"}


def peak_memory(out):
    """(MB, what it measures) of a bench train line's "peak memory N MB (what)"."""
    found = re.search(r"peak memory (\d+) MB \(([^)]*)\)", out)
    assert found, out
    return float(found.group(1)), found.group(2)
