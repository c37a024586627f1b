#!/usr/bin/env python3
"""The PyTorch peer of `lnfree bench train`: the same LN-removal training step on the same shape,
timed the same way, printed in the same line format (so one regex parses both).

The step (as src/apps/cmd_bench_train.cpp does it): random GPT-2 weights, every block's ln_2 fake
(half the LayerNorms), forward, cross-entropy + 0.1 x aux σ loss, backward, σ statistics commit,
gradient clipping at 1.0, AdamW (lr 1e-4, weight decay 0.01). Medians over the steps after
--warmup; forward / backward / optimizer each timed with a device sync (on CUDA only).

Modes:
  careful    a clean eager GPT-2 in plain torch, fp32 master weights; CUDA: bf16 autocast and
             fused AdamW; CPU: fp32 and foreach AdamW.
  compile    the careful model's forward + loss under torch.compile (CUDA only).
  reference  the paper's reference setup (spec §1-§5, CUDA only): transformers' GPT2LMHeadModel
             (its modules and init) in bf16 weights, every LN a FakeLN that syncs with the host on
             each call, run through the reference's patched forward (ln_1 three times, Q/K and V
             from separate matmuls, SDPA); HF Trainer-style AdamW, no master weights.

Uses only torch (transformers for --mode reference, imported there). Run with Debian's
/usr/bin/python3 on the CPU machines (torch 1.13, no SDPA: attention is written out as lnfree's
1.13 build does).
"""
import argparse
import contextlib
import inspect
import math
import os
import resource
import statistics
import sys
import time
import tomllib

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PEER = "train_step_peer"

# The step's constants, all as in cmd_bench_train.cpp (train::AdamWOptions, aux weight, clip).
EOT = 50256            # <|endoftext|>: excluded from the aux target (lnfree's shape.eot_token)
STAT_EPS = 1e-5        # eps of the σ statistic and the aux loss (spec §1.4), not the LN's eps
MOMENTUM = 0.9         # EMA retention of the running σ
AUX_WEIGHT = 0.1
LR = 1e-4
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
INIT_STD = 0.02

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")  # torch >= 2.0


class PeerError(Exception):
    """A refusal with a message for the user (exit status 1, like lnfree's fail())."""


# --------------------------------------------------------------------------------------------
# Shared pieces: statistics and the aux loss exactly as src/model/{layer_norm,aux_loss}.cpp.


def per_token_std(x, eps=STAT_EPS, fp32=True):
    """sqrt(biased var over the last dim + eps), shape x.shape[:-1]; in fp32 like lnfree unless
    fp32=False (the reference computes it in the activation dtype)."""
    if fp32:
        x = x.float()
    return (x.var(-1, unbiased=False) + eps).sqrt()


def sigma_statistic(x):
    """One LN's recorded row for this forward: [mean per-token std, mean std at position 0]
    (lnfree's update_statistics), detached, fp32."""
    with torch.no_grad():
        stds = per_token_std(x.detach())
        return torch.stack((stds.mean(), stds[:, 0].mean()))


def aux_sigma_loss(residual, ids, eot=EOT, fp32=True):
    """Mean over all positions of (σ_token - target)², target = the detached mean σ over positions
    that are neither 0 nor EOT (1 when none is); no host sync (lnfree's aux_sigma_loss)."""
    sigma = per_token_std(residual, fp32=fp32)
    ordinary = ids.ne(eot)
    ordinary[:, 0] = False
    mask = ordinary.to(sigma.dtype)
    count = mask.sum()
    detached = sigma.detach()
    target = torch.where(count > 0, (detached * mask).sum() / count.clamp_min(1), torch.ones_like(count))
    return (sigma - target).pow(2).mean()


# --------------------------------------------------------------------------------------------
# The careful model: lnfree's Gpt2 module for module, written the way a careful PyTorch user would.


