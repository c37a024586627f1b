#!/usr/bin/env bash
# Data-parallel lnfree on this machine:
#   launch/mpirun-local.sh -n RANKS [-t THREADS] -- COMMAND [ARGS...]
#   e.g. launch/mpirun-local.sh -n 2 -t 1 -- train --config configs/smoke.toml --out runs/smoke-2
# starts RANKS copies of build/lnfree COMMAND ARGS under Open MPI's mpirun, each with THREADS
# LibTorch threads (OMP_NUM_THREADS; the config's run.threads must be 0 to use it) and bound to
# THREADS cores of its own. On 2 cores, 2 ranks x 1 thread train ~1.4x faster than 1 x 2
# (docs/distributed.md). More ranks x threads than cores oversubscribe, unbound (slower; allowed
# for tests). SIGUSR1 to this script's mpirun reaches every rank (checkpoint and exit 75).
# LNFREE_DRY_RUN=1 prints the mpirun command instead of running it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage() { echo "usage: launch/mpirun-local.sh -n RANKS [-t THREADS] -- COMMAND [ARGS...]" >&2; exit 2; }
ranks=1 threads=1
while [ $# -gt 0 ]; do
  case $1 in
    -n) ranks=${2:?}; shift 2 ;;
    -t) threads=${2:?}; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "launch/mpirun-local.sh: unknown option '$1'" >&2; usage ;;
  esac
done
[ $# -gt 0 ] || usage
[[ $ranks =~ ^[1-9][0-9]*$ && $threads =~ ^[1-9][0-9]*$ ]] || { echo "launch/mpirun-local.sh: -n and -t take positive integers" >&2; exit 2; }
cores=$(nproc)
args=(mpirun -np "$ranks" -x OMP_NUM_THREADS="$threads")
if [ $((ranks * threads)) -le "$cores" ]; then
  args+=(--map-by "slot:PE=$threads" --bind-to core)
else
  echo "launch/mpirun-local.sh: $ranks ranks x $threads threads > $cores cores: oversubscribing, unbound" >&2
  args+=(--oversubscribe --bind-to none)
fi
# Open MPI refuses to run as root unless told to (containers, CI).
[ "$(id -u)" != 0 ] || args+=(--allow-run-as-root)
# Debug and NCCL settings reach every rank.
for name in $(compgen -e | grep -E '^(LNFREE_DEBUG_|NCCL_)' || true); do args+=(-x "$name"); done
args+=("${LNFREE_BIN:-$root/build/lnfree}" "$@")
if [ "${LNFREE_DRY_RUN:-0}" = 1 ]; then
  printf '+'; printf ' %q' "${args[@]}"; printf '\n'
else
  exec "${args[@]}"
fi
