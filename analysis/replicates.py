"""Per size: the mean over its seeds of every per-seed quantity, with a between-seed 95% interval.

Why seeds: one run per (size, speed) does not reproduce across machines (tiny-feasibility.md, "Second
look"): pretraining differs, so each replicate repeats everything from pretraining on, and the spread
between replicates is the noise that every per-size number must be judged against.

The interval is the t interval of the mean, mean +- t_{K-1, 0.975} * sd / sqrt(K), over the K seeds
that have the quantity. Token counts are averaged in log space (a geometric mean and a multiplicative
interval), because they are positive and their seed noise is multiplicative. With one seed the
interval is unavailable (nan, null in JSON). A quantity that is infinite for some seed (diverged, or
never recovered) has an infinite mean and no interval.
"""
from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np
from scipy import stats

from . import recovery
from .tokens_needed import INF, Bracket, ReplicateResult, SpeedChoices, SpeedResult

LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class Interval:
    """Mean over seeds and its between-seed interval (nan = unavailable)."""

    mean: float
    low: float
    high: float
    count: int  # seeds that had the quantity

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0


NONE = Interval(math.nan, math.nan, math.nan, 0)


def t_quantile(count: int) -> float:
    return float(stats.t.ppf(0.5 + LEVEL / 2.0, count - 1)) if count >= 2 else math.nan


def mean_interval(values) -> Interval:
    """Mean and t interval of the values that are not nan (nan = the seed lacks the quantity)."""
    v = np.array([x for x in values if x is not None and not math.isnan(x)], np.float64)
    if len(v) == 0:
        return NONE
    if not np.all(np.isfinite(v)):
        with np.errstate(invalid="ignore"):
            return Interval(float(np.mean(v)), math.nan, math.nan, len(v))
    mean = float(v.mean())
    if len(v) < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = t_quantile(len(v)) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return Interval(mean, mean - half, mean + half, len(v))


def log_mean_interval(values) -> Interval:
    """Geometric mean and multiplicative t interval of positive token counts (inf stays inf)."""
    v = [x for x in values if x is not None and not math.isnan(x)]
    if not v:
        return NONE
    if any(math.isinf(x) for x in v):
        return Interval(INF, math.nan, math.nan, len(v))
    if any(x <= 0 for x in v):
        return Interval(math.nan, math.nan, math.nan, len(v))
    if len(v) == 1:
        return Interval(float(v[0]), math.nan, math.nan, 1)  # exactly, not exp(log(x))
    m = mean_interval([math.log(x) for x in v])
    return Interval(math.exp(m.mean), math.exp(m.low) if m.count > 1 else math.nan,
                    math.exp(m.high) if m.count > 1 else math.nan, m.count)


def _mode(labels: list[str | None], order: list[str]) -> str | None:
    """The label most seeds chose; ties go to the one first in `order` (the fastest speed)."""
    counts = collections.Counter(x for x in labels if x is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(label for label in order if counts.get(label) == top)


@dataclasses.dataclass(frozen=True)
class SpeedSummary:
    """One speed of one size over its seeds."""

    label: str
    runs: list[SpeedResult]  # one per seed that ran this speed, in seed order
    t_delta: Bracket  # geometric means over seeds of each seed's estimate, low and high
    t_delta_seeds: Interval
    final_gap: Interval
    final_gap_full: Interval
    recovery_tokens: Interval
    g_inf: Interval
    tau: Interval

    @property
    def diverged(self) -> bool:
        """Diverged in some seed: the paper's notion then does not count the speed as trained."""
        return self.status == "diverged"

    @property
    def status(self) -> str:
        statuses = [r.status for r in self.runs]
        for worst in ("diverged", "failed", "preempted", "running", "missing"):
            if worst in statuses:
                return worst
        return statuses[0]


@dataclasses.dataclass(frozen=True)
class SizeResult(SpeedChoices):
    name: str
    n_params_nonembed: int
    n_params_total: int
    replicates: list[ReplicateResult]
    speeds: list[SpeedSummary]  # fastest first
    recovery_tokens: Interval  # per seed min over speeds of R; geometric mean over seeds
    recovery_lower_bound: float  # geometric mean over seeds of R, or of what an unresolved seed shows R exceeds
    recovery_speed: str | None  # the speed most seeds recover fastest with
    persistent_gap: Interval  # per seed g_inf of its recovery speed
    tokens_needed: Bracket  # T_delta: geometric means over seeds of the estimate and of the bracket ends
    tokens_needed_seeds: Interval  # the between-seed interval of T_delta
    best_speed: str | None
    final_gap: Interval
    final_gap_speed: str | None
    final_gap_full: Interval
    original_eval_loss: Interval
    zero_shot_eval_loss: Interval
    zero_shot_damage: Interval
    eval_spacing: float
    recovery_skipped: list[str]  # run files left out of the recovery measure

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.replicates]

    @property
    def order(self) -> list[str]:
        return [s.label for s in self.speeds]

    def _neighbour(self, step: int) -> str | None:
        if self.best_speed is None:
            return None
        i = self.order.index(self.best_speed) + step
        return self.order[i] if 0 <= i < len(self.order) else None

    @property
    def faster_neighbour(self) -> str | None:
        return self._neighbour(-1)

    @property
    def slower_neighbour(self) -> str | None:
        return self._neighbour(+1)



