"""launch/peers/train_step_peer.py, the PyTorch peer of `lnfree bench train`: on a tiny shape on the
CPU it prints bench train's lines (parsed with test_bench_train.py's regexes), its split adds up, its
step-0 loss is ln V (random init at std 0.02), and the fake ln_2's running σ took one EMA step
toward the statistic it measured while its divisor stayed frozen. Plus the σ bookkeeping and the aux
loss in-process on a small shape, and the refusals of the CUDA-only modes on the CPU."""
import math
import os
import re
import subprocess
import sys
import tomllib

sys.path.insert(0, os.path.dirname(__file__))
from bench_line import check_bench_line  # noqa: E402

import pytest
import torch

SOURCE = os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PEER = os.path.join(SOURCE, "launch", "peers", "train_step_peer.py")
sys.path.insert(0, os.path.dirname(PEER))
import train_step_peer  # noqa: E402


def run_peer(*args, timeout=120):
    return subprocess.run([sys.executable, PEER, *args], cwd=SOURCE, capture_output=True, text=True, timeout=timeout)


def test_careful_cpu_prints_bench_train_lines_with_ln_v_loss_and_an_ema_step():
    result = run_peer("--model", "tiny-2x64", "--micro-batch", "4", "--seq-len", "64", "--steps", "3",
                      "--warmup", "1", "--threads", "1")
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.startswith("train_step_peer careful: "), out
    V = check_bench_line(out, SOURCE)["vocab_size"]
    # Logits of std ~0.02·sqrt(d) give CE ≈ ln V; a wrong CE (no shift, wrong reduction, logits
    # not tied or not normalised) lands far from it.
    ce = float(re.search(r"step 0 \(\d+ ms\): loss [\d.]+ = CE ([\d.]+)", out).group(1))
    assert abs(ce - math.log(V)) < 0.1, out
    # h.0.ln_2 is fake: its running σ moved from 1 by one EMA step (m = 0.9) toward the per-token
    # std it measured, and the divisor it divides by stayed at the frozen 1.
    before, after, measured, divisor = map(float, re.search(
        r"running ([\d.]+) -> ([\d.]+) toward its statistic ([\d.]+) \(EMA m = 0\.9\), divisor ([\d.]+) \(frozen\)",
        out).groups())
    assert before == 1.0 and divisor == 1.0, out
    assert abs(after - (0.9 * before + 0.1 * measured)) < 2e-6, out
    assert abs(after - measured) < abs(before - measured) and 0 < measured < 0.5, out


SMALL = {"n_layer": 2, "n_embd": 16, "n_head": 2, "n_positions": 8, "vocab_size": 97,
         "layer_norm_epsilon": 1e-5, "dropout": 0.0}


def test_fake_ln_divides_by_its_frozen_sigma_and_real_divisors_track_the_ema():
    torch.manual_seed(0)
    model = train_step_peer.CarefulGpt2(SMALL).train()
    names = [name for name, _ in model.layer_norms()]
    assert names == ["h.0.ln_1", "h.0.ln_2", "h.1.ln_1", "h.1.ln_2", "ln_f"]
    assert model.fake.tolist() == [False, True, False, True, False]
    ids = torch.randint(97, (3, 8))
    logits, residual, stats = model(ids)
    assert logits.shape == (3, 8, 97) and residual.shape == (3, 8, 16) and stats.shape == (5, 2)
    # ln_f's row: mean per-token std of the final residual, and at position 0.
    stds = (residual.detach().var(-1, unbiased=False) + 1e-5).sqrt()
    assert torch.allclose(stats[4], torch.stack((stds.mean(), stds[:, 0].mean())))
    # The fake LN's output is (x - mean) / divisor · w + b, whatever the batch's std.
    ln = model.h[0].ln_2
    x = torch.randn(3, 8, 16) * 5
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
        got = ln(x, torch.tensor(2.0))
    assert torch.allclose(got, (x - x.mean(-1, keepdim=True)) / 2.0 * ln.weight + ln.bias, atol=1e-6)
    model.commit_statistics(stats)
    expected = 0.9 + 0.1 * stats
    assert torch.allclose(model.running_sigma, expected)
    assert torch.allclose(model.divisor[[0, 2, 4]], expected[[0, 2, 4], 0])  # real: follow the EMA
    assert model.divisor[[1, 3]].tolist() == [1.0, 1.0]                       # fake: frozen


def test_aux_target_leaves_out_position_0_and_eot_but_the_mean_covers_all():
    residual = torch.zeros(1, 4, 2)
    residual[0, :, 0] = torch.tensor([10.0, 1.0, 3.0, 100.0])  # per-token std = |x0| / 2 (+eps)
    ids = torch.tensor([[5, 6, 7, train_step_peer.EOT]])
    sigma = (residual.var(-1, unbiased=False) + 1e-5).sqrt()[0]
    target = (sigma[1] + sigma[2]) / 2
    expected = ((sigma - target) ** 2).mean()
    assert torch.allclose(train_step_peer.aux_sigma_loss(residual, ids), expected)
    only_special = torch.tensor([[train_step_peer.EOT] * 4])
    assert torch.allclose(train_step_peer.aux_sigma_loss(residual, only_special), ((sigma - 1) ** 2).mean())


@pytest.mark.parametrize("mode", ["compile", "reference"])
def test_cuda_only_modes_refuse_the_cpu(mode):
    result = run_peer("--mode", mode, "--device", "cpu", timeout=60)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert f"--mode {mode} needs --device cuda" in result.stderr, result.stderr
    assert result.stdout == ""
