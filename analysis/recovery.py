"""The recovery fit of one removal run: gap(t) = g_inf + A * exp(-(t - t_free) / tau) on its LN-free
evaluations, the persistent gap g_inf and the recovery tokens R = t_free + tau * ln 10
(docs/tokens-needed.md, "Recovery").

Why a fit and not a threshold: the gap settles on a plateau (+0.04 to +0.11 nats on the tiny study)
that is close to any useful delta, so "first time within delta" is decided by the +-0.01-nat noise
of single evaluations. A least-squares curve through all the LN-free evaluations averages that noise
out; its decay constant and plateau are well determined where the threshold crossing is not.

How: for a fixed tau the model is linear in (g_inf, B), B the excess at the first LN-free evaluation,
so the sum of squares is profiled over tau (a log grid, then a bounded scalar refinement) with the
linear part solved exactly and B >= 0. That is the exact least-squares optimum, found without
starting points that could fail, and the same data always give the same fit. Standard errors come
from the Jacobian at the optimum (s^2 (J^T J)^-1).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.optimize import minimize_scalar

from .errors import AnalysisError

INF = math.inf
LN10 = math.log(10.0)
MIN_LN_FREE_EVALS = 6  # three parameters, so at least three degrees of freedom for the residual noise
TAU_LOW_FRACTION = 0.1  # tau below this fraction of the first LN-free evaluation interval is not resolved
AMPLITUDE_SIGNIFICANCE = 2.0  # an excess under this many standard errors is no visible decay
GRID = 241

# status: what the fit could tell. R is an estimate for "fitted", an upper bound for "flat" and
# "fast", and infinite (with a lower bound) for "slow" and "diverged".
FITTED, FLAT, FAST, SLOW, DIVERGED, SKIPPED = "fitted", "flat", "fast", "slow", "diverged", "skipped"


class TooFewEvaluations(AnalysisError):
    """A run with fewer LN-free evaluations than the fit needs (the message names the run and the count)."""

    def __init__(self, message: str, count: int):
        super().__init__(message)
        self.count = count


@dataclasses.dataclass(frozen=True)
class RecoveryFit:
    status: str
    n_points: int  # LN-free evaluations with a finite gap that were fitted
    t_free: float
    g_inf: float  # persistent gap (nan when unresolved, inf when diverged)
    g_inf_se: float
    amplitude: float  # A: the fitted excess extrapolated to t_free
    amplitude_se: float
    tau: float  # decay constant in tokens (nan when not resolved)
    tau_se: float
    recovery_tokens: float  # R; inf when the recovery was not seen
    recovery_tokens_se: float
    recovery_lower_bound: float  # R itself when resolved; else what the run shows R exceeds (last evaluation; inf)
    residual_sd: float  # sd of the evaluations about the fitted curve, nats
    message: str = ""
    t_first: float = math.nan  # the first LN-free evaluation
    excess_first: float = math.nan  # B: the fitted excess there (A would overflow for a very fast decay)

    def curve(self, tokens: np.ndarray) -> np.ndarray:
        """The fitted gap at the given token counts (nan before t_free or when there is no curve)."""
        t = np.asarray(tokens, np.float64)
        if self.status in (FITTED, FAST):
            with np.errstate(over="ignore"):
                values = self.g_inf + self.excess_first * np.exp(-(t - self.t_first) / self.tau)
        elif self.status == FLAT:
            values = np.full(t.shape, self.g_inf)
        else:
            return np.full(t.shape, np.nan)
        return np.where(t > self.t_free, values, np.nan)


def diverged_fit(t_free: float) -> RecoveryFit:
    nan = math.nan
    return RecoveryFit(DIVERGED, 0, t_free, INF, nan, nan, nan, nan, nan, INF, nan, INF, nan, "the run diverged")


def skipped_fit(t_free: float, n_points: int, message: str) -> RecoveryFit:
    nan = math.nan
    return RecoveryFit(SKIPPED, n_points, t_free, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, message)


def ln_free_points(tokens: np.ndarray, gap: np.ndarray, t_free: float) -> tuple[np.ndarray, np.ndarray]:
    """The evaluations of the LN-free model (after t_free) with a finite gap."""
    keep = (np.asarray(tokens) > t_free) & np.isfinite(gap)
    return np.asarray(tokens, np.float64)[keep], np.asarray(gap, np.float64)[keep]


def _linear_part(e: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row of the basis e: (g, B, sse) of y ~ g + B * e with B >= 0, exactly."""
    e_mean = e.mean(axis=1, keepdims=True)
    y_mean = float(y.mean())
    ec = e - e_mean
    yc = y - y_mean
    see = np.sum(ec * ec, axis=1)
    sey = ec @ yc
    syy = float(yc @ yc)
    with np.errstate(invalid="ignore", divide="ignore"):
        b = np.where((sey > 0) & (see > 0), sey / np.where(see > 0, see, 1.0), 0.0)
    sse = np.maximum(syy - b * sey, 0.0)
    g = y_mean - b * e_mean[:, 0]
    return g, b, sse


def _basis(x: np.ndarray, taus: np.ndarray) -> np.ndarray:
    return np.exp(-(x[None, :] - x[0]) / taus[:, None])