class Conv1D(nn.Module):
    """HF's Conv1D layout (weight [in, out]) so the random init draws the same numbers in the same
    order as lnfree's; applied as one fused GEMM + bias (F.linear of the transposed view)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))  # torch.empty: draws nothing
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return F.linear(x, self.weight.t(), self.bias)


class RemovableLayerNorm(nn.Module):
    """Real: standard LN. Fake: (x - mean) / σ · w + b with σ a 0-d fp32 divisor handed in by the
    model (its per-LN row of `divisor`), centring and σ in fp32 as lnfree does (spec §1.9)."""

    def __init__(self, dim, eps, fake=False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps
        self.fake = fake

    def forward(self, x, divisor):
        if not self.fake:
            return F.layer_norm(x, (x.size(-1),), self.weight, self.bias, self.eps)
        xf = x.float()
        centred = xf - xf.mean(-1, keepdim=True)
        return (centred / divisor * self.weight + self.bias).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.n_head, self.n_embd, self.dropout = shape["n_head"], shape["n_embd"], shape["dropout"]
        self.c_attn = Conv1D(self.n_embd, 3 * self.n_embd)
        self.c_proj = Conv1D(self.n_embd, self.n_embd)
        if not HAS_SDPA:  # torch 1.13: the written-out path needs a mask (not a saved buffer)
            n = shape["n_positions"]
            self.register_buffer("causal_mask", torch.ones(n, n, dtype=torch.bool).triu(1), persistent=False)

    def forward(self, x):
        B, T, d = x.shape
        hd = d // self.n_head
        q, k, v = self.c_attn(x).split(d, dim=-1)  # both ln_1 paths real: one Q/K/V GEMM
        q, k, v = (t.view(B, T, self.n_head, hd).transpose(1, 2) for t in (q, k, v))
        p = self.dropout if self.training else 0.0
        if HAS_SDPA:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1)).mul_(1.0 / math.sqrt(hd))
            scores = scores.masked_fill(self.causal_mask[:T, :T], float("-inf"))
            y = torch.matmul(F.dropout(torch.softmax(scores, -1), p, self.training), v)
        y = self.c_proj(y.transpose(1, 2).reshape(B, T, d))
        return F.dropout(y, self.dropout, self.training)


class Mlp(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.c_fc = Conv1D(shape["n_embd"], 4 * shape["n_embd"])
        self.c_proj = Conv1D(4 * shape["n_embd"], shape["n_embd"])
        self.dropout = shape["dropout"]

    def forward(self, x):
        return F.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")), self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, shape):
        super().__init__()
        eps = shape["layer_norm_epsilon"]
        self.ln_1 = RemovableLayerNorm(shape["n_embd"], eps)
        self.attn = Attention(shape)
        self.ln_2 = RemovableLayerNorm(shape["n_embd"], eps, fake=True)  # the bench's removed half
        self.mlp = Mlp(shape)

    def forward(self, x, divisor_1, divisor_2, stats):
        stats.append(sigma_statistic(x))
        h = x + self.attn(self.ln_1(x, divisor_1))
        stats.append(sigma_statistic(h))
        return h + self.mlp(self.ln_2(h, divisor_2))


class CarefulGpt2(nn.Module):
    """GPT-2 as lnfree's Gpt2 computes it. The σ state of all 2L+1 LNs lives in two model buffers
    (order h.0.ln_1, h.0.ln_2, ..., ln_f) so that the commit is a handful of kernels whatever L is:
      running_sigma [n_ln, 2]  EMA of (mean std, position-0 mean std), starting at 1 (set_sigma(1, 1))
      divisor       [n_ln]     what a fake path divides by: tracks running σ while real, frozen when fake
    forward() returns the statistics it measured instead of storing them (no side effects, so
    torch.compile traces it whole); commit_statistics() applies them at the end of the step."""

    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        # Construction order = lnfree's: the embeddings draw their default N(0, 1) init here,
        # then reset_parameters() draws the GPT-2 init, so CPU weights match lnfree's for a seed.
        self.wte = nn.Embedding(shape["vocab_size"], shape["n_embd"])
        self.wpe = nn.Embedding(shape["n_positions"], shape["n_embd"])
        self.h = nn.ModuleList(Block(shape) for _ in range(shape["n_layer"]))
        self.ln_f = RemovableLayerNorm(shape["n_embd"], shape["layer_norm_epsilon"])
        lns = self.layer_norms()
        self.register_buffer("running_sigma", torch.ones(len(lns), 2))
        self.register_buffer("divisor", torch.ones(len(lns)))
        self.register_buffer("fake", torch.tensor([ln.fake for _, ln in lns]))
        self.reset_parameters()

    def layer_norms(self):
        out = []
        for i, block in enumerate(self.h):
            out += [(f"h.{i}.ln_1", block.ln_1), (f"h.{i}.ln_2", block.ln_2)]
        return out + [("ln_f", self.ln_f)]

    @torch.no_grad()
    def reset_parameters(self):
        """HF's _init_weights, in lnfree's order: N(0, 0.02), c_proj weights / sqrt(2 L)."""
        self.wte.weight.normal_(0.0, INIT_STD)
        self.wpe.weight.normal_(0.0, INIT_STD)
        proj_std = INIT_STD / math.sqrt(2.0 * self.shape["n_layer"])
        for block in self.h:
            block.attn.c_attn.weight.normal_(0.0, INIT_STD)
            block.attn.c_proj.weight.normal_(0.0, proj_std)
            block.mlp.c_fc.weight.normal_(0.0, INIT_STD)
            block.mlp.c_proj.weight.normal_(0.0, proj_std)

    def forward(self, ids):
        """ids [B, T] -> (logits [B, T, V], final residual [B, T, d], statistics [n_ln, 2])."""
        T = ids.size(1)
        x = self.wte(ids) + self.wpe(torch.arange(T, device=ids.device))
        x = F.dropout(x, self.shape["dropout"], self.training)
        stats = []
        for i, block in enumerate(self.h):
            x = block(x, self.divisor[2 * i], self.divisor[2 * i + 1], stats)
        stats.append(sigma_statistic(x))
        logits = F.linear(self.ln_f(x, self.divisor[-1]), self.wte.weight)  # tied unembedding
        return logits, x, torch.stack(stats)

    @torch.no_grad()
    def commit_statistics(self, stats):
        """One EMA step per LN (one micro-batch per step), then real LNs' divisors follow the running
        value (so a removal would freeze it) and fake ones keep theirs (lnfree's commit)."""
        self.running_sigma.mul_(MOMENTUM).add_(stats, alpha=1.0 - MOMENTUM)
        self.divisor.copy_(torch.where(self.fake, self.divisor, self.running_sigma[:, 0]))


def careful_loss(model, inputs, targets, autocast):
    """Forward + CE + aux as cmd_bench_train.cpp: logits to fp32 for the CE, aux on ln_f's input."""
    with torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
        logits, residual, stats = model(inputs)
        ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
        loss = ce + AUX_WEIGHT * aux_sigma_loss(residual, inputs)
    return loss, ce, stats


def decay_groups(named_params, decayed):
    """Two AdamW groups: weight decay for the parameters `decayed(name, p)` picks, none for the rest."""
    decay, no_decay = [], []
    for name, p in named_params:
        (decay if decayed(name, p) else no_decay).append(p)
    return [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]


def has_parameter(function, name):
    """Whether `function` (a torch API, possibly decorated) takes `name`: torch 1.13 lacks some."""
    return name in inspect.signature(function).parameters


def clip_gradients(params, foreach=None):
    """Global-norm clip at 1.0 without a host sync: torch's clip_grad_norm_ (coefficient
    min(1, max / (norm + 1e-6)), as lnfree's); foreach=True asks for the multi-tensor kernels where
    this torch has the option, None leaves torch's default."""
    use = foreach is not None and has_parameter(torch.nn.utils.clip_grad_norm_, "foreach")
    kwargs = {"foreach": foreach} if use else {}
    return torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM, **kwargs)


