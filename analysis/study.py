"""The study folder that `lnfree study` writes (docs/tokens-needed.md, "Study folder"):

    STUDY/study.json
    STUDY/runs/<size>/control/run.h5          mode finetune
    STUDY/runs/<size>/speed-<label>/run.h5    mode remove-ln, one per schedule speed
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


@dataclasses.dataclass(frozen=True)
class SizeRuns:
    name: str
    n_params_nonembed: int
    n_params_total: int
    original_eval_loss: float | None
    zero_shot_eval_loss: float | None
    control: RunLog
    speeds: dict[str, RunLog]  # label -> run, in folder-name order


@dataclasses.dataclass(frozen=True)
class Study:
    root: str
    name: str
    delta: float | None
    budget_tokens: int | None
    eval_set: str
    sizes: list[SizeRuns]  # ascending in non-embedding parameters
    unfinished: list[str]  # run files analysed although unfinished (only with allow_unfinished)
    unigram_eval_loss: float | None = None  # CE of the eval set under the training unigram distribution
    vocab: dict | None = None  # the remapped vocabulary's size and UNK shares, as study.json has them


def _mode(run: RunLog) -> str:
    return run.mode.replace("_", "-")


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


def _read_size(root: str, study_path: str, index: int, entry: dict, allow_unfinished: bool,
               unfinished: list[str]) -> SizeRuns | None:
    where = f"sizes[{index}]"
    name = entry.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        raise AnalysisError(f"{study_path}: field '{where}.name': expected a folder name, got {name!r}")
    size_dir = os.path.join(root, "runs", name)
    if not os.path.isdir(size_dir):
        raise AnalysisError(f"{size_dir}: missing: study.json lists size '{name}' but it has no run folder")
    control_path = os.path.join(size_dir, "control", "run.h5")
    speed_dirs = sorted(d for d in os.listdir(size_dir) if d.startswith(SPEED_PREFIX) and len(d) > len(SPEED_PREFIX))
    if not os.path.isfile(control_path):
        if allow_unfinished:
            log.warning("%s: missing: size '%s' skipped (--allow-unfinished)", control_path, name)
            return None
        raise AnalysisError(f"{control_path}: missing: every size needs its vanilla control run")
    control = read_run(control_path)
    if _mode(control) != "finetune":
        raise AnalysisError(f"{control_path}: root attribute 'mode': expected 'finetune' for the control, "
                            f"got '{control.mode}'")
    if len(control.events.removal_tokens()):
        raise AnalysisError(f"{control_path}: the control has LN removal events in '/events'; expected none")
    _check_finished(control, allow_unfinished, unfinished)
    speeds = {}
    for d in speed_dirs:
        run_path = os.path.join(size_dir, d, "run.h5")
        if not os.path.isfile(run_path):
            if allow_unfinished:
                log.warning("%s: missing: speed skipped (--allow-unfinished)", run_path)
                continue
            raise AnalysisError(f"{run_path}: missing: the speed folder has no run log")
        run = read_run(run_path)
        if _mode(run) != "remove-ln":
            raise AnalysisError(f"{run_path}: root attribute 'mode': expected 'remove-ln', got '{run.mode}'")
        _check_finished(run, allow_unfinished, unfinished)
        speeds[d[len(SPEED_PREFIX):]] = run
    if not speeds:
        raise AnalysisError(f"{size_dir}: no removal runs: expected at least one '{SPEED_PREFIX}<label>/run.h5'")
    runs = [control, *speeds.values()]
    return SizeRuns(
        name=name,
        n_params_nonembed=_param_count(study_path, where, entry, "n_params_nonembed", runs, "params_non_embedding"),
        n_params_total=_param_count(study_path, where, entry, "n_params_total", runs, "params_total"),
        original_eval_loss=_optional_number(study_path, where, entry, "original_eval_loss"),
        zero_shot_eval_loss=_optional_number(study_path, where, entry, "zero_shot_eval_loss"),
        control=control,
        speeds=speeds,
    )


def _eval_set(study_path: str, meta: dict, sizes: list[SizeRuns]) -> str:
    name = meta.get("eval_set")
    if name is not None:
        if not isinstance(name, str) or not name:
            raise AnalysisError(f"{study_path}: field 'eval_set': expected the name of an /eval set, got {name!r}")
        return name
    common = None
    for size in sizes:
        for run in (size.control, *size.speeds.values()):
            common = set(run.eval) if common is None else common & set(run.eval)
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
    unfinished: list[str] = []
    sizes = [s for i, e in enumerate(entries)
             if (s := _read_size(root, study_path, i, e, allow_unfinished, unfinished)) is not None]
    if not sizes:
        raise AnalysisError(f"{study_path}: no size has a control run yet")
    for extra in sorted(set(os.listdir(os.path.join(root, "runs"))) - {s.name for s in sizes} - set(map(str, names))):
        log.warning("%s: not listed in study.json; ignored", os.path.join(root, "runs", extra))
    sizes.sort(key=lambda s: (s.n_params_nonembed, s.name))
    name = meta.get("name")
    return Study(root=root, name=name if isinstance(name, str) else os.path.basename(os.path.abspath(root)),
                 delta=delta, budget_tokens=budget, eval_set=_eval_set(study_path, meta, sizes), sizes=sizes,
                 unfinished=unfinished, unigram_eval_loss=_optional_number(study_path, "study", meta, "unigram_eval_loss"),
                 vocab=meta.get("vocab") if isinstance(meta.get("vocab"), dict) else None)
