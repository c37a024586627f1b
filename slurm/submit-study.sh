#!/usr/bin/env bash
# Submits a whole study to SLURM: slurm/submit-study.sh STUDY_CONFIG STUDY_DIR [--set section.key=value ...]
# The jobs are those of `lnfree study --config STUDY_CONFIG --out STUDY_DIR --print-plan` (docs/study.md),
# which a single machine would run itself; finished ones (done marker present, or a diverged run)
# are skipped. They are grouped into job arrays by model size, dependency level and kind: the
# training runs of one size at one level (its control and every schedule speed) form one array
# with that size's resources from slurm/sizes.tsv (CPU or GPU) and a time limit for its longest
# run; other jobs (sigma statistics, evaluations) use the "default" row (one GPU), or
# "default-cpu" where the size's row asks for no GPUs. Jobs of no size (the vocabulary) and of
# sizes without a row use "default-cpu" when no size of the study asks for GPUs, else "default".
# An array waits for the arrays holding its jobs' dependencies (--dependency=afterok), and one
# analysis job (row "default-cpu") waits for all of them (slurm/analysis.sbatch). A job that fails
# leaves the jobs after it unsatisfiable: --kill-on-invalid-dep=yes cancels them (reason
# DependencyNeverSatisfied) instead of leaving them pending; fix the failure and run this script
# again: finished jobs are skipped. Arrays cannot mix resources, hence one array per size rather
# than one over sizes x speeds. Site options (partition, account, ...): slurm/lib.sh, site_options.
# LNFREE_DRY_RUN=1 prints the sbatch commands (with made-up job ids) instead of submitting.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ $# -ge 2 ] || die "usage: slurm/submit-study.sh STUDY_CONFIG STUDY_DIR [--set section.key=value ...]"
study=$1 dir=$2
shift 2
study_sets=("$@")  # `lnfree study --set` overrides (e.g. --set study.seed=1), for the plan and the analysis job
cd "$LNFREE_ROOT"
plan=$("$LNFREE_BIN" study --config "$study" --out "$dir" "${study_sets[@]}" --print-plan)
[ -n "$plan" ] || die "$study: the study plan is empty"
known=" $(known_sizes)"
# Fail before submitting anything when srun has no MPI type for the MPI library; the jobs use the
# type found here (a login node and the compute nodes normally share SLURM and MPI).
LNFREE_SRUN_MPI=$(srun_mpi_type)
export LNFREE_SRUN_MPI

# Pass 1: group of every job still to run, as "id group" lines; the group is size.level.kind, the
# level 1 + the deepest dependency still to run.
declare -A level group_of pending
while IFS=$'\t' read -r id deps marker command; do
  job_done "$marker" "$command" && continue
  pending[$id]=1
done <<<"$plan"
order=()
changed=1
while [ $changed = 1 ]; do  # a fixed point: levels settle after at most (longest chain) passes
  changed=0
  while IFS=$'\t' read -r id deps marker command; do
    [ -n "${pending[$id]:-}" ] || continue
    lv=0
    if [ "$deps" != - ]; then
      IFS=',' read -ra list <<<"$deps"
      for d in "${list[@]}"; do
        [ -n "${pending[$d]:-}" ] || continue
        [ -n "${level[$d]:-}" ] || { lv=-1; break; }
        [ $((level[$d] + 1)) -le $lv ] || lv=$((level[$d] + 1))
      done
    fi
    if [ $lv -ge 0 ] && [ "${level[$id]:-x}" != $lv ]; then
      level[$id]=$lv
      changed=1
    fi
  done <<<"$plan"
done

