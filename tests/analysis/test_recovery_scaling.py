"""Coverage of the interval on the exponent of R = a * N^b, from planted recovery curves through the
recovery fit and the seed bootstrap (the functions the command line uses, without writing run logs)."""
import math

import numpy as np

import synthetic_study  # noqa: F401  (puts the repository on sys.path)
from analysis.recovery import LN10, fit_recovery
from analysis.replicates import log_mean_interval
from analysis.scaling_fit import fit_power_law_seeds

N = np.array([100_000, 300_000, 1_000_000, 3_000_000])
B_TRUE = 0.5
R_SMALLEST = 45_000.0
T_FREE = 20_480.0
EVALS = 24  # LN-free evaluations per run, spread over 8 planted tau of its size (the study evaluates >= 8)
A = 0.30


def simulated_study(rng: np.random.Generator, seeds: int, seed_sd: float, plateau_sd: float, eval_noise: float,
                    scatter_sd: float = 0.0) -> list[list[float]]:
    """Per size, each seed's fitted R. A seed's planted R is a N^b exp(scatter_s + seed_sd z) (so its tau is
    (R - t_free) / ln 10), its plateau 0.05 + plateau_sd z; EVALS evaluations over 8 tau of the size (the
    same for all its seeds, as in a study), each with eval_noise nats of noise."""
    values = []
    planted = R_SMALLEST * (N / N[0]) ** B_TRUE * np.exp(scatter_sd * rng.standard_normal(len(N)))
    for r_size in planted:
        per_seed = []
        tokens = T_FREE + (8.0 * (r_size - T_FREE) / LN10 / EVALS) * np.arange(1, EVALS + 1)
        for _ in range(seeds):
            r = r_size * math.exp(seed_sd * rng.standard_normal())
            tau = (r - T_FREE) / LN10
            g_inf = 0.05 + plateau_sd * rng.standard_normal()
            gap = g_inf + A * np.exp(-(tokens - T_FREE) / tau) + eval_noise * rng.standard_normal(len(tokens))
            per_seed.append(fit_recovery(tokens, gap, T_FREE).recovery_tokens)
        values.append(per_seed)
    return values


def coverage(trials: int, **kwargs) -> tuple[float, float]:
    rng = np.random.default_rng(2024)
    covered, widths = 0, []
    for k in range(trials):
        values = simulated_study(rng, **kwargs)
        fit = fit_power_law_seeds([f"S{i}" for i in range(len(N))], list(N), values, values, values, 1000, k,
                                  measure="recovery")
        covered += fit.ci_low <= B_TRUE <= fit.ci_high
        widths.append(fit.ci_high - fit.ci_low)
    return covered / trials, float(np.median(widths))


def test_the_interval_on_the_exponent_of_r_covers_the_planted_one_about_95_percent_of_the_time():
    # Three seeds per size, each with its own decay (R varies by 15% between seeds) and plateau
    # (0.01 nats), and 0.01-nat evaluation noise: the noise that the tiny study's logs show.
    rate, width = coverage(200, seeds=3, seed_sd=0.15, plateau_sd=0.01, eval_noise=0.01)
    print(f"coverage of the 95% interval on b over 200 simulated 3-seed studies: {rate:.3f} (median width {width:.3f})")
    assert 0.88 <= rate <= 0.99


def test_with_scatter_about_the_power_law_as_well_the_coverage_holds():
    # Sizes off the power law by 10% each, besides the seed noise: the scatter term must carry this.
    rate, width = coverage(120, seeds=3, seed_sd=0.1, plateau_sd=0.01, eval_noise=0.01, scatter_sd=0.1)
    print(f"coverage with size scatter over 120 simulated studies: {rate:.3f} (median width {width:.3f})")
    assert 0.86 <= rate <= 1.0


def test_the_seed_mean_is_geometric_and_its_interval_multiplicative():
    rng = np.random.default_rng(1)
    values = simulated_study(rng, seeds=3, seed_sd=0.15, plateau_sd=0.01, eval_noise=0.01)
    for per_seed in values:
        got = log_mean_interval(per_seed)
        assert math.isclose(got.mean, float(np.exp(np.mean(np.log(per_seed)))), rel_tol=1e-12)
        assert got.low < got.mean < got.high
        assert math.isclose(got.mean / got.low, got.high / got.mean, rel_tol=1e-9)
