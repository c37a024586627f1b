"""Is delta far enough above every size's plateau for T_delta to mean something? (docs/tokens-needed.md,
"delta sanity").

T_delta is the last time the gap crosses delta. When the plateau the gap settles on (the persistent
gap g_inf) lies within noise of delta, single evaluations flicker across delta for as long as the run
lasts and their noise decides T_delta: on the second-machine tiny study (delta = 0.1, plateaus +0.04
to +0.11) two sizes ran along the delta line for 100k tokens. So T_delta counts as well posed only
when, for every size,

    delta - mean g_inf > noise,   noise = max(between-seed half-width of mean g_inf, 2 * s_eval),

where the half-width is the 95% t interval over the seeds (replicates.py) and s_eval is the
evaluation noise: the root mean square, over the size's seeds, of the residual sd about the recovery
fit that gives each seed its persistent gap. With one seed the half-width is unavailable and
2 * s_eval is the floor; it cannot see seed-to-seed differences, so a single-seed study that passes
is only not refuted.
"""
from __future__ import annotations

import dataclasses
import math

from .replicates import SizeResult

EVAL_NOISE_FACTOR = 2.0


@dataclasses.dataclass(frozen=True)
class SizeCheck:
    name: str
    persistent_gap: float
    seed_half_width: float  # nan with one seed
    eval_noise: float  # s_eval
    noise: float
    margin: float  # delta - persistent gap
    clear: bool
    reason: str
    short: str  # the reason in a few words, for the printed table's T_delta column


@dataclasses.dataclass(frozen=True)
class DeltaCheck:
    delta: float
    sizes: list[SizeCheck]

    @property
    def ill_posed(self) -> bool:
        return not all(s.clear for s in self.sizes)

    def text(self) -> str:
        """One sentence for the printed table."""
        bad = [s for s in self.sizes if not s.clear]
        if not bad:
            return (f"delta = {self.delta:g} clears every size's persistent gap by more than its noise: "
                    "T_delta is well posed")
        return (f"T_delta is ILL-POSED at delta = {self.delta:g}: " + "; ".join(f"{s.name}: {s.reason}" for s in bad)
                + ". T_delta and its exponent then do not measure the recovery: read R")


def _eval_noise(size: SizeResult) -> float:
    sds = [rep.recovery_fit.residual_sd for rep in size.replicates if rep.recovery_fit is not None]
    sds = [s for s in sds if math.isfinite(s)]
    return math.sqrt(sum(s * s for s in sds) / len(sds)) if sds else math.nan


def check_delta(sizes: list[SizeResult], delta: float) -> DeltaCheck:
    checks = []
    for size in sizes:
        gap = size.persistent_gap
        half = gap.half_width if gap.count >= 2 else math.nan
        eval_noise = _eval_noise(size)
        parts = [v for v in (half, EVAL_NOISE_FACTOR * eval_noise) if math.isfinite(v)]
        noise = max(parts) if parts else math.nan
        margin = delta - gap.mean
        if math.isnan(gap.mean):
            clear, reason, short = False, "its persistent gap is not resolved", "g_inf unresolved"
        elif math.isinf(gap.mean):
            clear, reason, short = False, "it diverged", "diverged"
        elif not math.isfinite(noise):
            clear, reason, short = False, "its noise is unknown", "noise unknown"
        else:
            clear = margin > noise
            reason = (f"delta - g_inf = {margin:+.4f} {'>' if clear else '<='} noise {noise:.4f} "
                      f"(g_inf = {gap.mean:+.4f})")
            short = "g_inf within noise of delta"
        checks.append(SizeCheck(size.name, gap.mean, half, eval_noise, noise, margin, clear, reason, short))
    return DeltaCheck(delta, checks)
