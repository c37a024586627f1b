"""The recovery fit gap(t) = g_inf + A exp(-(t - t_free)/tau) on hand-made gap curves."""
import math

import numpy as np
import pytest

import synthetic_study  # noqa: F401  (puts the repository on sys.path)
from analysis import recovery
from analysis.errors import AnalysisError
from analysis.recovery import LN10, MIN_LN_FREE_EVALS, fit_recovery

T_FREE = 20_480.0
TOKENS = np.arange(0, 200_001, 5_120, dtype=np.float64)


def planted(g_inf, amplitude, tau, tokens=TOKENS, t_free=T_FREE, noise=0.0, seed=0):
    gap = np.where(tokens > t_free, g_inf + amplitude * np.exp(-(tokens - t_free) / tau), 0.0)
    return tokens, gap + noise * np.random.default_rng(seed).standard_normal(len(tokens))


def test_a_clean_curve_gives_back_the_planted_plateau_and_decay():
    tokens, gap = planted(0.05, 0.30, 15_000.0)
    fit = fit_recovery(tokens, gap, T_FREE)
    print(f"g_inf {fit.g_inf:.8f} (0.05), tau {fit.tau:.3f} (15000), A {fit.amplitude:.6f} (0.3), "
          f"R {fit.recovery_tokens:.1f}")
    assert fit.status == recovery.FITTED
    assert fit.n_points == int(np.sum(tokens > T_FREE))
    assert fit.g_inf == pytest.approx(0.05, abs=1e-7)
    assert fit.tau == pytest.approx(15_000.0, rel=1e-5)
    assert fit.amplitude == pytest.approx(0.30, rel=1e-5)
    assert fit.recovery_tokens == pytest.approx(T_FREE + 15_000.0 * LN10, rel=1e-6)
    assert fit.residual_sd < 1e-6
    assert np.allclose(fit.curve(tokens[tokens > T_FREE]), gap[tokens > T_FREE], atol=1e-6)


def test_evaluations_before_t_free_and_non_finite_ones_are_not_fitted():
    tokens, gap = planted(0.05, 0.30, 15_000.0)
    gap = gap.copy()
    gap[tokens <= T_FREE] = 9.0  # still has LNs: must not count
    gap[10] = np.nan
    fit = fit_recovery(tokens, gap, T_FREE)
    assert fit.n_points == int(np.sum(tokens > T_FREE)) - 1
    assert fit.tau == pytest.approx(15_000.0, rel=1e-5)


def test_standard_errors_match_the_scatter_of_noisy_fits():
    # 0.01-nat evaluation noise, as on the tiny study: the fitted tau and g_inf should scatter about the
    # planted values by about their reported standard errors.
    z_tau, z_g = [], []
    for k in range(150):
        tokens, gap = planted(0.05, 0.15, 15_000.0, noise=0.01, seed=k)
        fit = fit_recovery(tokens, gap, T_FREE)
        assert fit.status == recovery.FITTED
        z_tau.append((fit.tau - 15_000.0) / fit.tau_se)
        z_g.append((fit.g_inf - 0.05) / fit.g_inf_se)
    cover_tau = np.mean(np.abs(z_tau) < 2.0)
    cover_g = np.mean(np.abs(z_g) < 2.0)
    print(f"|error| < 2 se: tau {cover_tau:.3f}, g_inf {cover_g:.3f}; sd of z: tau {np.std(z_tau):.2f}, "
          f"g_inf {np.std(z_g):.2f}")
    assert 0.88 <= cover_tau <= 0.995 and 0.88 <= cover_g <= 0.995


def test_too_few_ln_free_evaluations_are_refused_with_the_run_and_the_count():
    tokens = np.array([10_240, 20_480, 30_720, 40_960, 51_200, 61_440, 71_680], np.float64)
    _, gap = planted(0.05, 0.3, 15_000.0, tokens=tokens, t_free=10_240.0)
    with pytest.raises(AnalysisError) as caught:
        fit_recovery(tokens, gap, 30_720.0, "runs/S1/seed-3/speed-g8/run.h5")
    message = str(caught.value)
    print(message)
    assert "runs/S1/seed-3/speed-g8/run.h5" in message and "4 LN-free evaluation(s)" in message
    assert f"at least {MIN_LN_FREE_EVALS}" in message
    assert caught.value.count == 4
    assert fit_recovery(tokens, gap, 10_240.0).status == recovery.FITTED  # six after this t_free: enough
    assert MIN_LN_FREE_EVALS == 6


def test_a_flat_curve_has_no_decay_and_recovered_by_its_first_ln_free_evaluation():
    tokens = TOKENS
    gap = np.where(tokens > T_FREE, 0.04, 0.0) + 0.01 * np.random.default_rng(5).standard_normal(len(tokens))
    fit = fit_recovery(tokens, gap, T_FREE)
    free = tokens > T_FREE
    assert fit.status == recovery.FLAT
    assert fit.recovery_tokens == tokens[free][0]
    assert fit.g_inf == pytest.approx(float(np.mean(gap[free])))
    assert math.isnan(fit.tau)


def test_a_rising_gap_is_no_recovery_either():
    tokens = TOKENS
    gap = np.where(tokens > T_FREE, 0.02 + 0.1 * (1 - np.exp(-(tokens - T_FREE) / 30_000.0)), 0.0)
    assert fit_recovery(tokens, gap, T_FREE).status == recovery.FLAT


def test_a_decay_slower_than_the_run_leaves_r_unresolved_above_the_last_evaluation():
    tokens, gap = planted(0.05, 0.30, 2_000_000.0)  # almost a straight line over the run
    fit = fit_recovery(tokens, gap, T_FREE)
    print(fit.message)
    assert fit.status == recovery.SLOW
    assert math.isinf(fit.recovery_tokens) and fit.recovery_lower_bound == tokens[-1]
    assert math.isnan(fit.g_inf)


def test_a_decay_faster_than_the_evaluations_is_bounded_by_the_second_ln_free_evaluation():
    tokens = np.concatenate([[0.0, T_FREE + 500.0], T_FREE + np.arange(1, 30) * 5_120.0])
    _, gap = planted(0.05, 0.5, 150.0, tokens=tokens)
    fit = fit_recovery(tokens, gap, T_FREE)
    print(fit.message)
    assert fit.status == recovery.FAST
    assert fit.recovery_tokens == tokens[2]  # the excess seen at the first LN-free evaluation is gone here
    assert fit.g_inf == pytest.approx(0.05, abs=1e-6)


def test_the_same_data_give_the_same_fit():
    tokens, gap = planted(0.07, 0.2, 9_000.0, noise=0.01, seed=3)
    a, b = fit_recovery(tokens, gap, T_FREE), fit_recovery(tokens, gap, T_FREE)
    assert a == b
