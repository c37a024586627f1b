"""summary.json, summary.csv (one row per size), runs.csv (one row per removal run) and the printed table.

JSON numbers are finite: an infinite T_delta or tokens needed (diverged, or never within delta) is
written as null, beside a flag that says so. Nothing depends on the clock, so the same logs give the
same files byte for byte.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os

from .scaling_fit import LEVEL, PowerLawFit
from .study import Study
from .tokens_needed import SizeResult


def _number(value: float | int | None) -> float | int | None:
    """JSON-safe: None for inf/nan, int for whole token counts."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _fit_fields(fit: PowerLawFit, suffix: str) -> dict:
    return {
        f"exponent{suffix}": _number(fit.exponent),
        f"exponent{suffix}_ci_low": _number(fit.ci_low),
        f"exponent{suffix}_ci_high": _number(fit.ci_high),
        f"prefactor{suffix}": _number(fit.prefactor),
        f"verdict{suffix}": fit.verdict,
        f"verdict{suffix}_reason": fit.verdict_reason,
    }


def _size_entry(study: Study, size: SizeResult) -> dict:
    paper = size.paper_speed
    needed = size.tokens_needed
    return {
        "name": size.name,
        "n_params_nonembed": size.n_params_nonembed,
        "n_params_total": size.n_params_total,
        "tokens_needed": _number(needed.estimate),
        "tokens_needed_low": _number(needed.low),
        "tokens_needed_high": _number(needed.high),
        "tokens_needed_reached": math.isfinite(needed.estimate),
        "best_speed": size.best_speed,
        "best_speed_position": size.best_speed_position,
        "faster_neighbour": size.faster_neighbour,
        "slower_neighbour": size.slower_neighbour,
        "eval_spacing_tokens": _number(size.eval_spacing),
        "final_gap": _number(size.final_gap),
        "final_gap_speed": size.final_gap_speed,
        "original_eval_loss": size.original_eval_loss,
        "original_minus_unigram": (size.original_eval_loss - study.unigram_eval_loss
                                   if size.original_eval_loss is not None and study.unigram_eval_loss is not None
                                   else None),
        "zero_shot_eval_loss": size.zero_shot_eval_loss,
        "zero_shot_damage": _number(size.zero_shot_damage),
        "paper_speed": paper.label if paper else None,
        "paper_tokens_to_ln_free": _number(paper.ln_free_at) if paper else None,
        "paper_total_tokens": _number(paper.total_tokens) if paper else None,
        "paper_faster_diverged": size.paper_faster_diverged,
        "speeds": [{
            "label": s.label,
            "run": os.path.relpath(s.path, study.root),
            "status": s.status,
            "removal_window_tokens": [_number(s.window[0]), _number(s.window[1])],
            "ln_free_at_tokens": _number(s.ln_free_at),
            "total_tokens": s.total_tokens,
            "t_delta": _number(s.t_delta.estimate),
            "t_delta_low": _number(s.t_delta.low),
            "t_delta_high": _number(s.t_delta.high),
            "t_delta_reached": math.isfinite(s.t_delta.estimate),
            "final_gap": _number(s.final_gap),
        } for s in size.speeds],
    }


def summary(study: Study, delta: float, budget: int, sizes: list[SizeResult], fit: PowerLawFit,
            fit_total: PowerLawFit) -> dict:
    return {
        "study": study.name,
        "eval_set": study.eval_set,
        "delta": delta,
        "budget_tokens": budget,
        "confidence_level": LEVEL,
        "bootstrap": fit.bootstrap,
        "seed": fit.seed,
        **_fit_fields(fit, ""),
        "fit_sizes": fit.sizes_used,
        "excluded_sizes": fit.sizes_excluded,
        **_fit_fields(fit_total, "_total"),
        "unigram_eval_loss": study.unigram_eval_loss,
        "vocab": study.vocab,
        "unfinished_runs": [os.path.relpath(p, study.root) for p in study.unfinished],
        "sizes": [_size_entry(study, s) for s in sizes],
    }


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "inf" if math.isinf(value) else ("" if math.isnan(value) else repr(value))
    return str(value)


