#!/usr/bin/env bash
# Data-parallel lnfree across machines with Open MPI (no SLURM):
#   launch/mpirun-hosts.sh -f HOSTFILE -N RANKS_PER_NODE [-t THREADS] -- COMMAND [ARGS...]
#   e.g. launch/mpirun-hosts.sh -f hosts.txt -N 8 -- train --config configs/gpt2-small.toml --out runs/s
# HOSTFILE lists one machine per line ("node01 slots=8"); every machine must see this repository,
# the build and the data at the same path (shared file system) and reach the others by ssh without a
# password. RANKS_PER_NODE is the GPUs per machine on device cuda (one rank per GPU, rank i of a
# machine uses GPU i), or cores / THREADS on the CPU. The total is (lines of HOSTFILE) x N.
# LNFREE_DRY_RUN=1 prints the mpirun command instead of running it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage() { echo "usage: launch/mpirun-hosts.sh -f HOSTFILE -N RANKS_PER_NODE [-t THREADS] -- COMMAND [ARGS...]" >&2; exit 2; }
hostfile='' per_node='' threads=1
while [ $# -gt 0 ]; do
  case $1 in
    -f) hostfile=${2:?}; shift 2 ;;
    -N) per_node=${2:?}; shift 2 ;;
    -t) threads=${2:?}; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "launch/mpirun-hosts.sh: unknown option '$1'" >&2; usage ;;
  esac
done
if [ -z "$hostfile" ] || [ -z "$per_node" ] || [ $# -eq 0 ]; then usage; fi
[ -f "$hostfile" ] || { echo "launch/mpirun-hosts.sh: $hostfile: no such hostfile" >&2; exit 2; }
nodes=$(grep -cvE '^\s*(#|$)' "$hostfile")
args=(mpirun --hostfile "$hostfile" -np $((nodes * per_node)) --map-by "ppr:$per_node:node:PE=$threads"
      --bind-to core --wdir "$root" -x OMP_NUM_THREADS="$threads" -x PATH -x LD_LIBRARY_PATH)
[ "$(id -u)" != 0 ] || args+=(--allow-run-as-root)
for name in $(compgen -e | grep -E '^(LNFREE_DEBUG_|NCCL_)' || true); do args+=(-x "$name"); done
args+=("${LNFREE_BIN:-$root/build/lnfree}" "$@")
if [ "${LNFREE_DRY_RUN:-0}" = 1 ]; then
  printf '+'; printf ' %q' "${args[@]}"; printf '\n'
else
  exec "${args[@]}"
fi