def _speed_summary(label: str, runs: list[SpeedResult]) -> SpeedSummary:
    fits = [r.recovery for r in runs]
    return SpeedSummary(
        label=label,
        runs=runs,
        t_delta=Bracket(*(log_mean_interval([getattr(r.t_delta, k) for r in runs]).mean
                          for k in ("estimate", "low", "high"))),
        t_delta_seeds=log_mean_interval([r.t_delta.estimate for r in runs]),
        final_gap=mean_interval([r.final_gap for r in runs]),
        final_gap_full=mean_interval([r.final_gap_full for r in runs]),
        recovery_tokens=log_mean_interval([f.recovery_tokens for f in fits if f.status != recovery.SKIPPED]),
        g_inf=mean_interval([f.g_inf for f in fits if f.status != recovery.SKIPPED]),
        tau=log_mean_interval([f.tau for f in fits if f.status in (recovery.FITTED, recovery.FAST)]),
    )


def _every_seed(values: list[float], log: bool) -> Interval:
    """Mean over seeds of a quantity every seed must have (a recovery result): nan for any seed -> none."""
    if not values or any(math.isnan(v) for v in values):
        return NONE
    return log_mean_interval(values) if log else mean_interval(values)


def _geometric_mean(values: list[float]) -> float:
    if not values:
        return math.nan
    if any(math.isinf(v) for v in values):
        return INF
    if len(values) == 1:
        return float(values[0])
    if any(v <= 0 for v in values):
        return float(np.mean(values))  # a bracket starting at 0 tokens: no log
    return math.exp(float(np.mean(np.log(values))))


def _per_seed(reps: list[ReplicateResult], size_level: float | None, attr: str) -> Interval:
    values = [getattr(r, attr) for r in reps]
    present = [v for v in values if v is not None]
    if present:
        return mean_interval(present)
    return Interval(size_level, math.nan, math.nan, 0) if size_level is not None else NONE


def size_result(reps: list[ReplicateResult], original: float | None = None,
                zero_shot: float | None = None) -> SizeResult:
    """Aggregate the seeds of one size. original/zero_shot: study.json's per-size values, used when the
    seeds have none of their own."""
    first = reps[0]
    order = []
    for rep in reps:
        order += [s.label for s in rep.speeds if s.label not in order]
    speeds = [_speed_summary(label, [s for rep in reps for s in rep.speeds if s.label == label]) for label in order]
    fits = [rep.recovery_fit for rep in reps]
    measured = all(f is not None for f in fits)
    needed = [rep.tokens_needed for rep in reps]
    damages = [r.zero_shot_damage for r in reps if r.zero_shot_damage is not None]
    if not damages and original is not None and zero_shot is not None:
        damage = Interval(zero_shot - original, math.nan, math.nan, 0)
    else:
        damage = mean_interval(damages)
    skipped = [s.path for rep in reps for s in rep.speeds if s.recovery.status == recovery.SKIPPED]
    return SizeResult(
        name=first.name,
        n_params_nonembed=first.n_params_nonembed,
        n_params_total=first.n_params_total,
        replicates=reps,
        speeds=speeds,
        recovery_tokens=_every_seed([f.recovery_tokens for f in fits] if measured else [], log=True),
        recovery_lower_bound=_geometric_mean([r.recovery_lower_bound for r in reps]) if measured else math.nan,
        recovery_speed=_mode([rep.recovery_speed for rep in reps], order),
        persistent_gap=_every_seed([f.g_inf for f in fits] if measured else [], log=False),
        tokens_needed=Bracket(_geometric_mean([b.estimate for b in needed]), _geometric_mean([b.low for b in needed]),
                              _geometric_mean([b.high for b in needed])),
        tokens_needed_seeds=log_mean_interval([b.estimate for b in needed]),
        best_speed=_mode([rep.best_speed for rep in reps], order) if all(r.best_speed for r in reps) else None,
        final_gap=mean_interval([rep.final_gap for rep in reps]),
        final_gap_speed=_mode([rep.final_gap_speed for rep in reps], order),
        final_gap_full=mean_interval([rep.final_gap_full for rep in reps]),
        original_eval_loss=_per_seed(reps, original, "original_eval_loss"),
        zero_shot_eval_loss=_per_seed(reps, zero_shot, "zero_shot_eval_loss"),
        zero_shot_damage=damage,
        eval_spacing=float(np.median([r.eval_spacing for r in reps])),
        recovery_skipped=skipped,
    )
