"""The study folder that `lnfree study` writes (docs/tokens-needed.md, "Study folder"):

    STUDY/study.json                                  "seeds": [v0, v1, ...], sizes[].replicates[]
    STUDY/runs/<size>/seed-<v>/control/run.h5         mode finetune
    STUDY/runs/<size>/seed-<v>/speed-<label>/run.h5   mode remove-ln, one per schedule speed

Each replicate (seed) is a full repetition: its own pretrained model, control and removal runs. A
study.json without "seeds" and "replicates" is the older single-replicate layout, whose runs sit at
runs/<size>/{control,speed-<label>}; it is read as one replicate with seed None.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os

from .errors import AnalysisError
from .runlog import RunLog, read_run

log = logging.getLogger("analysis")

SPEED_PREFIX = "speed-"
FULL_SUFFIX = ".full"  # <eval_set>.full: evaluated once at the last step on the whole held-out split


@dataclasses.dataclass(frozen=True)
class Replicate:
    """One seed of one size: its control and its removal runs."""

    seed: int | None  # None in the single-replicate layout
    dir: str  # folder under runs/<size>/ ("" in the single-replicate layout)
    original_eval_loss: float | None  # held-out loss of this seed's pretrained model
    zero_shot_eval_loss: float | None  # the same with every LN fake and no training
    control: RunLog
    speeds: dict[str, RunLog]  # label -> run, in folder-name order


@dataclasses.dataclass(frozen=True)
class SizeRuns:
    name: str
    n_params_nonembed: int
    n_params_total: int
    original_eval_loss: float | None  # study.json's per-size value (the mean over seeds)
    zero_shot_eval_loss: float | None
    replicates: list[Replicate]  # in study.json order

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.replicates]


@dataclasses.dataclass(frozen=True)
class Study:
    root: str
    name: str
    delta: float | None
    budget_tokens: int | None
    eval_set: str
    sizes: list[SizeRuns]  # ascending in non-embedding parameters
    seeds: list[int | None]  # study.json's "seeds"; [None] in the single-replicate layout
    unfinished: list[str]  # run files analysed although unfinished (only with allow_unfinished)
    unigram_eval_loss: float | None = None  # CE of the eval set under the training unigram distribution
    vocab: dict | None = None  # the remapped vocabulary's size and UNK shares, as study.json has them


def _optional_number(study_path: str, where: str, entry: dict, key: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnalysisError(f"{study_path}: field '{where}.{key}': expected a finite number, got {value!r}")
    return float(value)


def _param_count(study_path: str, where: str, entry: dict, key: str, runs: list[RunLog], attr: str) -> int:
    """The study's count, checked against every run's root attribute (the runs are the ground truth)."""
    from_runs = {getattr(r, attr) for r in runs}
    if len(from_runs) != 1:
        listing = ", ".join(f"{r.path}: {getattr(r, attr)}" for r in runs)
        raise AnalysisError(f"root attribute '{attr}' differs between the runs of one size: {listing}")
    (count,) = from_runs
    value = entry.get(key)
    if value is not None and value != count:
        raise AnalysisError(f"{study_path}: field '{where}.{key}' = {value!r}, but the run logs say "
                            f"{attr} = {count} ({runs[0].path})")
    return count


def _check_finished(run: RunLog, allow_unfinished: bool, unfinished: list[str]) -> None:
    if run.finished:
        return
    said = f" ({run.status_message})" if run.status_message else ""
    if not allow_unfinished:
        raise AnalysisError(f"{run.path}: status '{run.status}'{said}: the run has not finished, so its "
                            "T_delta could still change. Let it finish (or resume it), or pass "
                            "--allow-unfinished to analyse the rows written so far")
    log.warning("%s: status '%s'%s: analysed as it stands (--allow-unfinished)", run.path, run.status, said)
    unfinished.append(run.path)


def _read_runs(run_root: str, allow_unfinished: bool,
               unfinished: list[str]) -> tuple[RunLog, dict[str, RunLog]] | None:
    """The control and the speed-* runs in one folder (a replicate's, or the size's in the old layout)."""
    control_path = os.path.join(run_root, "control", "run.h5")
    if not os.path.isfile(control_path):
        if allow_unfinished:
            log.warning("%s: missing: skipped (--allow-unfinished)", control_path)
            return None
        raise AnalysisError(f"{control_path}: missing: every size (and every seed of it) needs its vanilla control "
                            "run")
    control = read_run(control_path)
    if control.mode != "finetune":
        raise AnalysisError(f"{control_path}: root attribute 'mode': expected 'finetune' for the control, "
                            f"got '{control.mode}'")
    if len(control.events.removal_tokens()):
        raise AnalysisError(f"{control_path}: the control has LN removal events in '/events'; expected none")
    _check_finished(control, allow_unfinished, unfinished)
    speeds = {}
    speed_dirs = sorted(d for d in os.listdir(run_root) if d.startswith(SPEED_PREFIX) and len(d) > len(SPEED_PREFIX))
    for d in speed_dirs:
        run_path = os.path.join(run_root, d, "run.h5")
        if not os.path.isfile(run_path):
            if allow_unfinished:
                log.warning("%s: missing: speed skipped (--allow-unfinished)", run_path)
                continue
            raise AnalysisError(f"{run_path}: missing: the speed folder has no run log")
        run = read_run(run_path)
        if len(run.rollback_steps):
            log.warning("%s: rolled back %d time(s) after a divergence (optim.on_divergence = \"rollback\", to "
                        "after steps %s): part of its schedule ran at a lower learning rate than its speed's other runs",
                        run_path, len(run.rollback_steps), ", ".join(map(str, run.rollback_steps)))
        if run.mode != "remove-ln":
            raise AnalysisError(f"{run_path}: root attribute 'mode': expected 'remove-ln', got '{run.mode}'")
        _check_finished(run, allow_unfinished, unfinished)
        speeds[d[len(SPEED_PREFIX):]] = run
    if not speeds:
        raise AnalysisError(f"{run_root}: no removal runs: expected at least one '{SPEED_PREFIX}<label>/run.h5'")
    return control, speeds


def _seed_value(study_path: str, where: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AnalysisError(f"{study_path}: field '{where}': expected an integer seed, got {value!r}")
    return value


def _replicate_entries(study_path: str, where: str, entry: dict, seeds: list[int] | None) -> list[dict]:
    """sizes[].replicates as a list of {seed, dir, ...}; derived from the top-level seeds when absent."""
    listed = entry.get("replicates")
    if listed is None:
        if seeds is None:
            return [{"seed": None, "dir": ""}]
        return [{"seed": v, "dir": f"seed-{v}"} for v in seeds]
    if not isinstance(listed, list) or not listed or not all(isinstance(r, dict) for r in listed):
        raise AnalysisError(f"{study_path}: field '{where}.replicates': expected a non-empty list of objects, "
                            f"got {listed!r}")
    out = []
    for j, r in enumerate(listed):
        seed = _seed_value(study_path, f"{where}.replicates[{j}].seed", r.get("seed"))
        if seeds is not None and seed not in seeds:
            raise AnalysisError(f"{study_path}: field '{where}.replicates[{j}].seed' = {seed}, which the top-level "
                                f"'seeds' {seeds} does not list")
        folder = r.get("dir", f"seed-{seed}")
        if not isinstance(folder, str) or not folder or "/" in folder or folder in (".", ".."):
            raise AnalysisError(f"{study_path}: field '{where}.replicates[{j}].dir': expected a folder name, "
                                f"got {folder!r}")
        out.append({**r, "seed": seed, "dir": folder})
    for key in ("seed", "dir"):
        values = [r[key] for r in out]
        if len(set(values)) != len(values):
            raise AnalysisError(f"{study_path}: field '{where}.replicates': the {key}s repeat: {values}")
    return out


def _read_size(root: str, study_path: str, index: int, entry: dict, seeds: list[int] | None,
               allow_unfinished: bool, unfinished: list[str]) -> SizeRuns | None:
    where = f"sizes[{index}]"
    name = entry.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        raise AnalysisError(f"{study_path}: field '{where}.name': expected a folder name, got {name!r}")
    size_dir = os.path.join(root, "runs", name)
    if not os.path.isdir(size_dir):
        raise AnalysisError(f"{size_dir}: missing: study.json lists size '{name}' but it has no run folder")
    size_original = _optional_number(study_path, where, entry, "original_eval_loss")
    size_zero_shot = _optional_number(study_path, where, entry, "zero_shot_eval_loss")
    specs = _replicate_entries(study_path, where, entry, seeds)
    replicates = []
    for j, spec in enumerate(specs):
        run_root = os.path.join(size_dir, spec["dir"]) if spec["dir"] else size_dir
        if spec["dir"] and not os.path.isdir(run_root):
            if allow_unfinished:
                log.warning("%s: missing: seed %s of size '%s' skipped (--allow-unfinished)", run_root, spec["seed"],
                            name)
                continue
            raise AnalysisError(f"{run_root}: missing: size '{name}' lists seed {spec['seed']} but it has no folder")
        runs = _read_runs(run_root, allow_unfinished, unfinished)
        if runs is None:
            continue
        rwhere = f"{where}.replicates[{j}]"
        if spec["dir"] and "replicates" in entry:
            original = _optional_number(study_path, rwhere, spec, "original_eval_loss")
            zero_shot = _optional_number(study_path, rwhere, spec, "zero_shot_eval_loss")
        else:
            # Old layout (or seeds without per-seed entries): the size's own values, when it has one seed.
            single = len(specs) == 1
            original, zero_shot = (size_original, size_zero_shot) if single else (None, None)
        replicates.append(Replicate(spec["seed"], spec["dir"], original, zero_shot, *runs))
    if not replicates:
        log.warning("%s: no seed of size '%s' has a control run yet; size skipped (--allow-unfinished)", size_dir, name)
        return None
    if seeds is not None:
        known = {r["dir"] for r in specs}
        for extra in sorted(set(os.listdir(size_dir)) - known):
            log.warning("%s: not a seed folder that study.json lists for size '%s'; ignored",
                        os.path.join(size_dir, extra), name)
    runs = [run for r in replicates for run in (r.control, *r.speeds.values())]
    return SizeRuns(
        name=name,
        n_params_nonembed=_param_count(study_path, where, entry, "n_params_nonembed", runs, "params_non_embedding"),
        n_params_total=_param_count(study_path, where, entry, "n_params_total", runs, "params_total"),
        original_eval_loss=size_original,
        zero_shot_eval_loss=size_zero_shot,
        replicates=replicates,
    )


def _eval_set(study_path: str, meta: dict, sizes: list[SizeRuns]) -> str:
    name = meta.get("eval_set")
    if name is not None:
        if not isinstance(name, str) or not name:
            raise AnalysisError(f"{study_path}: field 'eval_set': expected the name of an /eval set, got {name!r}")
        return name
    common = None
    for size in sizes:
        for rep in size.replicates:
            for run in (rep.control, *rep.speeds.values()):
                common = set(run.eval) if common is None else common & set(run.eval)
    if common is not None:
        # A "<set>.full" set is the once-at-the-end evaluation of <set> on the whole split, not a choice.
        common = {c for c in common if not (c.endswith(FULL_SUFFIX) and c[:-len(FULL_SUFFIX)] in common)}
    if common is not None and len(common) == 1:
        return common.pop()
    raise AnalysisError(f"{study_path}: field 'eval_set' is missing and the runs do not share exactly one eval set "
                        f"(shared: {sorted(common or [])}); name the set to compare on")


def read_study(root: str, allow_unfinished: bool = False) -> Study:
    """Read study.json and every run it implies; refuse unfinished runs unless allowed."""
    study_path = os.path.join(root, "study.json")
    if not os.path.isfile(study_path):
        raise AnalysisError(f"{study_path}: not found: expected a study folder written by `lnfree study`")
    try:
        with open(study_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnalysisError(f"{study_path}: not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise AnalysisError(f"{study_path}: expected a JSON object at the top level")
    entries = meta.get("sizes")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise AnalysisError(f"{study_path}: field 'sizes': expected a non-empty list of objects, got {entries!r}")
    names = [e.get("name") for e in entries]
    if len(set(map(str, names))) != len(names):
        raise AnalysisError(f"{study_path}: field 'sizes': size names repeat: {names}")
    delta = _optional_number(study_path, "study", meta, "delta")
    if delta is not None and delta <= 0:
        raise AnalysisError(f"{study_path}: field 'delta': expected a positive number of nats, got {delta}")
    budget = meta.get("budget_tokens")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
        raise AnalysisError(f"{study_path}: field 'budget_tokens': expected a positive integer, got {budget!r}")
    seeds = meta.get("seeds")
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds:
            raise AnalysisError(f"{study_path}: field 'seeds': expected a non-empty list of integer seeds, "
                                f"got {seeds!r}")
        seeds = [_seed_value(study_path, f"seeds[{i}]", v) for i, v in enumerate(seeds)]
        if len(set(seeds)) != len(seeds):
            raise AnalysisError(f"{study_path}: field 'seeds': seeds repeat: {seeds}")
    elif any("replicates" in e for e in entries):
        raise AnalysisError(f"{study_path}: field 'seeds' is missing but sizes list 'replicates': expected the "
                            "top-level list of replicate seeds")
    unfinished: list[str] = []
    sizes = [s for i, e in enumerate(entries)
             if (s := _read_size(root, study_path, i, e, seeds, allow_unfinished, unfinished)) is not None]
    if not sizes:
        raise AnalysisError(f"{study_path}: no size has a control run yet")
    for extra in sorted(set(os.listdir(os.path.join(root, "runs"))) - {s.name for s in sizes} - set(map(str, names))):
        log.warning("%s: not listed in study.json; ignored", os.path.join(root, "runs", extra))
    sizes.sort(key=lambda s: (s.n_params_nonembed, s.name))
    name = meta.get("name")
    return Study(root=root, name=name if isinstance(name, str) else os.path.basename(os.path.abspath(root)),
                 delta=delta, budget_tokens=budget, eval_set=_eval_set(study_path, meta, sizes), sizes=sizes,
                 seeds=list(seeds) if seeds is not None else [None], unfinished=unfinished,
                 unigram_eval_loss=_optional_number(study_path, "study", meta, "unigram_eval_loss"),
                 vocab=meta.get("vocab") if isinstance(meta.get("vocab"), dict) else None)
