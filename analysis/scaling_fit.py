"""The power law tokens = a * N^b: least squares in log space, a seeded bootstrap interval on b, a verdict.

Bootstrap (docs/tokens-needed.md, "Confidence interval"): each replicate
 1. draws every size's tokens needed log-uniformly within its bracket (the evaluation resolution),
 2. fits the line to those draws, and
 3. adds the sampling error of that fit: a draw from the bivariate Student t with n - 2 degrees of
    freedom and the fit's own least-squares covariance (the scatter of the sizes about the line).
Step 3 stands in for residual resampling: with four sizes there are four residuals to resample, and
the resampled slope spreads like a normal with the residual standard error, about half as wide as
the t interval with 2 degrees of freedom that the same residuals justify (t_0.975 = 4.30, not 1.96).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """tokens = prefactor * N^exponent; the draws give the band around the line."""

    n_label: str  # which parameter count N is
    sizes_used: list[str]
    sizes_excluded: list[str]  # never within delta: tokens needed is only bounded below
    exponent: float | None
    prefactor: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str  # sublinear | superlinear | undetermined
    verdict_reason: str
    bootstrap: int
    seed: int
    x_mean: float  # mean log N of the sizes used; the draws' intercepts are at this point
    draw_slopes: np.ndarray
    draw_intercepts: np.ndarray

    def band(self, n_params: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise interval of the fitted tokens at the given N, from the bootstrap draws."""
        x = np.log(np.asarray(n_params, dtype=np.float64)) - self.x_mean
        lines = self.draw_intercepts[:, None] + self.draw_slopes[:, None] * x[None, :]
        tail = (1.0 - level) / 2.0
        return np.exp(np.quantile(lines, tail, axis=0)), np.exp(np.quantile(lines, 1.0 - tail, axis=0))


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope, intercept at mean(x), and residual variance for each row of y (x shared and centred)."""
    sxx = float(np.sum(x * x))
    slope = y @ x / sxx
    intercept = y.mean(axis=1)
    residuals = y - intercept[:, None] - slope[:, None] * x[None, :]
    dof = len(x) - 2
    variance = np.sum(residuals**2, axis=1) / dof if dof > 0 else np.zeros(len(y))
    return slope, intercept, variance


def _draw_within_brackets(rng: np.random.Generator, low: np.ndarray, high: np.ndarray, count: int) -> np.ndarray:
    """log tokens, uniform in log between low and high (uniform in tokens where low is 0)."""
    u = rng.random((count, len(low)))
    positive = low > 0
    safe_low = np.where(positive, low, 1.0)
    logs = np.log(safe_low) + u * (np.log(high) - np.log(safe_low))
    linear = np.log(np.maximum(low + u * (high - low), 1.0))
    return np.where(positive[None, :], logs, linear)


def fit_power_law(names: list[str], n_params: list[int], estimate: list[float], low: list[float],
                  high: list[float], bootstrap: int, seed: int, n_label: str = "non-embedding parameters",
                  excluded_bounds: dict[str, tuple[int, float]] | None = None) -> PowerLawFit:
    """Fit the sizes with a finite estimate; excluded_bounds maps each other size to (N, tokens-needed lower bound)."""
    excluded_bounds = excluded_bounds or {}
    n_used = len(names)
    empty = np.zeros(0)
    if n_used < 2:
        return PowerLawFit(n_label, list(names), sorted(excluded_bounds), None, None, None, None, "undetermined",
                           f"{n_used} size(s) came within delta; a power law needs at least 2", bootstrap, seed,
                           math.nan, empty, empty)
    x = np.log(np.asarray(n_params, dtype=np.float64))
    x_mean = float(x.mean())
    xc = x - x_mean
    if float(np.sum(xc * xc)) == 0.0:
        return PowerLawFit(n_label, list(names), sorted(excluded_bounds), None, None, None, None, "undetermined",
                           "every size has the same parameter count", bootstrap, seed, x_mean, empty, empty)
    slope, intercept, _ = _least_squares(xc, np.log(np.asarray(estimate, dtype=np.float64))[None, :])
    exponent = float(slope[0])
    prefactor = float(np.exp(intercept[0] - exponent * x_mean))

    rng = np.random.default_rng(seed)
    y = _draw_within_brackets(rng, np.asarray(low, np.float64), np.asarray(high, np.float64), bootstrap)
    slopes, intercepts, variance = _least_squares(xc, y)
    dof = n_used - 2
    if dof > 0:
        # Bivariate t: one chi-square scale shared by both normals (slope and the centred intercept are
        # uncorrelated under least squares).
        scale = np.sqrt(dof / rng.chisquare(dof, bootstrap))
        z = rng.standard_normal((bootstrap, 2))
        sd = np.sqrt(variance)
        slopes = slopes + scale * z[:, 0] * sd / math.sqrt(float(np.sum(xc * xc)))
        intercepts = intercepts + scale * z[:, 1] * sd / math.sqrt(n_used)
    tail = (1.0 - LEVEL) / 2.0
    ci_low, ci_high = (float(v) for v in np.quantile(slopes, [tail, 1.0 - tail]))

    if ci_high < 1.0:
        verdict, reason = "sublinear", f"the {LEVEL:.0%} interval lies below 1"
    elif ci_low > 1.0:
        verdict, reason = "superlinear", f"the {LEVEL:.0%} interval lies above 1"
    else:
        verdict, reason = "undetermined", f"the {LEVEL:.0%} interval contains 1"
    if dof == 0:
        verdict = "undetermined"
        reason = ("only 2 sizes came within delta: the interval shows the evaluation resolution only, the "
                  "scatter about the power law cannot be estimated")
    fit = PowerLawFit(n_label, list(names), sorted(excluded_bounds), exponent, prefactor, ci_low, ci_high, verdict,
                      reason, bootstrap, seed, x_mean, slopes, intercepts)
    # A size that never came within delta needs more tokens than it had. If that is above the fit's band,
    # the sizes left out contradict the line fitted without them, and no verdict is trusted.
    for name in sorted(excluded_bounds):
        n, bound = excluded_bounds[name]
        _, upper = fit.band(np.array([n]))
        if bound > upper[0]:
            what = (f"every speed of size {name} diverged" if math.isinf(bound) else
                    f"size {name} was not within delta after {bound:.4g} tokens, above the fit's {LEVEL:.0%} "
                    f"band there ({upper[0]:.4g})")
            return dataclasses.replace(fit, verdict="undetermined",
                                       verdict_reason=what + ": a size left out of the fit contradicts it")
    if excluded_bounds:
        fit = dataclasses.replace(fit, verdict_reason=fit.verdict_reason + "; sizes never within delta ("
                                  + ", ".join(sorted(excluded_bounds)) + ") are consistent with the fit's band")
    return fit
