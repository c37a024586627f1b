#!/usr/bin/env python3
"""`lnfree score` against Hugging Face transformers on random-init GPT2LMHeadModels saved by
transformers itself (config.json + model.safetensors, as a hub download would be), fp32 on the CPU.

For each size: build the model from transformers' own GPT2Config (the hub's shape), scale its
weights up (GPT-2's 0.02 init gives near-uniform logits that hide errors), save_pretrained, score
random token lines with both, print the worst relative error, and fail above --tolerance.
Needs torch, transformers and safetensors (the GPU machine has them; Debian's CPU machines do not).

  python3 launch/peers/hf_score_check.py --lnfree build-gpu/lnfree --sizes gpt2 gpt2-medium
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

SHAPES = {  # GPT-2's published shapes (n_layer, n_embd, n_head)
    "gpt2": (12, 768, 12),
    "gpt2-medium": (24, 1024, 16),
    "gpt2-large": (36, 1280, 20),
    "gpt2-xl": (48, 1600, 25),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--lnfree", default="build/lnfree", help="the lnfree binary")
    parser.add_argument("--sizes", nargs="+", default=["gpt2", "gpt2-medium"], choices=sorted(SHAPES))
    parser.add_argument("--lines", type=int, default=6, help="token lines per size")
    parser.add_argument("--tolerance", type=float, default=1e-5, help="largest relative error allowed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(args.seed)
    failed = False
    for size in args.sizes:
        n_layer, n_embd, n_head = SHAPES[size]
        config = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_positions=1024, vocab_size=50257,
                            attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0)
        model = GPT2LMHeadModel(config).eval()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ".ln_" in name or name.startswith("transformer.ln_f"):
                    p.normal_(1.0 if name.endswith("weight") else 0.0, 0.3)
                else:
                    p.normal_(0.0, 0.3 / n_embd ** 0.5 * 8)
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            lengths = [2, 17, 128, 513, 1024, 1025][: args.lines]
            lines = [torch.randint(0, 50257, (n,)).tolist() for n in lengths]
            start = time.time()
            out = subprocess.run([args.lnfree, "score", "--model", tmp],
                                 input="".join(" ".join(map(str, ids)) + "\n" for ids in lines),
                                 capture_output=True, text=True)
            lnfree_s = time.time() - start
            if out.returncode != 0:
                print(f"hf_score_check {size}: lnfree score failed: {out.stderr.strip()}")
                failed = True
                continue
            got = [float(v) for v in out.stdout.split()]
            worst = 0.0
            start = time.time()
            with torch.no_grad():
                for ids, g in zip(lines, got):
                    t = torch.tensor([ids])
                    want = model(t[:, :-1], labels=None).logits.float()
                    want = torch.nn.functional.cross_entropy(want[0], t[0, 1:]).item()
                    worst = max(worst, abs(g - want) / abs(want))
            hf_s = time.time() - start
        ok = worst < args.tolerance and len(got) == len(lines)
        failed |= not ok
        print(f"hf_score_check {size}: {len(lines)} lines (2..{max(lengths)} tokens), worst relative error "
              f"{worst:.3g} (limit {args.tolerance:g}) {'ok' if ok else 'FAILED'}; lnfree {lnfree_s:.1f} s, "
              f"transformers {hf_s:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
