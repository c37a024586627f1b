"""The mean over seeds and its between-seed interval; the delta sanity rule on synthetic studies."""
import math

import numpy as np
import pytest
from scipy import stats

import synthetic_study as syn
from analysis.__main__ import results
from analysis.delta_sanity import check_delta
from analysis.replicates import log_mean_interval, mean_interval
from analysis.study import read_study


def test_the_interval_is_the_t_interval_of_the_mean():
    values = [0.05, 0.07, 0.06, 0.09]
    got = mean_interval(values)
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2.0
    assert got.mean == pytest.approx(0.0675) and got.count == 4
    assert (got.low, got.high) == pytest.approx((0.0675 - half, 0.0675 + half))


def test_one_seed_has_no_interval_and_missing_seeds_do_not_count():
    one = mean_interval([0.05])
    assert one.mean == 0.05 and math.isnan(one.low) and math.isnan(one.high) and one.count == 1
    assert mean_interval([0.05, math.nan, 0.07]).count == 2
    assert math.isnan(mean_interval([]).mean)


def test_token_counts_are_averaged_in_log_space_and_infinity_has_no_interval():
    got = log_mean_interval([40_000.0, 90_000.0])
    assert got.mean == pytest.approx(60_000.0)
    assert got.low * got.high == pytest.approx(60_000.0**2)
    never = log_mean_interval([40_000.0, math.inf])
    assert math.isinf(never.mean) and math.isnan(never.low)


def _sizes(tmp_path, floor, seeds, delta=0.1):
    root = str(tmp_path)
    sizes = syn.power_law_sizes(0.5, t_smallest=30_000)
    syn.make_study(root, sizes, delta=delta, seeds=seeds, seed_scatter=0.1, plateau_scatter=0.004 if seeds else 0.0,
                   eval_noise=0.01, floor=floor, speeds=[syn.SpeedSpec("g0", 0)], budget_tokens=60_000)
    return results(read_study(root), delta)


@pytest.mark.parametrize("seeds", [None, [0, 1, 2]])
def test_a_delta_well_above_every_plateau_is_not_flagged(tmp_path, seeds):
    check = check_delta(_sizes(tmp_path, floor=0.3, seeds=seeds), 0.1)  # plateaus at 0.03, delta 0.1
    for c in check.sizes:
        print(f"{c.name}: g_inf {c.persistent_gap:+.4f}, noise {c.noise:.4f}, margin {c.margin:+.4f}")
    assert not check.ill_posed and all(c.clear for c in check.sizes)
    assert "well posed" in check.text()


@pytest.mark.parametrize("seeds", [None, [0, 1, 2]])
def test_a_delta_just_above_the_plateau_is_flagged_ill_posed(tmp_path, seeds):
    check = check_delta(_sizes(tmp_path, floor=0.9, seeds=seeds), 0.1)  # plateaus at 0.09, delta 0.1
    for c in check.sizes:
        print(f"{c.name}: g_inf {c.persistent_gap:+.4f}, seed half-width {c.seed_half_width:.4f}, "
              f"eval noise {c.eval_noise:.4f}, margin {c.margin:+.4f}")
    assert check.ill_posed
    assert all(not c.clear for c in check.sizes)
    assert all(c.noise >= 2 * c.eval_noise for c in check.sizes)
    if seeds:
        assert all(math.isfinite(c.seed_half_width) for c in check.sizes)
    else:
        assert all(math.isnan(c.seed_half_width) for c in check.sizes)
    assert "ILL-POSED" in check.text() and "S1" in check.text()
