"""The power law tokens = a * N^b: least squares in log space, a seeded bootstrap interval on b, a verdict.

Each size has one or more seeds; its point is the mean over its seeds of log tokens. Bootstrap
(docs/tokens-needed.md, "Confidence interval"): each replicate
 1. resamples every size's seeds with replacement (the seed noise), and draws each chosen seed's
    tokens log-uniformly within its bracket (the evaluation resolution; R has no bracket),
 2. fits the line to the resampled size means, and
 3. adds the scatter of the sizes about the power law: a bivariate normal in (slope, centred
    intercept) whose variance is the fit's residual variance drawn from its chi-square with n - 2
    degrees of freedom, less the part of it that the seed noise already explains (the pooled
    between-seed variance of log tokens over K, itself drawn from its chi-square), floored at 0.
With one seed per size, step 1 draws the bracket only and step 3 is the bivariate Student t with
n - 2 degrees of freedom scaled by each replicate's own residual error, as before seeds existed.
Step 3 stands in for residual resampling: with four sizes there are four residuals to resample, and
the resampled slope spreads like a normal with the residual standard error, about half as wide as
the t interval with 2 degrees of freedom that the same residuals justify (t_0.975 = 4.30, not 1.96).
Subtracting the seed part in step 3 keeps the seed noise from counting twice: the residuals of the
size means contain it, and step 1 already draws it.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

LEVEL = 0.95
# How the reasons name a size that has the measured quantity, and one left out because it has not.
WORDING = {
    "t_delta": {"reached": "came within delta", "not_reached": "was not within delta after",
                "left_out": "never within delta"},
    "recovery": {"reached": "had a finite recovery R", "not_reached": "had not recovered after",
                 "left_out": "not recovered"},
}


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """tokens = prefactor * N^exponent; the draws give the band around the line."""

    n_label: str  # which parameter count N is
    sizes_used: list[str]
    sizes_excluded: list[str]  # never within delta (or not recovered): only bounded below
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


def _draw_seed_means(rng: np.random.Generator, lows: list[np.ndarray], highs: list[np.ndarray],
                     count: int) -> np.ndarray:
    """[count, sizes] mean log tokens over each size's seeds resampled with replacement, each chosen
    seed drawn within its bracket."""
    out = np.empty((count, len(lows)))
    for j, (low, high) in enumerate(zip(lows, highs)):
        k = len(low)
        if k == 1:
            out[:, j] = _draw_within_brackets(rng, low, high, count)[:, 0]
            continue
        pick = rng.integers(0, k, (count, k))
        u = rng.random((count, k))
        lo, hi = low[pick], high[pick]
        positive = lo > 0
        safe_low = np.where(positive, lo, 1.0)
        logs = np.log(safe_low) + u * (np.log(hi) - np.log(safe_low))
        linear = np.log(np.maximum(lo + u * (hi - lo), 1.0))
        out[:, j] = np.where(positive, logs, linear).mean(axis=1)
    return out


def fit_power_law(names: list[str], n_params: list[int], estimate: list[float], low: list[float],
                  high: list[float], bootstrap: int, seed: int, n_label: str = "non-embedding parameters",
                  excluded_bounds: dict[str, tuple[int, float]] | None = None, measure: str = "t_delta") -> PowerLawFit:
    """One value per size: fit_power_law_seeds with a single seed each."""
    return fit_power_law_seeds(names, n_params, [[v] for v in estimate], [[v] for v in low], [[v] for v in high],
                               bootstrap, seed, n_label, excluded_bounds, measure)


def fit_power_law_seeds(names: list[str], n_params: list[int], estimates: list[list[float]],
                        lows: list[list[float]], highs: list[list[float]], bootstrap: int, seed: int,
                        n_label: str = "non-embedding parameters",
                        excluded_bounds: dict[str, tuple[int, float]] | None = None,
                        measure: str = "t_delta") -> PowerLawFit:
    """Fit the sizes given, each with its seeds' finite estimates and brackets (low = high = estimate for a
    quantity without a bracket); excluded_bounds maps each size left out to (N, lower bound on its tokens).
    measure ("t_delta" or "recovery") only words the reasons."""
    words = WORDING[measure]
    excluded_bounds = excluded_bounds or {}
    n_used = len(names)
    empty = np.zeros(0)
    if n_used < 2:
        return PowerLawFit(n_label, list(names), sorted(excluded_bounds), None, None, None, None, "undetermined",
                           f"{n_used} size(s) {words['reached']}; a power law needs at least 2", bootstrap, seed,
                           math.nan, empty, empty)
    x = np.log(np.asarray(n_params, dtype=np.float64))
    x_mean = float(x.mean())
    xc = x - x_mean
    sxx = float(np.sum(xc * xc))
    if sxx == 0.0:
        return PowerLawFit(n_label, list(names), sorted(excluded_bounds), None, None, None, None, "undetermined",
                           "every size has the same parameter count", bootstrap, seed, x_mean, empty, empty)
    logs = [np.log(np.asarray(e, dtype=np.float64)) for e in estimates]
    y_point = np.array([v.mean() for v in logs])
    slope, intercept, point_variance = _least_squares(xc, y_point[None, :])
    exponent = float(slope[0])
    prefactor = float(np.exp(intercept[0] - exponent * x_mean))

    rng = np.random.default_rng(seed)
    lows_a = [np.asarray(v, np.float64) for v in lows]
    highs_a = [np.asarray(v, np.float64) for v in highs]
    seeds_per_size = np.array([len(v) for v in logs])
    if np.all(seeds_per_size == 1):
        y = _draw_within_brackets(rng, np.concatenate(lows_a), np.concatenate(highs_a), bootstrap)
    else:
        y = _draw_seed_means(rng, lows_a, highs_a, bootstrap)
    slopes, intercepts, variance = _least_squares(xc, y)
    dof = n_used - 2
    if dof > 0:
        # One chi-square scale shared by slope and centred intercept (uncorrelated under least squares).
        scale = np.sqrt(dof / rng.chisquare(dof, bootstrap))
        seed_dof = int(np.sum(seeds_per_size - 1))
        if seed_dof == 0:
            # One seed per size: the bivariate t scaled by each replicate's own residual error.
            sd = np.sqrt(variance)
            z = rng.standard_normal((bootstrap, 2))
            slopes = slopes + scale * z[:, 0] * sd / math.sqrt(sxx)
            intercepts = intercepts + scale * z[:, 1] * sd / math.sqrt(n_used)
        else:
            # The residual variance of the size means, drawn, less the seed noise in them (pooled
            # between-seed variance of log tokens, drawn, over K; on the slope weighted by xc^2).
            total = point_variance[0] * scale**2
            pooled = float(sum(np.sum((v - v.mean()) ** 2) for v in logs)) / seed_dof
            seed_var = pooled * seed_dof / rng.chisquare(seed_dof, bootstrap)
            slope_seed = seed_var * float(np.sum(xc * xc / seeds_per_size)) / sxx
            intercept_seed = seed_var * float(np.mean(1.0 / seeds_per_size))
            z = rng.standard_normal((bootstrap, 2))
            slopes = slopes + z[:, 0] * np.sqrt(np.maximum(total - slope_seed, 0.0)) / math.sqrt(sxx)
            intercepts = intercepts + z[:, 1] * np.sqrt(np.maximum(total - intercept_seed, 0.0)) / math.sqrt(n_used)
    tail = (1.0 - LEVEL) / 2.0
    ci_low, ci_high = (float(v) for v in np.quantile(slopes, [tail, 1.0 - tail]))
    if dof == 0 and ci_low == ci_high:
        # Two sizes, one seed each, no bracket: nothing to draw an interval from.
        return PowerLawFit(n_label, list(names), sorted(excluded_bounds), exponent, prefactor, None, None,
                           "undetermined", f"only 2 sizes {words['reached']}, one seed each: no interval can be "
                           "estimated", bootstrap, seed, x_mean, slopes, intercepts)

    if ci_high < 1.0:
        verdict, reason = "sublinear", f"the {LEVEL:.0%} interval lies below 1"
        if ci_low <= 0.0:
            reason += " and contains 0 (no growth with N is not excluded)"
    elif ci_low > 1.0:
        verdict, reason = "superlinear", f"the {LEVEL:.0%} interval lies above 1"
    else:
        verdict, reason = "undetermined", f"the {LEVEL:.0%} interval contains 1"
    if dof == 0:
        verdict = "undetermined"
        reason = (f"only 2 sizes {words['reached']}: the interval shows the seed noise and evaluation resolution "
                  "only, the scatter about the power law cannot be estimated")
    fit = PowerLawFit(n_label, list(names), sorted(excluded_bounds), exponent, prefactor, ci_low, ci_high, verdict,
                      reason, bootstrap, seed, x_mean, slopes, intercepts)
    # A size that never came within delta needs more tokens than it had. If that is above the fit's band,
    # the sizes left out contradict the line fitted without them, and no verdict is trusted.
    for name in sorted(excluded_bounds):
        n, bound = excluded_bounds[name]
        _, upper = fit.band(np.array([n]))
        if bound > upper[0]:
            what = (f"every speed of size {name} diverged" if math.isinf(bound) else
                    f"size {name} {words['not_reached']} {bound:.4g} tokens, above the fit's {LEVEL:.0%} "
                    f"band there ({upper[0]:.4g})")
            return dataclasses.replace(fit, verdict="undetermined",
                                       verdict_reason=what + ": a size left out of the fit contradicts it")
    if excluded_bounds:
        fit = dataclasses.replace(fit, verdict_reason=fit.verdict_reason + f"; sizes {words['left_out']} ("
                                  + ", ".join(sorted(excluded_bounds)) + ") are consistent with the fit's band")
    return fit