def _csv_text(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue()


def size_csv(sizes: list[SizeResult]) -> str:
    header = ["size", "n_params_nonembed", "n_params_total", "tokens_needed", "tokens_needed_low",
              "tokens_needed_high", "best_speed", "faster_neighbour", "slower_neighbour", "final_gap",
              "final_gap_speed", "zero_shot_damage", "paper_speed", "paper_tokens_to_ln_free", "paper_total_tokens"]
    rows = []
    for s in sizes:
        p = s.paper_speed
        rows.append([s.name, s.n_params_nonembed, s.n_params_total, s.tokens_needed.estimate, s.tokens_needed.low,
                     s.tokens_needed.high, s.best_speed, s.faster_neighbour, s.slower_neighbour, s.final_gap,
                     s.final_gap_speed, s.zero_shot_damage, p.label if p else None, p.ln_free_at if p else None,
                     p.total_tokens if p else None])
    return _csv_text(header, rows)


def runs_csv(sizes: list[SizeResult]) -> str:
    header = ["size", "speed", "status", "removal_start_tokens", "ln_free_at_tokens", "total_tokens", "t_delta",
              "t_delta_low", "t_delta_high", "final_gap"]
    rows = [[z.name, s.label, s.status, s.window[0], s.ln_free_at, s.total_tokens, s.t_delta.estimate,
             s.t_delta.low, s.t_delta.high, s.final_gap] for z in sizes for s in z.speeds]
    return _csv_text(header, rows)


def write_text(path: str, text: str) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def write_tables(out_dir: str, summary_dict: dict, sizes: list[SizeResult]) -> list[str]:
    paths = [os.path.join(out_dir, n) for n in ("summary.json", "summary.csv", "runs.csv")]
    write_text(paths[0], json.dumps(summary_dict, indent=2, allow_nan=False) + "\n")
    write_text(paths[1], size_csv(sizes))
    write_text(paths[2], runs_csv(sizes))
    return paths


def tokens_text(value: float) -> str:
    """Token counts for people: 950, 78.2k, 1.35M, inf."""
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def needed_text(size: SizeResult) -> str:
    needed = size.tokens_needed
    if math.isfinite(needed.estimate):
        return f"{tokens_text(needed.estimate)} [{tokens_text(needed.low)}, {tokens_text(needed.high)}]"
    if math.isfinite(needed.low):
        return f"never (> {tokens_text(needed.low)})"
    return "never (all diverged)"


def _fit_text(fit: PowerLawFit) -> str:
    if fit.exponent is None:
        return f"b undetermined ({fit.verdict_reason})"
    return (f"b = {fit.exponent:.3f}, {LEVEL:.0%} CI [{fit.ci_low:.3f}, {fit.ci_high:.3f}] from {fit.bootstrap} "
            f"bootstrap draws (seed {fit.seed}): {fit.verdict} ({fit.verdict_reason})")


def console_table(delta: float, budget: int, eval_set: str, sizes: list[SizeResult], fit: PowerLawFit,
                  fit_total: PowerLawFit) -> str:
    header = ["size", "N non-emb", "N total", f"tokens needed (delta={delta:g}) [low, high]", "best speed",
              "neighbours (faster/slower)", f"final gap @ {tokens_text(budget)}", "zero-shot damage"]
    rows = [header]
    for s in sizes:
        neighbours = f"{s.faster_neighbour or '-'} / {s.slower_neighbour or '-'}"
        gap = ("-" if math.isnan(s.final_gap) else "all diverged" if math.isinf(s.final_gap) else
               f"{s.final_gap:+.4f} ({s.final_gap_speed})")
        damage = "-" if s.zero_shot_damage is None else f"{s.zero_shot_damage:+.3f}"
        rows.append([s.name, f"{s.n_params_nonembed:,}", f"{s.n_params_total:,}", needed_text(s),
                     s.best_speed or "-", neighbours, gap, damage])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"eval set {eval_set}: tokens needed = min over speeds of T_delta; final gap = smallest over speeds"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append(f"tokens needed = a * N^b, N = non-embedding parameters: {_fit_text(fit)}")
    lines.append(f"tokens needed = a * N^b, N = total parameters:         {_fit_text(fit_total)}")
    return "\n".join(lines)
