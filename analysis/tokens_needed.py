"""Per removal run: the gap to its control, T_delta and the recovery fit; per replicate (one seed of
one size): the minimum over its speeds (docs/tokens-needed.md defines every number).

gap(t) = removal eval loss - control eval loss, the control interpolated linearly in tokens at the
removal run's evaluations. T_delta is the first token count from which the model is LN-free and the
gap stays <= delta until the run ends; a run that diverged, or ends above delta, has T_delta = inf.
The recovery fit (recovery.py) gives the persistent gap g_inf and the recovery tokens R. A run is
always compared with the control of its own seed. The mean over seeds is replicates.py's job.
"""
from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from . import recovery
from .errors import AnalysisError
from .recovery import RecoveryFit, TooFewEvaluations
from .runlog import EvalCurve, RunLog
from .study import FULL_SUFFIX, Replicate, Study

log = logging.getLogger("analysis")
INF = math.inf


class SpeedChoices:
    """What a result with `speeds` (fastest first, each with `label` and `diverged`), `best_speed`,
    `faster_neighbour` and `slower_neighbour` says about the speeds tried: one seed's results
    (ReplicateResult) and a size's over its seeds (replicates.SizeResult) share it."""

    @property
    def best_speed_position(self) -> str:
        """Where the best speed sits in the speeds tried: a faster or slower one untried might do better."""
        if self.best_speed is None:
            return "none"
        if len(self.speeds) == 1:
            return "only speed"
        if self.faster_neighbour is None:
            return "fastest tried"
        return "slowest tried" if self.slower_neighbour is None else "interior"

    @property
    def paper_speed(self):
        """The paper's notion: the fastest schedule that trained without diverging."""
        return next((s for s in self.speeds if not s.diverged), None)

    @property
    def paper_faster_diverged(self) -> str | None:
        """The next faster speed than paper_speed, when it diverged (its schedule bounds the need from below)."""
        paper = self.paper_speed
        if paper is None:
            return None
        i = self.speeds.index(paper)
        return self.speeds[i - 1].label if i > 0 else None


@dataclasses.dataclass(frozen=True)
class Bracket:
    """An estimate with the interval that must contain the true value (inf = never)."""

    estimate: float
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class SpeedResult:
    label: str
    path: str
    status: str
    window: tuple[float, float]  # first and last removal event, tokens
    ln_free_at: float  # tokens after which every LN is fake (the paper's "end of removal")
    total_tokens: int  # fine-tuning tokens the run consumed
    eval_tokens: np.ndarray  # removal evaluations compared with the control
    gap: np.ndarray
    t_delta: Bracket
    final_gap: float  # gap at the budget; inf when diverged, nan when the budget is outside the evaluations
    recovery: RecoveryFit
    final_gap_full: float  # gap on <eval_set>.full at the last step; nan when a run lacks that set

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"


@dataclasses.dataclass(frozen=True)
class ReplicateResult(SpeedChoices):
    """One seed of one size: every speed's results and the minima over the speeds."""

    name: str  # the size
    seed: int | None
    dir: str
    n_params_nonembed: int
    n_params_total: int
    speeds: list[SpeedResult]  # fastest (shortest removal window) first
    tokens_needed: Bracket
    best_speed: str | None  # None when no speed came within delta
    faster_neighbour: str | None
    slower_neighbour: str | None
    final_gap: float
    final_gap_speed: str | None
    original_eval_loss: float | None
    zero_shot_eval_loss: float | None
    eval_spacing: float  # median tokens between the removal runs' evaluations
    final_gap_full: float  # smallest over speeds of the full-split final gap (nan when none has it)
    recovery_speed: str | None  # the speed with the smallest R (None when no speed has a recovery fit)

    @property
    def recovery_lower_bound(self) -> float:
        """What this seed's R is known to exceed (R itself when some speed resolved its recovery)."""
        bounds = [s.recovery.recovery_lower_bound for s in self.speeds if s.recovery.status != recovery.SKIPPED]
        return min(bounds) if bounds else math.nan

    @property
    def recovery_fit(self) -> RecoveryFit | None:
        """The recovery fit of recovery_speed: its R is this seed's recovery tokens, its g_inf the persistent gap."""
        return next((s.recovery for s in self.speeds if s.label == self.recovery_speed), None)

    @property
    def zero_shot_damage(self) -> float | None:
        if self.original_eval_loss is None or self.zero_shot_eval_loss is None:
            return None
        return self.zero_shot_eval_loss - self.original_eval_loss



