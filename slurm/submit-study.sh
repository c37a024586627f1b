#!/usr/bin/env bash
# Submits a whole study to SLURM: slurm/submit-study.sh STUDY_CONFIG STUDY_DIR [--set section.key=value ...]
# The jobs are those of `lnfree study --config STUDY_CONFIG --out STUDY_DIR --print-plan` (docs/study.md),
# which a single machine would run itself; finished ones (done marker present) are skipped. They are
# grouped into job arrays by model size, dependency level and kind: the training runs of one size at
# one level (its control and every schedule speed) form one array with that size's resources from
# slurm/sizes.tsv and a time limit for its longest run; other jobs (sigma statistics, evaluations)
# use the "default" row. An array waits for the arrays holding its jobs' dependencies
# (--dependency=afterok), and one analysis job waits for all of them (slurm/analysis.sbatch).
# Arrays cannot mix resources, hence one array per size rather than one over sizes x speeds.
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
known_sizes=" $(awk '!/^#/ && NF >= 7 { printf "%s ", $1 }' "$SIZES_FILE")"

# Pass 1: group of every job still to run, as "id group" lines; the group is size.level.kind, the
# level 1 + the deepest dependency still to run.
declare -A level group_of pending
while IFS=$'\t' read -r id deps marker command; do
  [ -e "$marker" ] && continue
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
cluster mkdir -p "$tasks_dir" runs/slurm
declare -A members tokens_of
while IFS=$'\t' read -r id deps marker command; do
  [ -n "${pending[$id]:-}" ] || continue
  [ -n "${level[$id]:-}" ] || die "$study: job $id depends on a job that is not in the plan"
  size=${id%%/*}
  [[ $known_sizes == *" $size "* ]] || size=default
  read -ra words <<<"$command"
  kind=other
  [ "${words[1]:-}" = train ] && [ "$size" != default ] && kind=train
  [ $kind = train ] || size=default
  key=$size.${level[$id]}.$kind
  group_of[$id]=$key
  members[$key]+="$id"$'\t'"$command"$'\n'
  order+=("$key")
  if [ $kind = train ]; then  # the group's time limit follows its longest run
    config='' sets=()
    for ((i = 2; i < ${#words[@]} - 1; ++i)); do
      case ${words[i]} in --config) config=${words[i + 1]} ;; --set) sets+=(--set "${words[i + 1]}") ;; esac
    done
    mapfile -t size_sets_list < <(size_sets "$size")
    t=$(train_tokens "$config" "${sets[@]}" "${size_sets_list[@]}")
    [ "${tokens_of[$key]:-0}" -ge "$t" ] || tokens_of[$key]=$t
  fi
done <<<"$plan"
[ ${#order[@]} -gt 0 ] || { echo "study $dir: every job is done"; exit 0; }

# Pass 2: one array per group, lowest level first, each after the arrays of its dependencies.
declare -A job_of
all_ids=()
for key in $(printf '%s\n' "${order[@]}" | awk '!seen[$0]++' | sort -t. -k2,2n -s); do
  size=${key%%.*}
  tasks=$tasks_dir/$key.tasks
  if dry; then show write "$tasks"; printf '%s' "${members[$key]}" | sed 's/^/    /' >&2; else printf '%s' "${members[$key]}" >"$tasks"; fi
  count=$(printf '%s' "${members[$key]}" | grep -c .)
  after=()
  while IFS=$'\t' read -r id command; do
    deps=$(printf '%s\n' "$plan" | awk -F'\t' -v id="$id" '$1 == id { print $2 }')
    [ "$deps" = - ] && continue
    IFS=',' read -ra list <<<"$deps"
    for d in "${list[@]}"; do
      [ -n "${group_of[$d]:-}" ] && [ "${group_of[$d]}" != "$key" ] && after+=("${job_of[${group_of[$d]}]}")
    done
  done <<<"${members[$key]}"
  dependency=()
  if [ ${#after[@]} -gt 0 ]; then
    dependency=(--dependency="afterok:$(printf '%s\n' "${after[@]}" | sort -un | paste -sd:)")
  fi
  mapfile -t resources < <(resource_options "$size")
  mapfile -t size_sets_list < <([ "$size" = default ] || size_sets "$size")
  limit=$(time_limit "${tokens_of[$key]:-0}" "$size")
  job_of[$key]=$(submit --job-name="lnfree-study-$key" --chdir="$LNFREE_ROOT" --array="0-$((count - 1))" \
    --time="$limit" "${resources[@]}" "${dependency[@]}" \
    --export="ALL,LNFREE_TASK_SETS=${size_sets_list[*]}" slurm/study-task.sbatch "$tasks")
  all_ids+=("${job_of[$key]}")
  echo "submitted $key: array job ${job_of[$key]}, $count task(s), time limit $limit" >&2
done
analysis=$(submit --job-name=lnfree-analysis --chdir="$LNFREE_ROOT" \
  --dependency="afterok:$(IFS=:; echo "${all_ids[*]}")" slurm/analysis.sbatch "$study" "$dir" "${study_sets[@]}")
echo "submitted analysis: job $analysis (after ${all_ids[*]})" >&2
