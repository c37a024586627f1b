"""T_delta on hand-made gap curves, the control interpolation, and the per-size minimum and bracket."""
import math

import numpy as np
import pytest

import synthetic_study as syn
from analysis.runlog import EvalCurve
from analysis.study import read_study
from analysis.tokens_needed import gap_curve, replicate_results, t_delta

T = np.array([10.0, 20.0, 30.0, 40.0])


def test_crossing_is_interpolated_between_the_last_failing_and_first_passing_evaluation():
    got = t_delta(T, np.array([0.5, 0.3, 0.05, 0.02]), 0.1, ln_free_at=5.0)
    expected = 20.0 + (0.3 - 0.1) / (0.3 - 0.05) * 10.0  # 28
    print(f"T_delta {got.estimate} vs {expected}: error {abs(got.estimate - expected):.3g}")
    assert got.estimate == pytest.approx(expected, abs=1e-12)
    assert (got.low, got.high) == (20.0, 30.0)


def test_a_later_excursion_above_delta_moves_t_delta_after_it():
    got = t_delta(T, np.array([0.5, 0.05, 0.2, 0.05]), 0.1, ln_free_at=5.0)
    assert (got.low, got.high) == (30.0, 40.0)
    assert got.estimate == pytest.approx(30.0 + (0.2 - 0.1) / 0.15 * 10.0, abs=1e-12)


def test_a_run_that_ends_above_delta_never_reaches_it():
    got = t_delta(T, np.array([0.5, 0.05, 0.05, 0.2]), 0.1, ln_free_at=5.0)
    assert math.isinf(got.estimate) and math.isinf(got.high)
    assert got.low == 40.0  # it needs more than the tokens it ran


def test_evaluations_before_the_model_is_ln_free_do_not_count():
    # Before the last removal the gap is ~0; those evaluations (and one exactly at ln_free_at, which
    # ran before the event took effect) must not let T_delta start early.
    got = t_delta(T, np.array([0.0, 0.0, 0.5, 0.05]), 0.1, ln_free_at=20.0)
    assert (got.low, got.high) == (30.0, 40.0)
    got = t_delta(T, np.array([0.0, 0.0, 0.05, 0.05]), 0.1, ln_free_at=20.0)
    assert (got.estimate, got.low, got.high) == (30.0, 20.0, 30.0)


def test_nan_loss_counts_as_above_delta_and_is_not_interpolated():
    got = t_delta(T, np.array([0.5, np.nan, 0.05, 0.05]), 0.1, ln_free_at=5.0)
    assert (got.estimate, got.low, got.high) == (30.0, 20.0, 30.0)


def test_no_evaluation_of_the_ln_free_model_leaves_t_delta_open():
    got = t_delta(T, np.zeros(4), 0.1, ln_free_at=40.0)
    assert math.isinf(got.estimate) and got.low == 40.0


def test_control_is_interpolated_linearly_at_the_removal_evaluations_inside_its_range():
    control = EvalCurve(np.array([0, 100, 200]), np.array([5.0, 4.0, 3.0]))
    removal = EvalCurve(np.array([50, 150, 250]), np.array([4.7, 3.6, 3.1]))
    tokens, gap = gap_curve(control, removal)
    assert tokens.tolist() == [50, 150]
    np.testing.assert_allclose(gap, [4.7 - 4.5, 3.6 - 3.5], atol=1e-12)


def _results(tmp_path, speeds, delta=0.1):
    sizes = syn.power_law_sizes(0.5, n_nonembed=(100_000, 400_000), layers=(2, 2))
    syn.make_study(str(tmp_path), sizes, delta=delta, speeds=speeds, budget_tokens=150_000)
    # The single-replicate layout: one seed per size.
    return sizes, [reps[0] for reps in replicate_results(read_study(str(tmp_path)), delta)]


def test_tokens_needed_is_the_best_speed_with_the_minimum_brackets(tmp_path):
    speeds = [syn.SpeedSpec("g0", 0, 1.3), syn.SpeedSpec("g1", 1, 1.0), syn.SpeedSpec("g8", 8, 1.5)]
    sizes, results = _results(tmp_path, speeds)
    for planted, size in zip(sizes, results):
        assert [s.label for s in size.speeds] == ["g0", "g1", "g8"]  # fastest (shortest window) first
        assert size.best_speed == "g1" and (size.faster_neighbour, size.slower_neighbour) == ("g0", "g8")
        assert size.best_speed_position == "interior"
        needed = size.tokens_needed
        assert needed.estimate == min(s.t_delta.estimate for s in size.speeds)
        assert needed.low == min(s.t_delta.low for s in size.speeds)
        assert needed.high == min(s.t_delta.high for s in size.speeds)
        rel = abs(needed.estimate - planted.t_needed) / planted.t_needed
        print(f"{size.name}: T_delta {needed.estimate:.0f} vs planted {planted.t_needed:.0f} (rel. error {rel:.3g}), "
              f"bracket [{needed.low:.0f}, {needed.high:.0f}]")
        assert needed.low <= planted.t_needed <= needed.high
        assert rel < 0.02


def test_a_diverged_speed_has_infinite_t_delta_and_a_size_with_no_success_is_never(tmp_path):
    speeds = {"S1": [syn.SpeedSpec("g0", 0, diverge=True), syn.SpeedSpec("g2", 2)],
              "S2": [syn.SpeedSpec("g0", 0, diverge=True), syn.SpeedSpec("g2", 2, never_within=True)]}
    _, (small, large) = _results(tmp_path, speeds)
    g0, g2 = small.speeds
    assert g0.diverged and math.isinf(g0.t_delta.estimate) and math.isinf(g0.t_delta.low)
    assert math.isinf(g0.final_gap)
    assert small.best_speed == "g2" and small.faster_neighbour == "g0"
    assert small.paper_speed.label == "g2" and small.paper_faster_diverged == "g0"
    assert math.isinf(large.tokens_needed.estimate) and large.best_speed is None
    assert large.tokens_needed.low == large.speeds[1].eval_tokens[-1]  # needs more than the run had