class CarefulStep:
    """careful / compile: fp32 master weights, lnfree's decay grouping (weights with dim >= 2)."""

    def __init__(self, shape, device, precision, compile_model, seed):
        torch.manual_seed(seed)  # as io::instantiate_model: built on the CPU, then moved
        self.model = CarefulGpt2(shape).to(device).train()
        self.autocast = precision == "bf16"
        self.params = [p for p in self.model.parameters()]
        groups = decay_groups(self.model.named_parameters(), lambda name, p: p.dim() >= 2)
        if device.type == "cuda":
            self.optimizer = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=ADAM_EPS, fused=True)
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=ADAM_EPS, foreach=True)
        self.device = device
        self.loss_fn = careful_loss
        if compile_model:
            # Forward + losses compiled as one graph (the statistics are outputs, not side effects);
            # backward runs the compiled graph's backward. The first step pays the compilation,
            # which --warmup leaves out of the medians.
            self.loss_fn = torch.compile(careful_loss)
        self.probe = None

    def forward(self, inputs, targets):
        loss, ce, self.stats = self.loss_fn(self.model, inputs, targets, self.autocast)
        return loss, ce

    def optimizer_step(self, record_probe):
        before = self.model.running_sigma[1, 0].clone() if record_probe else None
        self.model.commit_statistics(self.stats)
        clip_gradients(self.params, foreach=True if self.device.type == "cuda" else None)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # lnfree zeroes in place; None skips a memset
        if record_probe:  # h.0.ln_2 (fake): running σ before/after the first commit, its statistic
            self.probe = (before, self.model.running_sigma[1, 0].clone(), self.stats[1, 0].clone(),
                          self.model.divisor[1].clone())

    def probe_line(self):
        if self.probe is None:
            return None
        before, after, measured, divisor = (t.item() for t in self.probe)
        return (f"h.0.ln_2 (fake) σ after step 0: running {before:.6f} -> {after:.6f} toward its statistic "
                f"{measured:.6f} (EMA m = {MOMENTUM}), divisor {divisor:.6f} (frozen)")