def gap_curve(control: EvalCurve, removal: EvalCurve) -> tuple[np.ndarray, np.ndarray]:
    """gap at the removal run's evaluations that lie within the control's evaluated token range."""
    if len(control.tokens) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    inside = (removal.tokens >= control.tokens[0]) & (removal.tokens <= control.tokens[-1])
    tokens = removal.tokens[inside]
    return tokens, removal.loss[inside] - np.interp(tokens, control.tokens, control.loss)


def t_delta(tokens: np.ndarray, gap: np.ndarray, delta: float, ln_free_at: float) -> Bracket:
    """T_delta of one run that did not diverge, with its evaluation-resolution bracket.

    Only evaluations of the LN-free model count: those after more than ln_free_at tokens (an
    evaluation at exactly ln_free_at ran before the last removal event took effect). Between two of
    them the gap is taken to move monotonically (no excursion above delta that no evaluation saw).
    Then the true T_delta lies between the last evaluation above delta and the first of the final
    stretch of evaluations within delta; the estimate interpolates the gap linearly between the two.
    When every LN-free evaluation is within delta, T_delta lies in [ln_free_at, first of them] and the
    estimate is that first evaluation.
    """
    free = tokens > ln_free_at
    tokens, gap = tokens[free].astype(np.float64), gap[free]
    if len(tokens) == 0:
        return Bracket(INF, ln_free_at, INF)
    within = gap <= delta  # nan (a non-finite loss) counts as above delta
    if not within[-1]:
        return Bracket(INF, float(tokens[-1]), INF)
    above = np.flatnonzero(~within)
    if len(above) == 0:
        return Bracket(float(tokens[0]), ln_free_at, float(tokens[0]))
    first_pass = int(above[-1]) + 1
    t_fail, t_pass = float(tokens[first_pass - 1]), float(tokens[first_pass])
    g_fail, g_pass = float(gap[first_pass - 1]), float(gap[first_pass])
    crossing = t_fail + (g_fail - delta) / (g_fail - g_pass) * (t_pass - t_fail) if math.isfinite(g_fail) else t_pass
    return Bracket(crossing, t_fail, t_pass)


def _value_at(curve: EvalCurve, tokens: float) -> float:
    if len(curve.tokens) == 0 or not curve.tokens[0] <= tokens <= curve.tokens[-1]:
        return math.nan
    return float(np.interp(tokens, curve.tokens, curve.loss))


def _span(curve: EvalCurve) -> str:
    return f"[{curve.tokens[0]}, {curve.tokens[-1]}] tokens" if len(curve.tokens) else "nothing"


def _windows(run: RunLog) -> tuple[tuple[float, float], float]:
    """The removal window (planned, so that diverged runs have one too) and when the model is LN-free."""
    actual = run.events.removal_tokens()
    planned = run.planned_removal_window()
    if planned is None and len(actual) == 0:
        raise AnalysisError(f"{run.path}: neither the config's [schedule] nor '/events' has LN removal events")
    window = planned if planned is not None else (float(actual.min()), float(actual.max()))
    if run.status == "complete":
        if len(actual) == 0:
            raise AnalysisError(f"{run.path}: status 'complete' but '/events' has no LN removal event")
        if planned is not None and float(actual.max()) != planned[1]:
            log.warning("%s: last removal event at %d tokens, the config plans %d; using the events",
                        run.path, actual.max(), planned[1])
        return window, float(actual.max())
    return window, float(window[1])


