# shellcheck shell=bash
# Shared by the scripts in slurm/ (sourced, not run). Dry run: with LNFREE_DRY_RUN=1 every command
# that would touch the cluster (sbatch, srun, scontrol) is printed as "+ command" instead, sbatch
# answers with made-up job ids (1001, 1002, ...), and a job script takes the exit code of its srun
# from LNFREE_DRY_RUN_RC (default 0). tests/parallel/test_slurm.py checks the printed commands.

LNFREE_ROOT=${LNFREE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
LNFREE_BIN=${LNFREE_BIN:-$LNFREE_ROOT/build/lnfree}
SIZES_FILE=$(realpath -m "${LNFREE_SIZES:-$LNFREE_ROOT/slurm/sizes.tsv}")  # absolute: the scripts change directory
PREEMPTED_EXIT=75  # lnfree train: checkpoint written after SIGUSR1/SIGTERM (src/parallel/stop_signal.h)
SIGNAL_LEAD_S=300  # the "@300" of the job scripts' #SBATCH --signal=B:USR1@300 (keep them equal)

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

# Site options every job gets (docs/distributed.md, "SLURM"): LNFREE_PARTITION, LNFREE_ACCOUNT and
# LNFREE_QOS become --partition/--account/--qos; LNFREE_SBATCH_OPTIONS holds further sbatch options,
# split at spaces (e.g. "--constraint=h100 --exclusive"). sbatch's own SBATCH_PARTITION etc. work too.
site_options() {
  [ -z "${LNFREE_PARTITION:-}" ] || echo "--partition=$LNFREE_PARTITION"
  [ -z "${LNFREE_ACCOUNT:-}" ] || echo "--account=$LNFREE_ACCOUNT"
  [ -z "${LNFREE_QOS:-}" ] || echo "--qos=$LNFREE_QOS"
  if [ -n "${LNFREE_SBATCH_OPTIONS:-}" ]; then
    local extra
    read -ra extra <<<"$LNFREE_SBATCH_OPTIONS"
    printf '%s\n' "${extra[@]}"
  fi
  # The job logs: runs/slurm/ under the checkout unless LNFREE_SLURM_LOGS names another folder.
  # (Given here, not only in the #SBATCH lines, because those cannot read the environment.)
  if [ -n "${LNFREE_SLURM_LOGS:-}" ]; then
    case " $* " in
      *" --array="*) echo "--output=$LNFREE_SLURM_LOGS/%x-%A_%a.out" ;;
      *) echo "--output=$LNFREE_SLURM_LOGS/%x-%j.out" ;;
    esac
  fi
}

# The folder the job logs go to (created before submitting: sbatch does not create it).
log_dir() { echo "${LNFREE_SLURM_LOGS:-$LNFREE_ROOT/runs/slurm}"; }

# sbatch --parsable ARGS...: prints the job id (a made-up one in a dry run, after the command; the
# count lives in a file because callers run this in a subshell). The site options go first.
submit() {
  local site
  mapfile -t site < <(site_options "$@")
  if dry; then
    show sbatch --parsable "${site[@]}" "$@" >&2
    echo x >>"$_dry_counter"
    echo $((1000 + $(wc -l <"$_dry_counter")))
  else
    local out
    # sbatch's own message (e.g. "Invalid generic resource (gres) specification") goes to stderr.
    out=$(sbatch --parsable "${site[@]}" "$@") || die "sbatch refused the job: sbatch --parsable $(printf '%q ' "${site[@]}" "$@")"
    printf '%s\n' "$out" | tail -n1 | cut -d';' -f1
  fi
}

# The columns of slurm/sizes.tsv, in order (a row has exactly these, "-" for an empty one).
SIZE_COLUMNS=(size config nodes tasks_per_node gpus_per_node cpus_per_task mem tokens_per_s_per_task overhead_min sets)

