"""Command line: /usr/bin/python3 -m analysis STUDY_DIR [--delta D] [--out DIR] [--bootstrap N] [--seed S]
[--allow-unfinished] [--no-plots]. docs/tokens-needed.md explains every number it writes."""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys

from .errors import AnalysisError
from .report import console_table, summary, write_tables
from .scaling_fit import fit_power_law
from .study import read_study
from .tokens_needed import SizeResult, resolved_budget, study_results

log = logging.getLogger("analysis")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m analysis",
        description="Tokens needed to remove LayerNorm per model size, and their power-law scaling with N. "
                    "Reads STUDY_DIR/study.json and STUDY_DIR/runs/<size>/{control,speed-<label>}/run.h5; writes "
                    "summary.json, summary.csv, runs.csv and PNG+SVG plots. See docs/tokens-needed.md.")
    p.add_argument("study_dir", metavar="STUDY_DIR", help="study folder written by `lnfree study`")
    p.add_argument("--delta", type=float, default=None,
                   help="tolerance δ in nats on the eval-loss gap to the control (default: study.json 'delta')")
    p.add_argument("--out", default=None, help="output folder (default: STUDY_DIR/analysis)")
    p.add_argument("--bootstrap", type=int, default=10000, help="bootstrap replicates for the CI on b (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed; same seed and logs give the same output")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="analyse runs whose status is 'running' or 'failed' (or missing) with the rows they have")
    p.add_argument("--no-plots", action="store_true", help="write only summary.json and the CSV tables")
    return p


def _fit(sizes: list[SizeResult], attr: str, label: str, bootstrap: int, seed: int):
    used = [s for s in sizes if math.isfinite(s.tokens_needed.estimate)]
    excluded = {s.name: (getattr(s, attr), s.tokens_needed.low) for s in sizes if s not in used}
    return fit_power_law([s.name for s in used], [getattr(s, attr) for s in used],
                         [s.tokens_needed.estimate for s in used], [s.tokens_needed.low for s in used],
                         [s.tokens_needed.high for s in used], bootstrap, seed, label, excluded)


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
    sizes = study_results(study, delta)
    budget = resolved_budget(study)
    fit = _fit(sizes, "n_params_nonembed", "non-embedding parameters", args.bootstrap, args.seed)
    fit_total = _fit(sizes, "n_params_total", "total parameters", args.bootstrap, args.seed)
    out_dir = args.out or os.path.join(args.study_dir, "analysis")
    os.makedirs(out_dir, exist_ok=True)
    written = write_tables(out_dir, summary(study, delta, budget, sizes, fit, fit_total), sizes)
    if not args.no_plots:
        from . import plots  # matplotlib is slow to import; only when drawing

        written += plots.loss_curves(study, sizes, delta, out_dir)
        written += plots.scaling(sizes, fit, fit_total, delta, out_dir)
        written += plots.sigma_trajectories(study, sizes, out_dir)
    print(console_table(delta, budget, study.eval_set, sizes, fit, fit_total))
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
