#!/usr/bin/env bash
# Submits one training run of a GPT-2 size: slurm/submit.sh SIZE [OUT] [--set k=v ...]
#   SIZE  a row of slurm/sizes.tsv with a config (gpt2, gpt2-medium, gpt2-large, gpt2-xl on GPUs,
#         smoke on CPUs): its config, nodes, tasks (ranks) per node, GPUs, CPUs and memory, extra
#         --set overrides, and the expected tokens/s from which the time limit follows
#   OUT   run folder (default runs/SIZE); a folder that already holds the run is resumed
# Site options (LNFREE_PARTITION, LNFREE_ACCOUNT, LNFREE_QOS, LNFREE_SBATCH_OPTIONS, LNFREE_SRUN_MPI,
# LNFREE_SLURM_LOGS): slurm/lib.sh and docs/distributed.md, "SLURM".
# LNFREE_DRY_RUN=1 prints the sbatch command instead of submitting it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ $# -ge 1 ] || die "usage: slurm/submit.sh SIZE [OUT] [--set k=v ...]"
size=$1
shift
out=runs/$size
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then out=$1; shift; fi
config=$(size_field "$size" config)
[ "$config" != - ] || die "size '$size' has no config in $SIZES_FILE (it is a study size: slurm/submit-study.sh)"
mapfile -t sets < <(size_sets "$size")
sets+=("$@")
cd "$LNFREE_ROOT"
tokens=$(train_tokens "$config" "${sets[@]}")
limit=$(time_limit "$tokens" "$size")
mapfile -t resources < <(resource_options "$size")
check_gpus "$size"
# Fail now, not in the job, when srun has no MPI type for the MPI library; the job uses this type.
LNFREE_SRUN_MPI=$(srun_mpi_type)
export LNFREE_SRUN_MPI
cluster mkdir -p "$(log_dir)"  # sbatch does not create the folder of --output
id=$(submit --job-name="lnfree-$size" --chdir="$LNFREE_ROOT" --time="$limit" "${resources[@]}" \
  slurm/train.sbatch "$config" "$out" "${sets[@]}")
echo "submitted $size: job $id, $tokens tokens, time limit $limit, out $out"
