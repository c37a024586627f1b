"""The power-law fit and its bootstrap interval, on numbers made up here (no logs)."""
import math

import numpy as np

import synthetic_study  # noqa: F401  (puts the repository on sys.path)
from analysis.scaling_fit import fit_power_law

N = [100_000, 300_000, 1_000_000, 3_000_000]
NAMES = ["S1", "S2", "S3", "S4"]


def _fit(tokens, rel_halfwidth=0.02, seed=0, bootstrap=4000, names=NAMES, n=N, excluded=None):
    tokens = np.asarray(tokens, np.float64)
    return fit_power_law(list(names), list(n), list(tokens), list(tokens * (1 - rel_halfwidth)),
                         list(tokens * (1 + rel_halfwidth)), bootstrap, seed, excluded_bounds=excluded)


def test_exact_power_law_gives_its_exponent_and_prefactor():
    for b in (0.5, 1.3):
        fit = _fit([7.0 * x**b for x in N])
        print(f"b planted {b}: fitted {fit.exponent:.12f} (error {abs(fit.exponent - b):.2g}), "
              f"CI [{fit.ci_low:.4f}, {fit.ci_high:.4f}], a = {fit.prefactor:.6f}")
        assert abs(fit.exponent - b) < 1e-9 and abs(fit.prefactor - 7.0) < 1e-6
        assert fit.ci_low < b < fit.ci_high
        assert fit.verdict == ("sublinear" if b < 1 else "superlinear")


def test_interval_straddling_one_is_undetermined():
    scatter = np.exp([0.3, -0.3, 0.3, -0.3])
    fit = _fit([x**1.0 * s for x, s in zip(N, scatter)])
    print(f"noisy b = 1: CI [{fit.ci_low:.3f}, {fit.ci_high:.3f}] -> {fit.verdict}")
    assert fit.ci_low < 1.0 < fit.ci_high and fit.verdict == "undetermined"


def test_the_same_seed_gives_the_same_interval_and_another_seed_a_close_one():
    tokens = [x**0.6 * s for x, s in zip(N, np.exp([0.05, -0.04, 0.03, -0.02]))]
    a, b, c = _fit(tokens, seed=3), _fit(tokens, seed=3), _fit(tokens, seed=4)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert np.array_equal(a.draw_slopes, b.draw_slopes)
    print(f"seed 3 CI [{a.ci_low:.4f}, {a.ci_high:.4f}], seed 4 [{c.ci_low:.4f}, {c.ci_high:.4f}]")
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    assert abs(a.ci_low - c.ci_low) < 0.05 and abs(a.ci_high - c.ci_high) < 0.05


def test_interval_covers_the_true_exponent_about_as_often_as_it_claims():
    # Four sizes with log-normal scatter (sd 0.15) about a * N^0.7 and narrow brackets. Resampling
    # the four residuals (even inflated by sqrt(n/(n-2))) covers about 81% here; the t-based
    # replicate error should give about 95%.
    rng = np.random.default_rng(123)
    trials, covered = 300, 0
    for k in range(trials):
        tokens = [x**0.7 * math.exp(e) for x, e in zip(N, rng.normal(0.0, 0.15, 4))]
        fit = _fit(tokens, rel_halfwidth=0.005, seed=k, bootstrap=2000)
        covered += fit.ci_low <= 0.7 <= fit.ci_high
    rate = covered / trials
    print(f"coverage of the 95% interval over {trials} simulated studies: {rate:.3f}")
    assert 0.90 <= rate <= 0.99


def test_two_sizes_fit_but_give_no_verdict():
    fit = _fit([x**0.5 for x in N[:2]], names=NAMES[:2], n=N[:2])
    assert abs(fit.exponent - 0.5) < 1e-9 and fit.ci_low <= 0.5 <= fit.ci_high
    assert fit.verdict == "undetermined" and "2 sizes" in fit.verdict_reason


def test_one_size_gives_no_fit():
    fit = _fit([1e5], names=NAMES[:1], n=N[:1])
    assert fit.exponent is None and fit.verdict == "undetermined"


def test_a_size_left_out_above_the_band_overturns_the_verdict():
    tokens = [x**0.5 for x in N[:3]]
    consistent = _fit(tokens, names=NAMES[:3], n=N[:3], excluded={"S4": (N[3], 0.5 * N[3]**0.5)})
    print(f"3 sizes: b = {consistent.exponent:.3f} [{consistent.ci_low:.3f}, {consistent.ci_high:.3f}]")
    assert consistent.verdict == "sublinear" and "consistent" in consistent.verdict_reason
    contradicted = _fit(tokens, names=NAMES[:3], n=N[:3], excluded={"S4": (N[3], 1e3 * N[3]**0.5)})
    assert contradicted.verdict == "undetermined" and "S4" in contradicted.verdict_reason
    diverged = _fit(tokens, names=NAMES[:3], n=N[:3], excluded={"S4": (N[3], math.inf)})
    assert diverged.verdict == "undetermined" and "diverged" in diverged.verdict_reason


def test_a_bracket_starting_at_zero_is_drawn_without_log_of_zero():
    fit = fit_power_law(NAMES, N, [2e3, 4e3, 8e3, 16e3], [0.0, 3e3, 7e3, 15e3], [2e3, 4e3, 8e3, 16e3], 1000, 0)
    assert np.all(np.isfinite(fit.draw_slopes))


def test_two_sizes_with_one_seed_and_no_bracket_give_no_interval():
    # R has no evaluation bracket: with two sizes and one seed each nothing can spread the draws.
    fit = fit_power_law(NAMES[:2], N[:2], [4e4, 8e4], [4e4, 8e4], [4e4, 8e4], 1000, 0, measure="recovery")
    assert fit.exponent is not None and fit.ci_low is None and fit.ci_high is None
    assert fit.verdict == "undetermined" and "no interval" in fit.verdict_reason


def test_with_seeds_the_fitted_line_goes_through_their_geometric_means():
    from analysis.scaling_fit import fit_power_law_seeds
    rng = np.random.default_rng(9)
    values = [list(x**0.6 * np.exp(rng.normal(0, 0.2, 3))) for x in N]
    fit = fit_power_law_seeds(NAMES, N, values, values, values, 4000, 0, measure="recovery")
    means = [float(np.exp(np.mean(np.log(v)))) for v in values]
    single = fit_power_law(NAMES, N, means, means, means, 4000, 0, measure="recovery")
    assert fit.exponent == single.exponent
    print(f"3 seeds: [{fit.ci_low:.3f}, {fit.ci_high:.3f}]; their means alone: [{single.ci_low:.3f}, "
          f"{single.ci_high:.3f}]")
    assert fit.ci_low < fit.exponent < fit.ci_high