# --------------------------------------------------------------------------------------------
# The reference: HF GPT-2 in bf16 weights, FakeLN with host floats (spec §1.3-1.5, §4, §5.1).


class ReferenceFakeLayerNorm(nn.Module):
    """The reference's FakeLayerNorm under the paper's flags (EXP_RECOMPUTE_STD_ON_REAL=1, spec
    §1.4-1.5): every call first updates the EMA through a host float (`.item()`: a host sync per
    call), then a real call copies it into both divisor buffers and computes the LN, and a fake
    call divides by its buffer (fp32, length H: it promotes the output to fp32, spec §1.9)."""

    def __init__(self, ln, fake):
        super().__init__()
        self.weight, self.bias, self.eps = ln.weight, ln.bias, ln.eps
        self.is_fake = fake            # the main path (ln_1: Q/K)
        self.attn_v_is_fake = False    # ln_1's V path
        self.real_average_std = 1.0    # host floats, as in the reference
        self.real_bos_std = 1.0
        self.register_buffer("average_std_buffer", torch.ones(ln.weight.numel()))
        self.register_buffer("bos_std_buffer", torch.ones(ln.weight.numel()))

    def forward(self, x, path="main", selector="avg"):
        with torch.no_grad():  # the statistic, in the activation dtype
            t = per_token_std(x.detach(), fp32=False).mean().item()
        self.real_average_std = MOMENTUM * self.real_average_std + (1 - MOMENTUM) * t
        self.real_bos_std = MOMENTUM * self.real_bos_std + (1 - MOMENTUM) * t
        fake = self.attn_v_is_fake if path == "v" else self.is_fake
        if fake:
            divisor = self.bos_std_buffer if selector == "bos" else self.average_std_buffer
            return (x - x.mean(-1, keepdim=True)) / divisor * self.weight + self.bias
        self.average_std_buffer.fill_(self.real_average_std)
        self.bos_std_buffer.fill_(self.real_average_std)
        return F.layer_norm(x, (x.size(-1),), self.weight, self.bias, self.eps)