def _final_gap_full(run: RunLog, control: RunLog, eval_set: str) -> float:
    """Last-step gap on the whole held-out split, when both runs evaluated <eval_set>.full."""
    name = eval_set + FULL_SUFFIX
    if name not in run.eval or name not in control.eval:
        return math.nan
    if run.status == "diverged":
        return INF
    mine, theirs = run.eval[name], control.eval[name]
    if len(mine.tokens) == 0 or len(theirs.tokens) == 0:
        return math.nan
    if mine.tokens[-1] != theirs.tokens[-1]:
        log.warning("%s: last '/eval/%s' at %d tokens, its control %s at %d: no full-split final gap", run.path, name,
                    mine.tokens[-1], control.path, theirs.tokens[-1])
        return math.nan
    return float(mine.loss[-1] - theirs.loss[-1])


def _recovery(run: RunLog, eval_set: str, tokens: np.ndarray, gap: np.ndarray, ln_free_at: float,
              skip_short_fits: bool) -> RecoveryFit:
    if run.status == "diverged":
        return recovery.diverged_fit(ln_free_at)
    try:
        return recovery.fit_recovery(tokens, gap, ln_free_at, f"{run.path}: '/eval/{eval_set}'")
    except TooFewEvaluations as e:
        if run.finished and not skip_short_fits:
            raise AnalysisError(f"{e}. Evaluate more often after the last removal (the study's eval interval), or "
                                "pass --skip-short-fits to leave such runs out of the recovery measure") from None
        why = "unfinished" if not run.finished else "--skip-short-fits"
        log.warning("%s: left out of the recovery measure (%s)", e, why)
        return recovery.skipped_fit(ln_free_at, e.count, f"{e.count} LN-free evaluations, fewer than "
                                    f"{recovery.MIN_LN_FREE_EVALS}: left out ({why})")


def _speed_result(label: str, run: RunLog, control: RunLog, eval_set: str, delta: float, budget: float,
                  skip_short_fits: bool) -> SpeedResult:
    control_curve, removal_curve = control.eval_curve(eval_set), run.eval_curve(eval_set)
    if len(control_curve.tokens) == 0:
        raise AnalysisError(f"{control.path}: '/eval/{eval_set}' is empty: the control was never evaluated")
    window, ln_free_at = _windows(run)
    beyond = removal_curve.tokens > control_curve.tokens[-1]
    if np.any(beyond):
        message = (f"{run.path}: evaluated up to {removal_curve.tokens[-1]} tokens but the control "
                   f"{control.path} only up to {control_curve.tokens[-1]}; the gap cannot be judged beyond that")
        if run.finished and control.finished:
            raise AnalysisError(message + ": run the control at least as long as the removal runs")
        log.warning("%s (unfinished run: compared up to the control's last evaluation)", message)
    tokens, gap = gap_curve(control_curve, removal_curve)
    if run.status == "complete" and len(tokens) == 0:
        raise AnalysisError(f"{run.path}: '/eval/{eval_set}' has no evaluation within the control's token range "
                            f"[{control_curve.tokens[0]}, {control_curve.tokens[-1]}]")
    if run.status == "diverged":
        crossing, final_gap = Bracket(INF, INF, INF), INF
    else:
        crossing = t_delta(tokens, gap, delta, ln_free_at)
        final_gap = _value_at(removal_curve, budget) - _value_at(control_curve, budget)
        if math.isnan(final_gap):
            log.warning("%s: no gap at the budget of %d tokens: it evaluated %s, its control %s", run.path, budget,
                        _span(removal_curve), _span(control_curve))
    total = int(run.train_tokens[-1]) if len(run.train_tokens) else 0
    fit = _recovery(run, eval_set, tokens, gap, ln_free_at, skip_short_fits)
    return SpeedResult(label, run.path, run.status, window, ln_free_at, total, tokens, gap, crossing, final_gap, fit,
                       _final_gap_full(run, control, eval_set))


