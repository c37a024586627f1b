"""Command line: /usr/bin/python3 -m analysis STUDY_DIR [--delta D] [--out DIR] [--bootstrap N] [--seed S]
[--allow-unfinished] [--skip-short-fits] [--no-plots]. docs/tokens-needed.md explains every number it writes."""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys

from .delta_sanity import check_delta
from .errors import AnalysisError
from .recovery import MIN_LN_FREE_EVALS
from .replicates import SizeResult, size_result
from .report import console_table, summary, write_tables
from .scaling_fit import PowerLawFit, fit_power_law_seeds
from .study import Study, read_study
from .tokens_needed import replicate_results, resolved_budget

log = logging.getLogger("analysis")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m analysis",
        description="Tokens needed to remove LayerNorm per model size (the recovery tokens R of a fitted recovery "
                    "curve, and T_delta), averaged over seeds, and their power-law scaling with N. "
                    "Reads STUDY_DIR/study.json and STUDY_DIR/runs/<size>/seed-<v>/{control,speed-<label>}/run.h5 "
                    "(or runs/<size>/{control,speed-<label>} for a single-seed study); writes summary.json, "
                    "summary.csv, runs.csv and PNG+SVG plots. See docs/tokens-needed.md.")
    p.add_argument("study_dir", metavar="STUDY_DIR", help="study folder written by `lnfree study`")
    p.add_argument("--delta", type=float, default=None,
                   help="tolerance δ in nats on the eval-loss gap to the control (default: study.json 'delta')")
    p.add_argument("--out", default=None, help="output folder (default: STUDY_DIR/analysis)")
    p.add_argument("--bootstrap", type=int, default=10000, help="bootstrap replicates for the CI on b (default 10000)")
    p.add_argument("--seed", type=int, default=0,
                   help="bootstrap seed (not a study seed); same seed and logs give the same output")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="analyse runs whose status is 'running' or 'failed' (or missing) with the rows they have")
    p.add_argument("--skip-short-fits", action="store_true",
                   help=f"leave runs with fewer than {MIN_LN_FREE_EVALS} LN-free evaluations out of the recovery "
                        "measure (listed in summary.json) instead of refusing the study")
    p.add_argument("--no-plots", action="store_true", help="write only summary.json and the CSV tables")
    return p


LABELS = {"n_params_nonembed": "non-embedding parameters", "n_params_total": "total parameters"}


def _fit_t_delta(sizes: list[SizeResult], attr: str, bootstrap: int, seed: int) -> PowerLawFit:
    """T_delta per size: every seed's estimate and bracket; a size with a seed never within delta is left out."""
    used = [s for s in sizes if math.isfinite(s.tokens_needed.estimate)]
    excluded = {s.name: (getattr(s, attr), s.tokens_needed.low) for s in sizes if s not in used}
    needed = [[r.tokens_needed for r in s.replicates] for s in used]
    return fit_power_law_seeds([s.name for s in used], [getattr(s, attr) for s in used],
                               [[b.estimate for b in n] for n in needed], [[b.low for b in n] for n in needed],
                               [[b.high for b in n] for n in needed], bootstrap, seed, LABELS[attr], excluded,
                               "t_delta")


def _fit_recovery(sizes: list[SizeResult], attr: str, bootstrap: int, seed: int) -> PowerLawFit:
    """R per size: every seed's R (no bracket); a size with an unrecovered seed is left out with its bound.
    A size without any recovery measure (every run skipped) takes no part at all."""
    used = [s for s in sizes if math.isfinite(s.recovery_tokens.mean)]
    excluded = {s.name: (getattr(s, attr), s.recovery_lower_bound) for s in sizes
                if s not in used and not math.isnan(s.recovery_tokens.mean)}
    values = [[r.recovery_fit.recovery_tokens for r in s.replicates] for s in used]
    return fit_power_law_seeds([s.name for s in used], [getattr(s, attr) for s in used], values, values, values,
                               bootstrap, seed, LABELS[attr], excluded, "recovery")


def _size_ordered(sizes: list[SizeResult]) -> bool | None:
    """Does the mean held-out loss after pretraining fall strictly with size? None when a size lacks it."""
    losses = [s.original_eval_loss.mean for s in sizes]
    if any(math.isnan(v) for v in losses):
        return None
    bad = [(a, b) for a, b in zip(sizes, sizes[1:]) if not b.original_eval_loss.mean < a.original_eval_loss.mean]
    for a, b in bad:
        log.warning("sizes not ordered by held-out loss after pretraining: %s (%.4f) is not below %s (%.4f); the "
                    "family may be limited by pretraining tokens rather than capacity", b.name,
                    b.original_eval_loss.mean, a.name, a.original_eval_loss.mean)
    return not bad


def results(study: Study, delta: float, skip_short_fits: bool = False) -> list[SizeResult]:
    per_seed = replicate_results(study, delta, skip_short_fits)
    return [size_result(reps, size.original_eval_loss, size.zero_shot_eval_loss)
            for size, reps in zip(study.sizes, per_seed)]


def run(args: argparse.Namespace) -> int:
    if args.bootstrap < 100:
        raise AnalysisError(f"--bootstrap {args.bootstrap}: expected at least 100 replicates")
    if args.seed < 0:
        raise AnalysisError(f"--seed {args.seed}: expected a non-negative integer")
    if not os.path.isdir(args.study_dir):
        raise AnalysisError(f"{args.study_dir}: not a folder")
    study = read_study(args.study_dir, allow_unfinished=args.allow_unfinished)
    delta = args.delta if args.delta is not None else study.delta
    if delta is None:
        raise AnalysisError(f"{os.path.join(args.study_dir, 'study.json')}: field 'delta' is missing: give --delta")
    if not (math.isfinite(delta) and delta > 0):
        raise AnalysisError(f"--delta {delta}: expected a positive number of nats")
    sizes = results(study, delta, args.skip_short_fits)
    budget = resolved_budget(study)
    fits = {
        "t_delta": _fit_t_delta(sizes, "n_params_nonembed", args.bootstrap, args.seed),
        "t_delta_total": _fit_t_delta(sizes, "n_params_total", args.bootstrap, args.seed),
        "recovery": _fit_recovery(sizes, "n_params_nonembed", args.bootstrap, args.seed),
        "recovery_total": _fit_recovery(sizes, "n_params_total", args.bootstrap, args.seed),
    }
    sanity = check_delta(sizes, delta)
    ordered = _size_ordered(sizes)
    out_dir = args.out or os.path.join(args.study_dir, "analysis")
    os.makedirs(out_dir, exist_ok=True)
    written = write_tables(out_dir, summary(study, delta, budget, sizes, fits, sanity, ordered), sizes)
    if not args.no_plots:
        from . import plots  # matplotlib is slow to import; only when drawing

        written += plots.loss_curves(study, sizes, delta, out_dir)
        written += plots.scaling(sizes, fits, delta, sanity, out_dir)
        written += plots.sigma_trajectories(study, sizes, out_dir)
    print(console_table(delta, budget, study.eval_set, sizes, fits, sanity, ordered))
    if study.unfinished:
        print(f"UNFINISHED runs analysed as they stand ({len(study.unfinished)}): " + ", ".join(study.unfinished))
    print("wrote:\n" + "\n".join(f"  {p}" for p in written))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="analysis: warning: %(message)s", level=logging.WARNING, stream=sys.stderr)
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except AnalysisError as e:
        print(f"analysis: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