def reference_block_forward(block, x, eot_mask, n_head, attn_dropout, resid_dropout):
    """The reference's patched GPT2Block + attention forward (spec §2): ln_1 called three times
    (Q/K path, V path, V path with the EOT selector, EOT rows taking the latter), Q/K and V from
    separate slices of c_attn, SDPA with is_causal and the attention dropout passed as it is."""
    x_qk = block.ln_1(x, "main", "avg")
    x_v = block.ln_1(x, "v", "avg")
    x_v_eot = block.ln_1(x, "v", "bos")
    x_v = torch.where(eot_mask.unsqueeze(-1), x_v_eot, x_v)
    W, b = block.attn.c_attn.weight, block.attn.c_attn.bias
    B, T, H = x.shape
    q, k = (torch.matmul(x_qk, W[:, :2 * H]) + b[:2 * H]).split(H, dim=-1)
    v = torch.matmul(x_v, W[:, 2 * H:]) + b[2 * H:]
    q, k, v = (t.view(B, T, n_head, H // n_head).transpose(1, 2) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, dropout_p=attn_dropout, is_causal=True)
    y = block.attn.c_proj(y.transpose(1, 2).reshape(B, T, H))
    x = x + F.dropout(y, resid_dropout, block.training)
    return x + block.mlp(block.ln_2(x))


def reference_forward(model, ids):
    """The reference's patched transformer forward: embeddings, the patched blocks, ln_f (a module
    call, so the aux loss's pre-hook sees its input), the tied lm_head."""
    tr = model.transformer
    x = tr.drop(tr.wte(ids) + tr.wpe(torch.arange(ids.size(1), device=ids.device)))
    eot_mask = ids.eq(EOT)
    for block in tr.h:
        x = reference_block_forward(block, x, eot_mask, model.config.n_head, model.config.attn_pdrop,
                                    model.config.resid_pdrop)
    return model.lm_head(tr.ln_f(x))


class ReferenceStep:
    """reference: HF GPT2LMHeadModel's modules and init, run through the reference's patched
    forward; bf16 weights and optimiser state (no master weights) with bf16 autocast as
    Trainer(bf16=True); the Trainer's AdamW grouping (no decay for names with "bias" and for
    nn.LayerNorm parameters; the FakeLNs are not nn.LayerNorm, so their γ is decayed) with torch's
    default AdamW implementation; the aux loss from a forward pre-hook on ln_f; and the Trainer's
    per-step NaN/Inf check of the loss (logging_nan_inf_filter, a host sync)."""

    def __init__(self, shape, device, seed):
        try:
            from transformers import GPT2Config, GPT2LMHeadModel
        except ImportError as e:
            raise PeerError(f"--mode reference needs the transformers package ({e})")
        if not HAS_SDPA:
            raise PeerError(f"--mode reference needs torch >= 2.0 for SDPA (this is {torch.__version__})")
        config = GPT2Config(vocab_size=shape["vocab_size"], n_positions=shape["n_positions"],
                            n_embd=shape["n_embd"], n_layer=shape["n_layer"], n_head=shape["n_head"],
                            layer_norm_epsilon=shape["layer_norm_epsilon"], resid_pdrop=shape["dropout"],
                            embd_pdrop=shape["dropout"], attn_pdrop=shape["dropout"])
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
        for block in model.transformer.h:
            block.ln_1 = ReferenceFakeLayerNorm(block.ln_1, fake=False)
            block.ln_2 = ReferenceFakeLayerNorm(block.ln_2, fake=True)  # the bench's removed half
        model.transformer.ln_f = ReferenceFakeLayerNorm(model.transformer.ln_f, fake=False)
        self.model = model.to(device=device, dtype=torch.bfloat16).train()
        for m in self.model.modules():  # the σ buffers stay fp32 (spec §1.9)
            if isinstance(m, ReferenceFakeLayerNorm):
                m.average_std_buffer.data = m.average_std_buffer.data.float()
                m.bos_std_buffer.data = m.bos_std_buffer.data.float()
        self.residual = None
        self.model.transformer.ln_f.register_forward_pre_hook(self._capture)
        self.params = [p for p in self.model.parameters()]
        groups = decay_groups(self.model.named_parameters(), lambda name, p: "bias" not in name)
        self.optimizer = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=ADAM_EPS)

    def _capture(self, module, inputs):
        self.residual = inputs[0]

    def forward(self, inputs, targets):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = reference_forward(self.model, inputs)
            ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
            loss = ce + AUX_WEIGHT * aux_sigma_loss(self.residual, inputs, fp32=False)
        self.loss = loss
        return loss, ce

    def optimizer_step(self, record_probe):
        # After backward the Trainer checks the step's loss (logging_nan_inf_filter, on by default):
        # a host sync per step. Its result only chooses what is logged.
        self.finite = not bool(torch.isnan(self.loss) or torch.isinf(self.loss))
        clip_gradients(self.params)  # the Trainer's: accelerate -> clip_grad_norm_ with its defaults
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def probe_line(self):
        ln = self.model.transformer.h[0].ln_2
        return (f"h.0.ln_2 (fake) σ at the end: running {ln.real_average_std:.6f} (host float), "
                f"divisor {ln.average_std_buffer[0].item():.6f} (frozen)")


# --------------------------------------------------------------------------------------------
# The benchmark loop and the printout (cmd_bench_train.cpp's, line for line).


def load_shape(model):
    """configs/models/<name>.toml (or a .toml path): its [model] table, with lnfree's defaults."""
    path = model if model.endswith(".toml") else os.path.join(REPO, "configs", "models", f"{model}.toml")
    if not os.path.isfile(path):
        raise PeerError(f"--model {model}: no shape file {path}")
    with open(path, "rb") as f:
        m = tomllib.load(f).get("model", {})
    shape = {"layer_norm_epsilon": 1e-5, "dropout": 0.0}
    shape.update(m)
    for key in ("n_layer", "n_embd", "n_head", "n_positions", "vocab_size"):
        if key not in shape:
            raise PeerError(f"{path}: [model] has no {key}")
    return shape, os.path.relpath(path, REPO)


def keep_large_allocations_in_the_heap():
    """What lnfree's main() does first (src/util/malloc_tuning.cpp): glibc's mmap threshold at 1 GiB
    and heap trimming off, so each step's big buffers (the logits) are reused instead of arriving as
    fresh zeroed pages; on the 2-core CPU machine that kernel work otherwise makes the step several
    times slower, in this peer as in lnfree. Returns whether glibc accepted both settings."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
    threshold = libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1
    trim = libc.mallopt(M_TRIM_THRESHOLD, -1) == 1
    return threshold and trim


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measured_gemm_flops(device, dtype, n):
    """Best FLOP/s of five square matmuls of n (lnfree's measured peak)."""
    with torch.no_grad():
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        best = 0.0
        for _ in range(5):
            sync(device)
            t0 = time.perf_counter()
            torch.mm(a, b)
            sync(device)
            best = max(best, 2.0 * n ** 3 / (time.perf_counter() - t0))
    return best


def check_options(o):
    if o.mode in ("compile", "reference") and o.device != "cuda":
        raise PeerError(f"--mode {o.mode} needs --device cuda (it is a GPU comparison; on the CPU use "
                        "--mode careful)")
    if o.precision == "auto":
        o.precision = "bf16" if o.device == "cuda" else "fp32"
    if o.precision == "bf16" and o.device != "cuda":
        raise PeerError("--precision bf16 needs --device cuda")
    if o.mode == "reference" and o.precision != "bf16":
        raise PeerError("--mode reference is bf16 weights only (the paper's setup)")
    if o.device == "cuda" and not torch.cuda.is_available():
        raise PeerError("--device cuda, but this torch sees no CUDA device")
    if o.mode == "compile" and not hasattr(torch, "compile"):
        raise PeerError(f"--mode compile needs torch >= 2.0 (this is {torch.__version__})")
    if o.device == "cuda" and o.mode != "reference" and not has_parameter(torch.optim.AdamW, "fused"):
        raise PeerError(f"fused AdamW needs torch >= 2.0 (this is {torch.__version__})")
    if o.steps <= o.warmup or o.warmup < 0:
        raise PeerError(f"--steps ({o.steps}) must exceed --warmup ({o.warmup}) >= 0")
    if o.micro_batch < 1 or o.seq_len < 2:
        raise PeerError("--micro-batch must be >= 1 and --seq-len >= 2")


def run(o):
    check_options(o)
    if o.device == "cpu" and not o.glibc_malloc_defaults:
        keep_large_allocations_in_the_heap()
    if o.threads > 0:
        torch.set_num_threads(o.threads)
    shape, origin = load_shape(o.model)
    if o.seq_len > shape["n_positions"]:
        raise PeerError(f"--seq-len {o.seq_len} exceeds the model's n_positions {shape['n_positions']}")
    device = torch.device("cuda", 0) if o.device == "cuda" else torch.device("cpu")
    if o.mode == "reference":
        step_impl = ReferenceStep(shape, device, o.seed)
    else:
        step_impl = CarefulStep(shape, device, o.precision, o.mode == "compile", o.seed)

    torch.manual_seed(o.seed + 1)  # the tokens, as lnfree draws them
    rows = torch.randint(shape["vocab_size"], (o.micro_batch, o.seq_len + 1), dtype=torch.long, device=device)
    inputs, targets = rows[:, :o.seq_len], rows[:, 1:]

    forward_s, backward_s, optimizer_s, step_s = [], [], [], []
    first = None
    for step in range(o.steps):
        sync(device)
        t0 = time.perf_counter()
        loss, ce = step_impl.forward(inputs, targets)
        sync(device)
        t1 = time.perf_counter()
        loss.backward()
        sync(device)
        t2 = time.perf_counter()
        step_impl.optimizer_step(record_probe=step == 0)
        sync(device)
        t3 = time.perf_counter()
        if step == 0:
            first = (loss.detach(), ce.detach(), t3 - t0)  # read after the loop: no sync in the steps
        if step < o.warmup:
            continue
        forward_s.append(t1 - t0)
        backward_s.append(t2 - t1)
        optimizer_s.append(t3 - t2)
        step_s.append(t3 - t0)

    med = statistics.median
    step_time = med(step_s)
    tokens_per_s = o.micro_batch * o.seq_len / step_time
    L, d, V = shape["n_layer"], shape["n_embd"], shape["vocab_size"]
    n = 12 * L * d * d + V * d
    flops_per_token = 6 * n + 12.0 * L * d * o.seq_len
    bf16 = o.precision == "bf16"
    measured = measured_gemm_flops(device, torch.bfloat16 if bf16 else torch.float32,
                                   8192 if device.type == "cuda" else 1024)
    device_name = "CUDA device 0" if device.type == "cuda" else "the CPU"
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    name = f"{PEER} {o.mode}"
    detail = f"torch {torch.__version__}"
    if o.mode == "reference":
        import transformers
        detail += f", transformers {transformers.__version__} GPT2LMHeadModel, bf16 weights, reference forward"
    elif o.mode == "compile":
        detail += ", torch.compile"
    else:
        detail += ", eager" + ("" if HAS_SDPA else ", written-out attention (no SDPA)")

    print(f"{name}: {origin} ({L} layers, d={d}, heads {shape['n_head']}, vocab {V}), {o.device} {o.precision}, "
          f"micro-batch {o.micro_batch} x {o.seq_len} tokens, {torch.get_num_threads()} thread(s), "
          f"medians of steps {o.warmup + 1}-{o.steps} ({detail})")
    print(f"{name}:   tokens/s {tokens_per_s:.0f}  step {step_time * 1e3:.1f} ms = forward {med(forward_s) * 1e3:.1f} "
          f"+ backward {med(backward_s) * 1e3:.1f} + optimizer {med(optimizer_s) * 1e3:.1f} + communication 0.0 ms")
    print(f"{name}:   FLOP/token = 6N + 12·L·d·T = 6 x {n:.0f} + 12 x {L} x {d} x {o.seq_len} = "
          f"{flops_per_token:.4g}  (N = 12·L·d² + V·d, no position embeddings)")
    print(f"{name}:   MFU {100 * flops_per_token * tokens_per_s / measured:.1f}% = FLOP/token x tokens/s / the "
          f"{'bf16' if bf16 else 'fp32'} GEMM peak measured now on {device_name}: {measured / 1e9:.1f} GFLOP/s")
    # lnfree's line: on CUDA the allocator's peak since the start (warm-up and the GEMM peak included,
    # never reset; the figure bench train prints too), with the host's maximum resident set after it.
    if device.type == "cuda":
        memory = (f"peak memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB (CUDA allocator peak "
                  f"allocated), host {rss_mb:.0f} MB (process maximum resident set)")
    else:
        memory = f"peak memory {rss_mb:.0f} MB (process maximum resident set)"
    print(f"{name}:   {memory}")
    loss0, ce0, time0 = first
    print(f"{name}:   step 0 ({time0 * 1e3:.0f} ms): loss {loss0.item():.4f} = CE {ce0.item():.4f} + "
          f"{AUX_WEIGHT} x aux; ln V = {math.log(V):.4f}")
    probe = step_impl.probe_line()
    if probe:
        print(f"{name}:   {probe}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="train_step_peer.py",
        description="Time lnfree's LN-removal training step (bench train) in PyTorch, on the same shape and "
                    "options, and print it in `lnfree bench train`'s line format prefixed by the peer's name.",
        epilog="Example: /usr/bin/python3 launch/peers/train_step_peer.py --model tiny-2x64 --micro-batch 8 "
               "--seq-len 128 --steps 10 --warmup 3 --device cpu --threads 1. Exit status 1 with a message "
               "when an option combination is refused.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--mode", choices=("careful", "compile", "reference"), default="careful",
                        help="careful: clean eager torch; compile: careful under torch.compile (cuda); "
                             "reference: the paper's setup, HF GPT2LMHeadModel in bf16 weights, host-syncing "
                             "FakeLN, patched forward (cuda)")
    parser.add_argument("--model", default="tiny-2x64", help="configs/models/<name>.toml, or a path to a .toml shape")
    parser.add_argument("--micro-batch", type=int, default=8, help="Sequences per step")
    parser.add_argument("--seq-len", type=int, default=128, help="Tokens per sequence")
    parser.add_argument("--steps", type=int, default=10, help="Steps in all")
    parser.add_argument("--warmup", type=int, default=3, help="Leading steps left out of the medians")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="fp32, or bf16 (CUDA autocast; fp32 master weights except in reference mode); "
                             "auto: bf16 on cuda, fp32 on cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random weights (tokens: seed + 1)")
    parser.add_argument("--glibc-malloc-defaults", action="store_true",
                        help="CPU: leave glibc's malloc thresholds as they are (by default the peer sets "
                             "lnfree's: large buffers stay in the heap)")
    options = parser.parse_args(argv)
    try:
        run(options)
    except PeerError as e:
        print(f"{PEER}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
