# shellcheck shell=bash
# Shared by the scripts in slurm/ (sourced, not run). Dry run: with LNFREE_DRY_RUN=1 every command
# that would touch the cluster (sbatch, srun, scontrol) is printed as "+ command" instead, sbatch
# answers with made-up job ids (1001, 1002, ...), and a job script takes the exit code of its srun
# from LNFREE_DRY_RUN_RC (default 0). tests/dist/test_slurm.py checks the printed commands.

LNFREE_ROOT=${LNFREE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
LNFREE_BIN=${LNFREE_BIN:-$LNFREE_ROOT/build/lnfree}
SIZES_FILE=${LNFREE_SIZES:-$LNFREE_ROOT/slurm/sizes.tsv}
PREEMPTED_EXIT=75  # lnfree train: checkpoint written after SIGUSR1/SIGTERM (src/dist/stop_signal.h)

die() { echo "slurm: error: $*" >&2; exit 1; }
dry() { [ "${LNFREE_DRY_RUN:-0}" = 1 ]; }
show() { printf '+'; printf ' %q' "$@"; printf '\n'; }

if dry; then
  _dry_counter=$(mktemp)
  trap 'rm -f "$_dry_counter"' EXIT
fi

# Runs a cluster command, or prints it in a dry run.
cluster() {
  if dry; then show "$@"; else "$@"; fi
}

# sbatch --parsable ARGS...: prints the job id (a made-up one in a dry run, after the command; the
# count lives in a file because callers run this in a subshell).
submit() {
  if dry; then
    show sbatch --parsable "$@" >&2
    echo x >>"$_dry_counter"
    echo $((1000 + $(wc -l <"$_dry_counter")))
  else
    sbatch --parsable "$@" | cut -d';' -f1
  fi
}

# size_field SIZE COLUMN: one column of slurm/sizes.tsv (columns: size config nodes gpus_per_node
# tokens_per_s_per_gpu overhead_min sets).
size_field() {
  local column
  case $2 in
    config) column=2 ;; nodes) column=3 ;; gpus_per_node) column=4 ;; tokens_per_s_per_gpu) column=5 ;;
    overhead_min) column=6 ;; sets) column=7 ;; *) die "size_field: unknown column $2" ;;
  esac
  local value
  value=$(awk -v s="$1" -v c="$column" '!/^#/ && NF >= 7 && $1 == s { print $c; exit }' "$SIZES_FILE")
  [ -n "$value" ] || die "$SIZES_FILE: no row for size '$1' (known: $(awk '!/^#/ && NF >= 7 { printf "%s ", $1 }' "$SIZES_FILE"))"
  echo "$value"
}

# The --set arguments of a size's "sets" column.
size_sets() {
  local sets
  sets=$(size_field "$1" sets)
  [ "$sets" = - ] && return 0
  local item
  IFS=',' read -ra items <<<"$sets"
  for item in "${items[@]}"; do printf -- '--set\n%s\n' "$item"; done
}

# train_tokens CONFIG [--set k=v ...]: data.steps x data.tokens_per_step of the resolved config.
train_tokens() {
  "$LNFREE_BIN" config --skip-data --config "$@" |
    awk -F' = ' '/^\[/ { section = $0 } section == "[data]" && $1 == "steps" { s = $2 }
                 section == "[data]" && $1 == "tokens_per_step" { t = $2 } END { printf "%.0f\n", s * t }'
}

# time_limit TOKENS SIZE: the sbatch --time (HH:MM:SS) for TOKENS training tokens at the size's
# expected speed, with a 25% margin plus its fixed overhead (start-up, evaluations, checkpoints).
time_limit() {
  local rate gpus overhead
  rate=$(size_field "$2" tokens_per_s_per_gpu)
  gpus=$(($(size_field "$2" nodes) * $(size_field "$2" gpus_per_node)))
  overhead=$(size_field "$2" overhead_min)
  awk -v tokens="$1" -v rate="$rate" -v gpus="$gpus" -v overhead="$overhead" 'BEGIN {
    seconds = (rate > 0 ? tokens / (rate * gpus) * 1.25 : 0) + overhead * 60
    seconds = int(seconds + 59) - (int(seconds + 59) % 60)  # whole minutes, rounded up
    printf "%02d:%02d:00\n", int(seconds / 3600), int((seconds % 3600) / 60) }'
}

# sbatch options for a job of SIZE: nodes, one task per GPU, GPUs, CPUs per task.
resource_options() {
  local nodes gpus
  nodes=$(size_field "$1" nodes)
  gpus=$(size_field "$1" gpus_per_node)
  printf -- '--nodes=%s\n--ntasks-per-node=%s\n--gpus-per-node=%s\n--cpus-per-task=%s\n' \
    "$nodes" "$gpus" "$gpus" "${LNFREE_CPUS_PER_GPU:-8}"
}

# Inside a job: runs `srun ... COMMAND` and handles preemption. SIGUSR1 (sent by SLURM ahead of the
# time limit, #SBATCH --signal=B:USR1@300) and SIGTERM are forwarded to srun, which passes them to
# every rank; the ranks write a checkpoint at the next step boundary and exit with 75, and the job is
# then requeued (scontrol requeue) to resume from that checkpoint. Any other non-zero exit fails the
# job; --kill-on-bad-exit ends all ranks when one of them fails.
run_ranks() {
  local rc
  if dry; then
    show srun --kill-on-bad-exit=1 --cpu-bind=cores "$@"
    rc=${LNFREE_DRY_RUN_RC:-0}
  else
    srun --kill-on-bad-exit=1 --cpu-bind=cores "$@" &
    local pid=$!
    trap 'kill -USR1 $pid 2>/dev/null' USR1 TERM
    while true; do
      wait $pid && rc=0 || rc=$?
      kill -0 $pid 2>/dev/null || break  # wait was interrupted by a trapped signal: keep waiting
    done
    trap - USR1 TERM
  fi
  if [ "$rc" = "$PREEMPTED_EXIT" ]; then
    echo "slurm: preempted: checkpoint written; requeueing job ${SLURM_JOB_ID:-?}" >&2
    cluster scontrol requeue "${SLURM_JOB_ID:?}"
    return 0
  fi
  return "$rc"
}

# The --resume flag when OUT already holds a run (a requeued or re-submitted job continues it).
resume_flag() {
  if [ -e "$1/config.toml" ]; then echo --resume; fi
}
