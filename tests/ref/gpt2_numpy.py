"""Independent float64 reference for GPT-2 (numpy only), used to check lnfree's C++ forward.

Reads a Hugging Face folder (config.json + model.safetensors) with its own safetensors parser,
so neither lnfree's reader nor torch is involved. Implements GPT2LMHeadModel's math: learned
positions, pre-LN blocks, tanh-approximate GELU, causal attention, tied unembedding.
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


def logits(config, w, ids, sigmas=None):
    """sigmas: None for real LayerNorms, or the fixed divisors of an LN-free model, {LN name:
    (sigma of the main path, sigma of the V path)} ("h.0.ln_1", ..., "ln_f"): a fake LN computes
    (x - mean) / sigma * w + b, and ln_1's Q/K and V read it with their own sigma."""
    ids = np.asarray(ids)
    T = len(ids)
    d, H, eps = config["n_embd"], config["n_head"], config["layer_norm_epsilon"]
    hd = d // H
    x = w["wte.weight"][ids] + w["wpe.weight"][:T]
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    for i in range(config["n_layer"]):
        p = f"h.{i}."
        a = _layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps, sigmas, p + "ln_1", 0)
        qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]  # Conv1D: [in, out]
        if sigmas is not None:
            a_v = _layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps, sigmas, p + "ln_1", 1)
            qkv[:, 2 * d :] = a_v @ w[p + "attn.c_attn.weight"][:, 2 * d :] + w[p + "attn.c_attn.bias"][2 * d :]
        q, k, v = (qkv[:, j * d : (j + 1) * d].reshape(T, H, hd).transpose(1, 0, 2) for j in range(3))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        scores[:, mask] = -np.inf
        scores -= scores.max(-1, keepdims=True)
        att = np.exp(scores)
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(1, 0, 2).reshape(T, d)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        m = _layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps, sigmas, p + "ln_2", 0)
        m = _gelu_tanh(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = _layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps, sigmas, "ln_f", 0)
    return x @ w["wte.weight"].T


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
