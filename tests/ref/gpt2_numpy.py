"""Independent float64 reference for GPT-2 (numpy only), used to check lnfree's C++ forward.

Reads a Hugging Face folder (config.json + model.safetensors) with its own safetensors parser,
so neither lnfree's reader nor torch is involved. Implements GPT2LMHeadModel's math: learned
positions, pre-LN blocks, tanh-approximate GELU, causal attention, tied unembedding (or an untied
`lm_head.weight`, with an optional vocabulary bias, when config.json says
"tie_word_embeddings": false).

The norm modules follow config.json's "lnfree_norm" (absent = "layernorm"):
  layernorm  (x - mean) / sqrt(var + eps) * w + b                      (GPT-2)
  rmsnorm    x / sqrt(mean(x^2) + eps) * w + b                         (Pre-RMSNorm, bias kept)
  crmsnorm   x / sqrt((sum x^2 + (sum x)^2) / (width + 1) + eps) * w + b (compressed, width d-1)
The residual stream of a crmsnorm model is wte.shape[1] = n_embd - 1 wide; attention keeps n_embd.

It also holds the Pre-LN -> Pre-RMSNorm / Pre-CRMSNorm conversions in float64
(../shared/docs/seed-normalization.md sections 1.2, 1.3 and 1.6), written from that text alone,
to serve as the expected weights of `lnfree convert`.
"""
import json
import os
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin : base + end]
        if info["dtype"] == "BF16":
            as_u32 = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            array = as_u32.view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]])
        tensors[name] = array.reshape(info["shape"]).astype(np.float64)
    return tensors


def load(folder):
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    raw = read_safetensors(os.path.join(folder, "model.safetensors"))
    weights = {k[len("transformer.") :] if k.startswith("transformer.") else k: v for k, v in raw.items()}
    return config, weights


def _layer_norm(x, w, b, eps, sigmas=None, name=None, path=0):
    mu = x.mean(-1, keepdims=True)
    if sigmas is not None:
        return (x - mu) / sigmas[name][path] * w + b
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


NORMS = ("layernorm", "rmsnorm", "crmsnorm")


def _norm_kind(config):
    kind = config.get("lnfree_norm", "layernorm")
    if kind not in NORMS:
        raise ValueError(f"config.json: lnfree_norm: expected one of {NORMS}, got {kind!r}")
    return kind


def _rms_norm(x, w, b, eps, sigmas=None, name=None, path=0):
    if sigmas is not None:
        return x / sigmas[name][path] * w + b
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps) * w + b


def _crms_norm(x, w, b, eps, sigmas=None, name=None, path=0):
    """x holds the first d-1 coordinates of a zero-mean d-vector; the last one is -sum(x)."""
    if sigmas is not None:
        return x / sigmas[name][path] * w + b
    square_sum = (x**2).sum(-1, keepdims=True) + x.sum(-1, keepdims=True) ** 2
    return x / np.sqrt(square_sum / (x.shape[-1] + 1) + eps) * w + b


_NORM_FUNCTIONS = {"layernorm": _layer_norm, "rmsnorm": _rms_norm, "crmsnorm": _crms_norm}


def _head(config, w):
    """(unembedding [V, width], vocabulary bias or None), as GPT2LMHeadModel ties or unties it."""
    if config.get("tie_word_embeddings", True):
        return w["wte.weight"], None
    if "lm_head.weight" not in w:
        raise KeyError("config.json says tie_word_embeddings: false but model.safetensors has no lm_head.weight")
    return w["lm_head.weight"], w.get("lm_head.bias")