def _inverse(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x2 or 3x3 matrix by cofactors: exact enough here, and it avoids a LAPACK call whose
    thread start-up costs milliseconds per fit on a busy machine."""
    if m.shape == (2, 2):
        det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
        adj = np.array([[m[1, 1], -m[0, 1]], [-m[1, 0], m[0, 0]]])
    else:
        c0, c1, c2 = m[:, 0], m[:, 1], m[:, 2]
        adj = np.array([np.cross(c1, c2), np.cross(c2, c0), np.cross(c0, c1)])
        det = float(c0 @ adj[0])
    if det == 0.0 or not math.isfinite(det):
        return np.full(m.shape, math.nan)
    return adj / det


def _sd(variance: float) -> float:
    """sqrt of a variance; nan for one that round-off (or a singular Jacobian) left negative or nan."""
    return math.sqrt(variance) if variance >= 0 else math.nan


def _covariance(jacobian: np.ndarray, sse: float, n: int) -> np.ndarray:
    """s^2 (J^T J)^-1, s^2 = sse / (n - p)."""
    p = jacobian.shape[1]
    dof = n - p
    s2 = sse / dof if dof > 0 else math.nan
    return s2 * _inverse(jacobian.T @ jacobian)


def fit_recovery(tokens: np.ndarray, gap: np.ndarray, t_free: float, where: str = "run",
                 min_points: int = MIN_LN_FREE_EVALS) -> RecoveryFit:
    """Fit one run that did not diverge. tokens/gap: its compared evaluations (all of them; only those
    after t_free with a finite gap are used). Raises AnalysisError when fewer than min_points remain."""
    t, y = ln_free_points(tokens, gap, t_free)
    n = len(t)
    if n < min_points:
        raise TooFewEvaluations(f"{where}: {n} LN-free evaluation(s) with a finite gap after t_free = {t_free:.0f} "
                                f"tokens; the recovery fit needs at least {min_points}", n)
    x = t - t_free
    spacing = float(x[1] - x[0])
    tau_low = TAU_LOW_FRACTION * spacing
    tau_high = float(x[-1])  # a slower decay shows less than 1 - 1/e of itself within the run
    nan = math.nan
    if not tau_high > tau_low:
        raise AnalysisError(f"{where}: LN-free evaluations span too little to fit a decay")

    log_grid = np.linspace(math.log(tau_low), math.log(tau_high), GRID)
    sse_grid = _linear_part(_basis(x, np.exp(log_grid)), y)[2]
    best = int(np.argmin(sse_grid))

    def sse_at(log_tau: float) -> float:
        return float(_linear_part(_basis(x, np.array([math.exp(log_tau)])), y)[2][0])

    log_tau, sse = float(log_grid[best]), float(sse_grid[best])
    if 0 < best < GRID - 1:
        refined = minimize_scalar(sse_at, bounds=(log_grid[best - 1], log_grid[best + 1]), method="bounded",
                                  options={"xatol": 1e-7})
        if refined.fun <= sse:
            log_tau, sse = float(refined.x), float(refined.fun)
    tau = math.exp(log_tau)
    g, b, sse_arr = (v[0] for v in _linear_part(_basis(x, np.array([tau])), y))
    g, b, sse = float(g), float(b), float(sse_arr)

    flat_sd = float(np.std(y, ddof=1))
    flat = RecoveryFit(FLAT, n, t_free, float(y.mean()), flat_sd / math.sqrt(n), 0.0, nan, nan, nan,
                       float(t[0]), nan, float(t[0]), flat_sd,
                       "no decay visible: the excess was gone by the first LN-free evaluation", float(t[0]), 0.0)
    if b <= 0.0:
        return flat
    e = np.exp(-(x - x[0]) / tau)
    at_low, at_high = best == 0, best == GRID - 1
    if at_low or at_high:
        # tau at a bound: only (g_inf, B) are estimated, tau is fixed at the bound.
        jac = np.stack([np.ones(n), e], axis=1)
        cov = _covariance(jac, sse, n)
        residual_sd = math.sqrt(sse / (n - 2))
        if not b > AMPLITUDE_SIGNIFICANCE * _sd(cov[1, 1]):
            return flat
        if at_high:
            return RecoveryFit(SLOW, n, t_free, nan, nan, nan, nan, nan, nan, INF, nan, float(t[-1]), residual_sd,
                               f"decay slower than the run (tau at its bound of {tau_high:.0f} tokens): "
                               "the plateau and R lie beyond the last evaluation")
        # The excess seen at the first LN-free evaluation is gone by the second: R is at most that one.
        amplitude = b * math.exp(min(x[0] / tau, 700.0))
        return RecoveryFit(FAST, n, t_free, g, _sd(cov[0, 0]), amplitude, nan, tau, nan,
                           float(t[1]), nan, float(t[1]), residual_sd,
                           f"decay faster than the evaluations resolve (tau at its bound of {tau_low:.0f} tokens)",
                           float(t[0]), b)
    # Interior optimum: the full three-parameter covariance, in (g_inf, B, tau).
    jac = np.stack([np.ones(n), e, b * e * (x - x[0]) / tau**2], axis=1)
    cov = _covariance(jac, sse, n)
    residual_sd = math.sqrt(sse / (n - 3)) if n > 3 else nan
    if not b > AMPLITUDE_SIGNIFICANCE * _sd(cov[1, 1]):
        return flat
    amplitude = b * math.exp(min(x[0] / tau, 700.0))
    # A = B exp(x0/tau): dA/dB = A/B, dA/dtau = -A x0/tau^2.
    grad = np.array([0.0, amplitude / b, -amplitude * x[0] / tau**2])
    tau_se = _sd(cov[2, 2])
    return RecoveryFit(FITTED, n, t_free, g, _sd(cov[0, 0]), amplitude, _sd(float(grad @ cov @ grad)),
                       tau, tau_se, t_free + LN10 * tau, LN10 * tau_se, t_free + LN10 * tau, residual_sd, "",
                       float(t[0]), b)