def _smallest_recovery(speeds: list[SpeedResult]) -> str | None:
    """The speed with the smallest R. Among equals (e.g. none resolved its recovery) one that did not
    diverge comes first, then the fastest. Runs left out of the recovery measure take no part."""
    fitted = [s for s in speeds if s.recovery.status != recovery.SKIPPED]
    if not fitted:
        return None
    return min(fitted, key=lambda s: (s.recovery.recovery_tokens, s.diverged)).label


def replicate_result(name: str, n_nonembed: int, n_total: int, rep: Replicate, eval_set: str, delta: float,
                     budget: float, skip_short_fits: bool = False) -> ReplicateResult:
    speeds = [_speed_result(label, run, rep.control, eval_set, delta, budget, skip_short_fits)
              for label, run in rep.speeds.items()]
    speeds.sort(key=lambda s: (s.window[1] - s.window[0], s.window[1], s.label))
    estimates = [s.t_delta.estimate for s in speeds]
    best = int(np.argmin(estimates))
    reached = math.isfinite(estimates[best])
    # Each run's bracket contains its true T_delta, so the minima bracket the minimum over the speeds tried.
    needed = Bracket(min(estimates), min(s.t_delta.low for s in speeds), min(s.t_delta.high for s in speeds))
    finite_gaps = [(s.final_gap, s.label) for s in speeds if not math.isnan(s.final_gap)]
    final_gap, final_gap_speed = min(finite_gaps) if finite_gaps else (math.nan, None)
    full_gaps = [s.final_gap_full for s in speeds if not math.isnan(s.final_gap_full)]
    spacings = np.concatenate([np.diff(s.eval_tokens) for s in speeds])
    return ReplicateResult(
        name=name,
        seed=rep.seed,
        dir=rep.dir,
        n_params_nonembed=n_nonembed,
        n_params_total=n_total,
        speeds=speeds,
        tokens_needed=needed,
        best_speed=speeds[best].label if reached else None,
        faster_neighbour=speeds[best - 1].label if reached and best > 0 else None,
        slower_neighbour=speeds[best + 1].label if reached and best + 1 < len(speeds) else None,
        final_gap=final_gap,
        final_gap_speed=final_gap_speed,
        original_eval_loss=rep.original_eval_loss,
        zero_shot_eval_loss=rep.zero_shot_eval_loss,
        eval_spacing=float(np.median(spacings)) if len(spacings) else math.nan,
        final_gap_full=min(full_gaps) if full_gaps else math.nan,
        recovery_speed=_smallest_recovery(speeds),
    )


def resolved_budget(study: Study) -> int:
    """study.json's budget_tokens, else the last control evaluation of the smallest size."""
    if study.budget_tokens is not None:
        return study.budget_tokens
    first = study.sizes[0].replicates[0].control
    tokens = first.eval_curve(study.eval_set).tokens
    if len(tokens) == 0:
        raise AnalysisError(f"{first.path}: '/eval/{study.eval_set}' is empty: the control was never evaluated")
    return int(tokens[-1])


def replicate_results(study: Study, delta: float, skip_short_fits: bool = False) -> list[list[ReplicateResult]]:
    """Per size (smallest first), the result of each of its seeds."""
    budget = resolved_budget(study)
    if study.budget_tokens is None:
        log.warning("study.json has no 'budget_tokens': final gaps are taken at %d tokens (the last control "
                    "evaluation of size %s)", budget, study.sizes[0].name)
    return [[replicate_result(size.name, size.n_params_nonembed, size.n_params_total, rep, study.eval_set, delta,
                              budget, skip_short_fits) for rep in size.replicates] for size in study.sizes]