tasks_dir=$dir/slurm
cluster mkdir -p "$tasks_dir"
# Jobs of no size in the table (e.g. the study's vocabulary) run on "default-cpu" when no size of
# the study asks for GPUs, else on "default".
no_size=default-cpu
while IFS=$'\t' read -r id deps marker command; do
  size=${id%%/*}
  if [[ $known == *" $size "* ]] && [[ $size != default* ]] && [ "$(size_field "$size" gpus_per_node)" != 0 ]; then
    no_size=default
  fi
done <<<"$plan"
declare -A members tokens_of tokens_cache
while IFS=$'\t' read -r id deps marker command; do
  [ -n "${pending[$id]:-}" ] || continue
  [ -n "${level[$id]:-}" ] || die "$study: job $id depends on a job that is not in the plan"
  size=${id%%/*}
  read -ra words <<<"$command"
  kind=other
  if [[ $known == *" $size "* ]] && [[ $size != default* ]]; then
    [ "${words[1]:-}" = train ] && kind=train
    # The other jobs of a size run on one task: a GPU if the size's runs have GPUs, else a CPU.
    [ $kind = train ] || { [ "$(size_field "$size" gpus_per_node)" = 0 ] && size=default-cpu || size=default; }
  else
    size=$no_size
  fi
  key=$size.${level[$id]}.$kind
  group_of[$id]=$key
  members[$key]+="$id"$'\t'"$marker"$'\t'"$command"$'\n'
  order+=("$key")
  if [ $kind = train ]; then  # the group's time limit follows its longest run
    config='' sets=()
    for ((i = 2; i < ${#words[@]} - 1; ++i)); do
      # Only [data] overrides change steps x tokens per step: the others (seeds, init, schedules)
      # are left out so that runs differing in them share one `lnfree config` call.
      case ${words[i]} in --config) config=${words[i + 1]} ;; --set) [[ ${words[i + 1]} != data.* ]] || sets+=(--set "${words[i + 1]}") ;; esac
    done
    mapfile -t size_sets_list < <(size_sets "$size")
    tokens_key="$config ${sets[*]} ${size_sets_list[*]}"
    [ -n "${tokens_cache[$tokens_key]:-}" ] || tokens_cache[$tokens_key]=$(train_tokens "$config" "${sets[@]}" "${size_sets_list[@]}")
    t=${tokens_cache[$tokens_key]}
    [ "${tokens_of[$key]:-0}" -ge "$t" ] || tokens_of[$key]=$t
  fi
done <<<"$plan"
[ ${#order[@]} -gt 0 ] || { echo "study $dir: every job is done"; exit 0; }
# Every group's GPU request must fit the partition before the first job is queued.
for key in $(printf '%s\n' "${order[@]}" | sort -u); do check_gpus "${key%%.*}"; done
cluster mkdir -p "$(log_dir)"  # sbatch does not create the folder of --output

# Pass 2: one array per group, lowest level first, each after the arrays of its dependencies.
# Within a level the queue order (SLURM starts equal-priority jobs in submission order) follows
# `lnfree study`'s: the other jobs first (statistics gate the removal runs), then the training
# arrays longest run first, so that the longest runs do not start last.
declare -A job_of
all_ids=()
submission_order() {
  local key size seconds
  for key in $(printf '%s\n' "${order[@]}" | awk '!seen[$0]++'); do
    size=${key%%.*} seconds=-999999999  # sort key: other jobs first, then minus the predicted run time
    if [[ $key == *.train ]]; then
      seconds=$(awk -v t="${tokens_of[$key]:-0}" -v r="$(size_field "$size" tokens_per_s_per_task)" \
        -v n="$(($(size_field "$size" nodes) * $(size_field "$size" tasks_per_node)))" 'BEGIN { printf "%d", (r > 0 ? -t / (r * n) : 0) }')
    fi
    printf '%s %s %s\n' "$(cut -d. -f2 <<<"$key")" "$seconds" "$key"
  done | sort -k1,1n -k2,2n -s | awk '{ print $3 }'
}
mapfile -t queue_order < <(submission_order)
for key in "${queue_order[@]}"; do
  size=${key%%.*}
  tasks=$tasks_dir/$key.tasks
  if dry; then show write "$tasks"; printf '%s' "${members[$key]}" | sed 's/^/    /' >&2; else printf '%s' "${members[$key]}" >"$tasks"; fi
  count=$(printf '%s' "${members[$key]}" | grep -c .)
  after=()
  while IFS=$'\t' read -r id marker command; do
    deps=$(printf '%s\n' "$plan" | awk -F'\t' -v id="$id" '$1 == id { print $2 }')
    [ "$deps" = - ] && continue
    IFS=',' read -ra list <<<"$deps"
    for d in "${list[@]}"; do
      [ -n "${group_of[$d]:-}" ] && [ "${group_of[$d]}" != "$key" ] && after+=("${job_of[${group_of[$d]}]}")
    done
  done <<<"${members[$key]}"
  dependency=()
  if [ ${#after[@]} -gt 0 ]; then
    dependency=(--dependency="afterok:$(printf '%s\n' "${after[@]}" | sort -un | paste -sd:)" --kill-on-invalid-dep=yes)
  fi
  mapfile -t resources < <(resource_options "$size")
  mapfile -t size_sets_list < <([[ $size == default* ]] || size_sets "$size")
  limit=$(time_limit "${tokens_of[$key]:-0}" "$size")
  job_of[$key]=$(submit --job-name="lnfree-study-$key" --chdir="$LNFREE_ROOT" --array="0-$((count - 1))" \
    --time="$limit" "${resources[@]}" "${dependency[@]}" \
    --export="ALL,LNFREE_TASK_SETS=${size_sets_list[*]}" slurm/study-task.sbatch "$tasks")
  all_ids+=("${job_of[$key]}")
  echo "submitted $key: array job ${job_of[$key]}, $count task(s), time limit $limit" >&2
done
mapfile -t resources < <(resource_options default-cpu)
analysis=$(submit --job-name=lnfree-analysis --chdir="$LNFREE_ROOT" --time="$(time_limit 0 default-cpu)" \
  "${resources[@]}" --dependency="afterok:$(IFS=:; echo "${all_ids[*]}")" --kill-on-invalid-dep=yes \
  slurm/analysis.sbatch "$study" "$dir" "${study_sets[@]}")
echo "submitted analysis: job $analysis (after ${all_ids[*]}; cancelled if one of them fails)" >&2
