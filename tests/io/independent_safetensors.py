"""An independent reader of lnfree's safetensors output, using only struct, json and numpy (and torch
for one reference rounding), so that the C++ tests can check that a reader sharing no code with
lnfree parses what lnfree writes. The format follows the safetensors specification:
8-byte little-endian header length, JSON header, data section tiled exactly by the tensors.

Modes (each prints one JSON object on stdout; exit status 1 with a message on a bad file):
  dump FILE       metadata and every tensor's dtype, shape and values as F32 bit patterns
  rounding FILE   for every tensor "<x>.f32", checks "<x>.f16" against numpy's float16 rounding and
                  "<x>.bf16" against torch's bfloat16 rounding, bit for bit
  gpt2 DIR IDS    GPT-2 logits for the comma-separated token ids, computed in float64 with numpy
                  from DIR/config.json and DIR/model.safetensors (HF names, Conv1D weights [in, out])
"""

import json
import struct
import sys

import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
          "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw), f"header length {n} past end of file"
    assert n % 8 == 0, f"header length {n} is not a multiple of 8"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {})
    arrays = {}
    spans = []
    for name, entry in header.items():
        assert set(entry) == {"dtype", "shape", "data_offsets"}, (name, entry)
        begin, end = entry["data_offsets"]
        dtype = np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")
        count = int(np.prod(entry["shape"], dtype=np.int64))
        assert end - begin == count * dtype.itemsize, (name, begin, end)
        assert begin % dtype.itemsize == 0, f"{name} is not aligned to its element size"
        array = np.frombuffer(data[begin:end], dtype=dtype).reshape(entry["shape"])
        if entry["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        arrays[name] = (entry["dtype"], array)
        spans.append((begin, end))
    covered = 0
    for begin, end in sorted(spans):
        assert begin == covered, f"gap or overlap at byte {begin}"
        covered = end
    assert covered == len(data), "bytes after the last tensor"
    return metadata, arrays, n


def dump(path):
    metadata, arrays, n = read(path)
    tensors = {}
    for name, (dtype, array) in arrays.items():
        as_f32 = array.astype(np.float32) if array.dtype != np.float32 else array
        tensors[name] = {"dtype": dtype, "shape": list(array.shape),
                         "f32_bits": as_f32.reshape(-1).view(np.uint32).tolist()}
    return {"header_size": n, "metadata": metadata, "tensors": tensors}


def rounding(path):
    import torch

    _, arrays, _ = read(path)
    checked, mismatches = 0, []
    for name, (dtype, array) in arrays.items():
        if not name.endswith(".f32"):
            continue
        stem = name[:-4]
        with np.errstate(over="ignore"):  # values beyond F16's range become infinities, as intended
            half_reference = array.astype(np.float16).view(np.uint16)
        bf16_reference = torch.from_numpy(array.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        for suffix, reference in ((".f16", half_reference), (".bf16", bf16_reference)):
            if stem + suffix not in arrays:
                continue
            stored_dtype, stored = arrays[stem + suffix]
            bits = stored.view(np.uint16) if stored_dtype == "F16" else (stored.view(np.uint32) >> 16).astype(np.uint16)
            nan, stored_nan = np.isnan(array), np.isnan(stored)
            for i in np.flatnonzero((bits != reference) & ~nan):
                mismatches.append(f"{stem + suffix}[{i}]: input {float(array.flat[i])!r} stored 0x{int(bits.flat[i]):04x} "
                                  f"reference 0x{int(reference.flat[i]):04x}")
            for i in np.flatnonzero(nan != stored_nan):
                mismatches.append(f"{stem + suffix}[{i}]: NaN not kept")
            checked += array.size
    return {"checked": checked, "mismatches": len(mismatches), "first_mismatches": mismatches[:5]}


def gpt2(directory, ids):
    with open(f"{directory}/config.json") as f:
        config = json.load(f)
    metadata, arrays, _ = read(f"{directory}/model.safetensors")
    w = {name[len("transformer."):]: array.astype(np.float64) for name, (_, array) in arrays.items()
         if name.startswith("transformer.")}
    assert len(w) == len(arrays), "every tensor of a saved GPT2LMHeadModel carries the 'transformer.' prefix"
    d, heads, eps = config["n_embd"], config["n_head"], config["layer_norm_epsilon"]

    def layer_norm(x, prefix):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * w[prefix + ".weight"] + w[prefix + ".bias"]

    def conv1d(x, prefix):  # HF Conv1D: x @ W + b with W stored [in, out]
        return x @ w[prefix + ".weight"] + w[prefix + ".bias"]

    def gelu_tanh(x):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))

    t = len(ids)
    x = w["wte.weight"][ids] + w["wpe.weight"][:t]
    mask = np.triu(np.ones((t, t), dtype=bool), 1)
    for i in range(config["n_layer"]):
        p = f"h.{i}"
        qkv = conv1d(layer_norm(x, p + ".ln_1"), p + ".attn.c_attn")
        q, k, v = (qkv[:, j * d:(j + 1) * d].reshape(t, heads, d // heads).transpose(1, 0, 2) for j in range(3))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d // heads)
        scores[:, mask] = -np.inf
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        y = (weights @ v).transpose(1, 0, 2).reshape(t, d)
        x = x + conv1d(y, p + ".attn.c_proj")
        x = x + conv1d(gelu_tanh(conv1d(layer_norm(x, p + ".ln_2"), p + ".mlp.c_fc")), p + ".mlp.c_proj")
    logits = layer_norm(x, "ln_f") @ w["wte.weight"].T
    return {"metadata": metadata, "names": sorted(arrays), "logits": logits.tolist()}


def main():
    mode = sys.argv[1]
    try:
        if mode == "dump":
            result = dump(sys.argv[2])
        elif mode == "rounding":
            result = rounding(sys.argv[2])
        elif mode == "gpt2":
            result = gpt2(sys.argv[2], [int(i) for i in sys.argv[3].split(",")])
        else:
            raise SystemExit(f"unknown mode {mode}")
    except AssertionError as e:
        print(f"independent_safetensors.py: {e}", file=sys.stderr)
        sys.exit(1)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