# The sizes (first column) of the rows of slurm/sizes.tsv.
known_sizes() { awk -v n=${#SIZE_COLUMNS[@]} '!/^#/ && NF == n { printf "%s ", $1 }' "$SIZES_FILE"; }

# size_field SIZE COLUMN: one column of SIZE's row of slurm/sizes.tsv.
size_field() {
  local column=0 i
  for i in "${!SIZE_COLUMNS[@]}"; do [ "${SIZE_COLUMNS[i]}" != "$2" ] || column=$((i + 1)); done
  [ $column -gt 0 ] || die "size_field: unknown column $2 (columns: ${SIZE_COLUMNS[*]})"
  local value
  value=$(awk -v s="$1" -v c="$column" -v n=${#SIZE_COLUMNS[@]} '!/^#/ && NF == n && $1 == s { print $c; exit }' "$SIZES_FILE")
  [ -n "$value" ] || die "$SIZES_FILE: no row for size '$1' (known: $(known_sizes); a row has the ${#SIZE_COLUMNS[@]} columns ${SIZE_COLUMNS[*]})"
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
# expected speed (tokens/s per task x tasks), with a 25% margin plus its fixed overhead (start-up,
# evaluations, checkpoints), plus the warning lead: SLURM sends SIGUSR1 that long before the limit
# and the run then stops, so without it a short run would be preempted before it could finish.
time_limit() {
  local rate tasks overhead
  rate=$(size_field "$2" tokens_per_s_per_task)
  tasks=$(($(size_field "$2" nodes) * $(size_field "$2" tasks_per_node)))
  overhead=$(size_field "$2" overhead_min)
  awk -v tokens="$1" -v rate="$rate" -v tasks="$tasks" -v overhead="$overhead" -v lead="$SIGNAL_LEAD_S" 'BEGIN {
    seconds = (rate > 0 ? tokens / (rate * tasks) * 1.25 : 0) + overhead * 60 + lead
    seconds = int(seconds + 59) - (int(seconds + 59) % 60)  # whole minutes, rounded up
    printf "%02d:%02d:00\n", int(seconds / 3600), int((seconds % 3600) / 60) }'
}

# sbatch options for a job of SIZE: nodes, tasks (ranks) per node, CPUs per task, and GPUs and
# memory only where the row asks for them (a GPU request fails on a partition without GPUs).
# LNFREE_CPUS_PER_TASK overrides the row's CPUs per task.
resource_options() {
  local gpus mem
  gpus=$(size_field "$1" gpus_per_node)
  mem=$(size_field "$1" mem)
  printf -- '--nodes=%s\n--ntasks-per-node=%s\n' "$(size_field "$1" nodes)" "$(size_field "$1" tasks_per_node)"
  [ "$gpus" = 0 ] || printf -- '--gpus-per-node=%s\n' "$gpus"
  printf -- '--cpus-per-task=%s\n' "${LNFREE_CPUS_PER_TASK:-$(size_field "$1" cpus_per_task)}"
  [ "$mem" = - ] || printf -- '--mem=%s\n' "$mem"
}

# The partition jobs go to: LNFREE_PARTITION, sbatch's SBATCH_PARTITION, else the cluster's default.
target_partition() {
  if [ -n "${LNFREE_PARTITION:-${SBATCH_PARTITION:-}}" ]; then
    echo "${LNFREE_PARTITION:-$SBATCH_PARTITION}"
  else
    sinfo -h -o '%P' | awk '/\*$/ { sub(/\*$/, ""); print; exit }'
  fi
}

# check_gpus SIZE: before submitting, refuses a GPU request that the partition cannot meet (sbatch
# would only say "Invalid generic resource (gres) specification"), naming the two ways out.
check_gpus() {
  dry && return 0
  local gpus partition gres
  gpus=$(size_field "$1" gpus_per_node)
  [ "$gpus" = 0 ] && return 0
  partition=$(target_partition)
  gres=$(sinfo -h ${partition:+-p "$partition"} -o '%G' 2>/dev/null | sort -u | paste -sd' ')
  [[ $gres == *gpu* ]] && return 0
  die "size '$1' asks for $gpus GPU(s) per node (slurm/sizes.tsv), but partition '${partition:-?}' has no GPUs (sinfo -o %G: ${gres:-nothing}).
  Fix: submit to a GPU partition (LNFREE_PARTITION=NAME; sinfo -o '%P %G' lists them), or run this size on CPUs:
  give it a row with gpus_per_node 0 in slurm/sizes.tsv (or in your own table, LNFREE_SIZES=FILE)."
}

# The srun --mpi type for the installed Open MPI: LNFREE_SRUN_MPI if set, else the first of SLURM's
# plugins (srun --mpi=list) that the MPI library can talk to: pmix for an Open MPI built with PMIx
# (Debian's is: ompi_info lists "MCA pmix: ext3x"; it has no PMI-2 client, so pmi2 aborts in
# MPI_Init), pmi2 for one with Slurm's PMI-2 (ompi_info: "MCA pmix: s2"). Without a fitting type
# srun starts every rank as a world of one, which lnfree refuses; this says so before submitting.
srun_mpi_type() {
  if dry; then echo "${LNFREE_SRUN_MPI:-pmix}"; return 0; fi
  local listed
  listed=$(srun --mpi=list 2>&1 | awk '/^[[:space:]]/ { print $1 } /versions available:/ { sub(/.*: */, ""); n = split($0, v, /[ ,]+/); for (i = 1; i <= n; ++i) print v[i] }' | sort -u)
  [ -n "$listed" ] || die "srun --mpi=list printed no MPI plugins ($(srun --mpi=list 2>&1 | head -3)); is SLURM configured (SLURM_CONF)?"
  if [ -n "${LNFREE_SRUN_MPI:-}" ]; then
    grep -qx -- "$LNFREE_SRUN_MPI" <<<"$listed" ||
      die "LNFREE_SRUN_MPI=$LNFREE_SRUN_MPI is not one of this cluster's srun MPI types ($(paste -sd' ' <<<"$listed")); set it to one of them"
    echo "$LNFREE_SRUN_MPI"
    return 0
  fi
  local wanted=(pmix) components=''
  if command -v ompi_info >/dev/null; then
    components=$(ompi_info 2>/dev/null | awk -F'[:(]' '/MCA pmix:/ { gsub(/ /, "", $2); printf "%s ", $2 }')
    wanted=()
    [[ " $components" =~ \ (ext|pmix)[0-9x]* ]] && wanted+=(pmix)
    [[ " $components " == *" s2 "* ]] && wanted+=(pmi2)
  fi
  local type
  for type in "${wanted[@]}"; do
    if grep -qx "$type" <<<"$listed"; then echo "$type"; return 0; fi
  done
  die "no srun MPI type fits: this cluster's srun offers $(paste -sd' ' <<<"$listed") (srun --mpi=list), the MPI library needs ${wanted[*]:-PMIx or PMI-2 support} (ompi_info pmix components: ${components:-none found}).
  Fix: set LNFREE_SRUN_MPI to the type your site documents for Open MPI (e.g. LNFREE_SRUN_MPI=pmix_v4), load the MPI module the cluster's SLURM was built against (module load openmpi/...), or ask the admins for SLURM's PMIx plugin (mpi_pmix)."
}

# The srun --cpu-bind option: cores where the cluster binds tasks (TaskPlugin task/affinity or
# task/cgroup), none where it cannot (srun would warn on every launch). LNFREE_SRUN_CPU_BIND
# overrides it ("none" drops the option, any other value is passed as --cpu-bind=VALUE).
srun_cpu_bind() {
  local bind=${LNFREE_SRUN_CPU_BIND:-}
  if [ -z "$bind" ]; then
    if dry; then
      bind=cores
    elif scontrol show config 2>/dev/null | grep -E '^TaskPlugin ' | grep -qE 'task/(affinity|cgroup)'; then
      bind=cores
    else
      bind=none
    fi
  fi
  [ "$bind" = none ] || echo "--cpu-bind=$bind"
}

# Inside a job: runs `srun ... COMMAND` and handles preemption. SIGUSR1 (sent by SLURM ahead of the
# time limit, #SBATCH --signal=B:USR1@300) and SIGTERM are forwarded to srun, which passes them to
# every rank; the ranks write a checkpoint at the next step boundary and exit with 75, and the job is
# then requeued (scontrol requeue) to resume from that checkpoint. Any other non-zero exit fails the
# job; --kill-on-bad-exit ends all ranks when one of them fails. srun gets the MPI type that fits
# (srun_mpi_type), a CPU binding only where the cluster can bind, and the job's CPUs per task
# (SLURM 22.05's srun no longer takes them from sbatch); each rank runs that many LibTorch threads
# (OMP_NUM_THREADS, as `lnfree study` sets it to threads_per_run; a config's run.threads wins).
run_ranks() {
  local rc mpi options=(--kill-on-bad-exit=1)
  mpi=$(srun_mpi_type) || return 1  # (it has said why)
  options+=(--mpi="$mpi")
  mapfile -t -O ${#options[@]} options < <(srun_cpu_bind)
  if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
    options+=(--cpus-per-task="$SLURM_CPUS_PER_TASK")
    export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK
  fi
  if dry; then
    show srun "${options[@]}" "$@"
    rc=${LNFREE_DRY_RUN_RC:-0}
  else
    # A requeued job keeps its id and numbers its steps from 0 again, and SLURM 22.05's PMIx plugin
    # can leave an ended step's socket behind (SlurmdSpoolDir/stepd.slurm.pmix.JOB.STEP): the
    # restarted step then fails to launch ("task 0 launch failed", srun exit 0). Restart r therefore
    # spends steps 0..r-1 on empty steps without MPI, so that its ranks run as step r, a number no
    # earlier run of the job used.
    local skip
    for ((skip = 0; skip < ${SLURM_RESTART_COUNT:-0}; ++skip)); do
      srun --mpi=none --ntasks=1 --nodes=1 --cpus-per-task=1 true || true
    done
    echo "slurm: srun $(printf '%q ' "${options[@]}" "$@")" >&2
    srun "${options[@]}" "$@" &
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
    REQUEUED=1  # for the caller: exit 0 without the run's end
    cluster scontrol requeue "${SLURM_JOB_ID:?}"
    return 0
  fi
  return "$rc"
}

# run_status OUT: the state of the run folder OUT, as `lnfree status` decides it (src/log/run_folder.h
# owns the folder's layout; these scripts do not look inside it): none (no run there yet), running,
# complete, diverged, failed or preempted.
run_status() { "$LNFREE_BIN" status "$1" --field status; }

# train_out COMMAND: the --out folder of an `lnfree train` command line; fails for other commands.
train_out() {
  local words i
  read -ra words <<<"$1"
  [ "${words[1]:-}" = train ] || return 1
  for ((i = 2; i < ${#words[@]} - 1; ++i)); do
    if [ "${words[i]}" = --out ]; then echo "${words[i + 1]}"; return 0; fi
  done
  return 1
}

# job_done MARKER COMMAND: whether a job of `lnfree study --print-plan` is done, as `lnfree study`
# decides it: its done marker exists, or it is a training run that diverged (a result of the study).
job_done() {
  [ -e "$1" ] && return 0
  local out
  out=$(train_out "$2") || return 1
  # A missing folder holds no run: skip starting lnfree (a second each, and a fresh study has
  # hundreds of such jobs).
  [ -d "$out" ] && [ "$(run_status "$out")" = diverged ]
}

# check_finished WHAT PATH: after srun returned 0, PATH (a job's output) must exist: srun also
# returns 0 when a step fails to launch ("task 0 launch failed"), and such a job must fail rather
# than pass as done.
check_finished() {
  dry && return 0
  [ "${REQUEUED:-0}" = 1 ] || [ -e "$2" ] ||
    die "$1: srun exited 0 but $2 is missing (did the step launch? see the srun lines above); resubmit to continue"
}

# check_complete WHAT OUT: the same for a training run: after srun returned 0 (and the job was not
# requeued), the run in OUT must be complete.
check_complete() {
  dry && return 0
  [ "${REQUEUED:-0}" = 1 ] && return 0
  local status
  status=$(run_status "$2") || status="unreadable (lnfree status failed: see above)"
  [ "$status" = complete ] ||
    die "$1: srun exited 0 but the run in $2 is '$status', not complete (did the step launch? see the srun lines above); resubmit to continue"
}
