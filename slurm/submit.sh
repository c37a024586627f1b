#!/usr/bin/env bash
# Submits one training run of a GPT-2 size: slurm/submit.sh SIZE [OUT] [--set k=v ...]
#   SIZE  a row of slurm/sizes.tsv (gpt2, gpt2-medium, gpt2-large, gpt2-xl): its config, nodes, GPUs
#         per node, extra --set overrides, and the expected tokens/s from which the time limit follows
#   OUT   run folder (default runs/SIZE); a folder that already holds the run is resumed
# LNFREE_DRY_RUN=1 prints the sbatch command instead of submitting it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ $# -ge 1 ] || die "usage: slurm/submit.sh SIZE [OUT] [--set k=v ...]"
size=$1
shift
out=runs/$size
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then out=$1; shift; fi
config=$(size_field "$size" config)
mapfile -t sets < <(size_sets "$size")
sets+=("$@")
cd "$LNFREE_ROOT"
tokens=$(train_tokens "$config" "${sets[@]}")
limit=$(time_limit "$tokens" "$size")
mapfile -t resources < <(resource_options "$size")
cluster mkdir -p runs/slurm
id=$(submit --job-name="lnfree-$size" --chdir="$LNFREE_ROOT" --time="$limit" "${resources[@]}" \
  slurm/train.sbatch "$config" "$out" "${sets[@]}")
echo "submitted $size: job $id, $tokens tokens, time limit $limit, out $out"