def _forward(config, w, ids, sigmas=None, norm_inputs=None):
    """Final logits; when norm_inputs is a list, appends (norm name, residual stream [T, width]) for
    every norm's input, in forward order."""
    ids = np.asarray(ids)
    T = len(ids)
    d, H, eps = config["n_embd"], config["n_head"], config["layer_norm_epsilon"]
    norm = _NORM_FUNCTIONS[_norm_kind(config)]
    hd = d // H
    x = w["wte.weight"][ids] + w["wpe.weight"][:T]
    mask = np.triu(np.ones((T, T), dtype=bool), 1)

    def seen(name, x):
        if norm_inputs is not None:
            norm_inputs.append((name, x.copy()))

    for i in range(config["n_layer"]):
        p = f"h.{i}."
        seen(p + "ln_1", x)
        a = norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps, sigmas, p + "ln_1", 0)
        qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]  # Conv1D: [in, out]
        if sigmas is not None:
            a_v = norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps, sigmas, p + "ln_1", 1)
            qkv[:, 2 * d :] = a_v @ w[p + "attn.c_attn.weight"][:, 2 * d :] + w[p + "attn.c_attn.bias"][2 * d :]
        q, k, v = (qkv[:, j * d : (j + 1) * d].reshape(T, H, hd).transpose(1, 0, 2) for j in range(3))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        scores[:, mask] = -np.inf
        scores -= scores.max(-1, keepdims=True)
        att = np.exp(scores)
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(1, 0, 2).reshape(T, d)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        seen(p + "ln_2", x)
        m = norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps, sigmas, p + "ln_2", 0)
        m = _gelu_tanh(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    seen("ln_f", x)
    x = norm(x, w["ln_f.weight"], w["ln_f.bias"], eps, sigmas, "ln_f", 0)
    head, head_bias = _head(config, w)
    z = x @ head.T
    return z if head_bias is None else z + head_bias


def logits(config, w, ids, sigmas=None):
    """sigmas: None for real norms, or the fixed divisors of an LN-free model, {LN name:
    (sigma of the main path, sigma of the V path)} ("h.0.ln_1", ..., "ln_f"): a fake LN computes
    (x - mean) / sigma * w + b (a fake RMSNorm / CRMSNorm x / sigma * w + b), and ln_1's Q/K and V
    read it with their own sigma."""
    return _forward(config, w, ids, sigmas)


def norm_inputs(config, w, ids, sigmas=None):
    """[(norm name, residual stream [T, width] at that norm's input)] for h.i.ln_1, h.i.ln_2 (i in
    order) and ln_f: the vectors whose mean a Pre-RMSNorm conversion must make zero."""
    seen = []
    _forward(config, w, ids, sigmas, seen)
    return seen


# ---------------------------------------------------------------------------------------------
# Conversions (float64; seed-normalization.md 1.2, 1.3, 1.6). Weights are named as load() returns
# them: no "transformer." prefix, "lm_head.weight" / "lm_head.bias" for an untied head.

def _writers(config):
    """The tensors that add to the residual stream, with the axis that runs along d_model."""
    names = [("wte.weight", 1), ("wpe.weight", 1)]
    for i in range(config["n_layer"]):
        for module in ("attn", "mlp"):
            names += [(f"h.{i}.{module}.c_proj.weight", 1), (f"h.{i}.{module}.c_proj.bias", 0)]
    return names


def _centred(x, axis):
    return x - x.mean(axis=axis, keepdims=True)


def convert_pre_rmsnorm(config, w):
    """(config, weights) of the Pre-RMSNorm form of a (tied) Pre-LN GPT-2: every write to the
    residual stream centred along d_model, the head untied (lm_head = the original wte), norms kept
    with their gamma and beta. In exact arithmetic its logits equal the original's."""
    if _norm_kind(config) != "layernorm":
        raise ValueError("convert_pre_rmsnorm: expected a LayerNorm model")
    out = {k: np.array(v, dtype=np.float64) for k, v in w.items()}
    head, head_bias = _head(config, w)
    out["lm_head.weight"] = np.array(head, dtype=np.float64)
    if head_bias is not None:
        out["lm_head.bias"] = np.array(head_bias, dtype=np.float64)
    for name, axis in _writers(config):
        out[name] = _centred(out[name], axis)
    new_config = dict(config, lnfree_norm="rmsnorm", tie_word_embeddings=False)
    return new_config, out


def convert_pre_crmsnorm(config, w):
    """(config, weights) of the Pre-CRMSNorm form (width d-1): the Pre-RMSNorm form with every
    norm's gamma/beta folded into its readers, the last coordinate of every writer dropped and
    absorbed by the readers (W'[i, :] = W[i, :] - W[d-1, :]); the head gains a vocabulary bias."""
    rms_config, r = convert_pre_rmsnorm(config, w)
    d, L = config["n_embd"], config["n_layer"]
    out = {}

    def fold_and_absorb(W, gamma, beta):
        """Reader Conv1D [d, out] behind a norm (gamma, beta): returns W' [d-1, out] and the bias added."""
        folded = gamma[:, None] * W
        return folded[: d - 1] - folded[d - 1 : d], beta @ W

    out["wte.weight"] = r["wte.weight"][:, : d - 1]
    out["wpe.weight"] = r["wpe.weight"][:, : d - 1]
    for i in range(L):
        p = f"h.{i}."
        for norm, reader in (("ln_1", "attn.c_attn"), ("ln_2", "mlp.c_fc")):
            W, extra = fold_and_absorb(r[p + reader + ".weight"], r[p + norm + ".weight"], r[p + norm + ".bias"])
            out[p + reader + ".weight"] = W
            out[p + reader + ".bias"] = r[p + reader + ".bias"] + extra
            out[p + norm + ".weight"] = np.ones(d - 1)
            out[p + norm + ".bias"] = np.zeros(d - 1)
        for writer in ("attn.c_proj", "mlp.c_proj"):
            out[p + writer + ".weight"] = r[p + writer + ".weight"][:, : d - 1]
            out[p + writer + ".bias"] = r[p + writer + ".bias"][: d - 1]
    # Head: logits = (n * gamma_f + beta_f) @ U.T + b = n @ (U * gamma_f).T + (U @ beta_f + b).
    U = r["lm_head.weight"] * r["ln_f.weight"][None, :]
    out["lm_head.weight"] = U[:, : d - 1] - U[:, d - 1 : d]
    out["lm_head.bias"] = r["lm_head.weight"] @ r["ln_f.bias"] + r.get("lm_head.bias", 0.0)
    out["ln_f.weight"] = np.ones(d - 1)
    out["ln_f.bias"] = np.zeros(d - 1)
    new_config = dict(rms_config, model_type="lnfree-gpt2", lnfree_norm="crmsnorm")
    return new_config, out


def mean_next_token_ce(config, w, ids, sigmas=None):
    z = logits(config, w, ids[:-1], sigmas)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    targets = np.asarray(ids[1:])
    return float(-logp[np.arange(len(targets)), targets].mean())


def write_safetensors(path, tensors):
    """Writes float32 tensors the way the Python `safetensors` library lays them out."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        blob = np.ascontiguousarray(tensors[name], dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(tensors[name])), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))
