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

from .delta_sanity import DeltaCheck
from .recovery import RecoveryFit
from .replicates import Interval, SizeResult, SpeedSummary
from .scaling_fit import LEVEL, PowerLawFit
from .study import Study
from .tokens_needed import ReplicateResult, SpeedResult


def _number(value: float | int | None) -> float | int | None:
    """JSON-safe: None for inf/nan, int for whole token counts."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _interval(key: str, value: Interval) -> dict:
    """key, key_low, key_high: the mean over seeds and its between-seed interval."""
    return {key: _number(value.mean), f"{key}_low": _number(value.low), f"{key}_high": _number(value.high)}


def _fit_fields(fit: PowerLawFit, prefix: str, suffix: str) -> dict:
    return {
        f"{prefix}exponent{suffix}": _number(fit.exponent),
        f"{prefix}exponent{suffix}_ci_low": _number(fit.ci_low),
        f"{prefix}exponent{suffix}_ci_high": _number(fit.ci_high),
        f"{prefix}prefactor{suffix}": _number(fit.prefactor),
        f"{prefix}verdict{suffix}": fit.verdict,
        f"{prefix}verdict{suffix}_reason": fit.verdict_reason,
    }


def _recovery_fields(fit: RecoveryFit) -> dict:
    return {
        "recovery_status": fit.status,
        "ln_free_evals": fit.n_points,
        "g_inf": _number(fit.g_inf),
        "g_inf_se": _number(fit.g_inf_se),
        "amplitude": _number(fit.amplitude),
        "amplitude_se": _number(fit.amplitude_se),
        "tau": _number(fit.tau),
        "tau_se": _number(fit.tau_se),
        "recovery_tokens": _number(fit.recovery_tokens),
        "recovery_tokens_se": _number(fit.recovery_tokens_se),
        "recovery_lower_bound": _number(fit.recovery_lower_bound),
        "residual_sd": _number(fit.residual_sd),
        "recovery_note": fit.message,
    }


def _run_entry(study: Study, s: SpeedResult) -> dict:
    return {
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
        "final_gap_full": _number(s.final_gap_full),
        **_recovery_fields(s.recovery),
    }


def _speed_entry(study: Study, s: SpeedSummary) -> dict:
    first = s.runs[0]
    return {
        "label": s.label,
        "run": os.path.relpath(first.path, study.root),
        "runs": [os.path.relpath(r.path, study.root) for r in s.runs],
        "status": s.status,
        "removal_window_tokens": [_number(first.window[0]), _number(first.window[1])],
        "ln_free_at_tokens": _number(first.ln_free_at),
        "total_tokens": first.total_tokens,
        "t_delta": _number(s.t_delta.estimate),
        "t_delta_low": _number(s.t_delta.low),
        "t_delta_high": _number(s.t_delta.high),
        "t_delta_reached": math.isfinite(s.t_delta.estimate),
        **_interval("final_gap", s.final_gap),
        **_interval("final_gap_full", s.final_gap_full),
        **_interval("recovery_tokens", s.recovery_tokens),
        **_interval("g_inf", s.g_inf),
        **_interval("tau", s.tau),
    }


def _replicate_entry(study: Study, rep: ReplicateResult) -> dict:
    fit = rep.recovery_fit
    return {
        "seed": rep.seed,
        "dir": rep.dir,
        "original_eval_loss": rep.original_eval_loss,
        "zero_shot_eval_loss": rep.zero_shot_eval_loss,
        "zero_shot_damage": _number(rep.zero_shot_damage),
        "recovery_tokens": _number(fit.recovery_tokens) if fit else None,
        "recovery_speed": rep.recovery_speed,
        "persistent_gap": _number(fit.g_inf) if fit else None,
        "tokens_needed": _number(rep.tokens_needed.estimate),
        "tokens_needed_low": _number(rep.tokens_needed.low),
        "tokens_needed_high": _number(rep.tokens_needed.high),
        "best_speed": rep.best_speed,
        "final_gap": _number(rep.final_gap),
        "final_gap_speed": rep.final_gap_speed,
        "final_gap_full": _number(rep.final_gap_full),
        "speeds": [_run_entry(study, s) for s in rep.speeds],
    }


def _size_entry(study: Study, size: SizeResult) -> dict:
    paper = size.paper_speed
    needed = size.tokens_needed
    original = size.original_eval_loss.mean
    return {
        "name": size.name,
        "n_params_nonembed": size.n_params_nonembed,
        "n_params_total": size.n_params_total,
        "seeds": size.seeds,
        **_interval("recovery_tokens", size.recovery_tokens),
        "recovery_tokens_reached": math.isfinite(size.recovery_tokens.mean),
        "recovery_lower_bound": _number(size.recovery_lower_bound),
        "recovery_speed": size.recovery_speed,
        **_interval("persistent_gap", size.persistent_gap),
        "tokens_needed": _number(needed.estimate),
        "tokens_needed_low": _number(needed.low),
        "tokens_needed_high": _number(needed.high),
        "tokens_needed_reached": math.isfinite(needed.estimate),
        "tokens_needed_seeds_low": _number(size.tokens_needed_seeds.low),
        "tokens_needed_seeds_high": _number(size.tokens_needed_seeds.high),
        "best_speed": size.best_speed,
        "best_speed_position": size.best_speed_position,
        "faster_neighbour": size.faster_neighbour,
        "slower_neighbour": size.slower_neighbour,
        "eval_spacing_tokens": _number(size.eval_spacing),
        **_interval("final_gap", size.final_gap),
        "final_gap_speed": size.final_gap_speed,
        **_interval("final_gap_full", size.final_gap_full),
        **_interval("original_eval_loss", size.original_eval_loss),
        "original_minus_unigram": (_number(original - study.unigram_eval_loss)
                                   if study.unigram_eval_loss is not None else None),
        "zero_shot_eval_loss": _number(size.zero_shot_eval_loss.mean),
        **_interval("zero_shot_damage", size.zero_shot_damage),
        "paper_speed": paper.label if paper else None,
        "paper_tokens_to_ln_free": _number(paper.runs[0].ln_free_at) if paper else None,
        "paper_total_tokens": _number(paper.runs[0].total_tokens) if paper else None,
        "paper_faster_diverged": size.paper_faster_diverged,
        "recovery_skipped_runs": [os.path.relpath(p, study.root) for p in size.recovery_skipped],
        "speeds": [_speed_entry(study, s) for s in size.speeds],
        "replicates": [_replicate_entry(study, r) for r in size.replicates],
    }


def _sanity_fields(sanity: DeltaCheck) -> dict:
    return {
        "t_delta_ill_posed": sanity.ill_posed,
        "t_delta_ill_posed_detail": [{
            "size": c.name,
            "persistent_gap": _number(c.persistent_gap),
            "seed_half_width": _number(c.seed_half_width),
            "eval_noise": _number(c.eval_noise),
            "noise": _number(c.noise),
            "delta": sanity.delta,
            "margin": _number(c.margin),
            "clear": c.clear,
        } for c in sanity.sizes],
    }


def summary(study: Study, delta: float, budget: int, sizes: list[SizeResult], fits: dict[str, PowerLawFit],
            sanity: DeltaCheck, size_ordered: bool | None) -> dict:
    fit, recovery = fits["t_delta"], fits["recovery"]
    return {
        "study": study.name,
        "eval_set": study.eval_set,
        "delta": delta,
        "budget_tokens": budget,
        "confidence_level": LEVEL,
        "bootstrap": fit.bootstrap,
        "seed": fit.seed,
        "seeds": study.seeds,
        **_fit_fields(recovery, "recovery_", ""),
        "recovery_fit_sizes": recovery.sizes_used,
        "recovery_excluded_sizes": recovery.sizes_excluded,
        **_fit_fields(fits["recovery_total"], "recovery_", "_total"),
        "recovery_skipped_runs": [os.path.relpath(p, study.root) for s in sizes for p in s.recovery_skipped],
        "size_ordered": size_ordered,
        **_sanity_fields(sanity),
        **_fit_fields(fit, "", ""),
        "fit_sizes": fit.sizes_used,
        "excluded_sizes": fit.sizes_excluded,
        **_fit_fields(fits["t_delta_total"], "", "_total"),
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
    header = ["size", "n_params_nonembed", "n_params_total", "seeds", "recovery_tokens", "recovery_tokens_low",
              "recovery_tokens_high", "recovery_speed", "persistent_gap", "persistent_gap_low", "persistent_gap_high",
              "original_eval_loss", "original_eval_loss_low", "original_eval_loss_high", "tokens_needed",
              "tokens_needed_low", "tokens_needed_high", "best_speed", "faster_neighbour", "slower_neighbour",
              "final_gap", "final_gap_speed", "final_gap_full", "zero_shot_damage", "paper_speed",
              "paper_tokens_to_ln_free", "paper_total_tokens"]
    rows = []
    for s in sizes:
        p = s.paper_speed
        r, g, o = s.recovery_tokens, s.persistent_gap, s.original_eval_loss
        rows.append([s.name, s.n_params_nonembed, s.n_params_total, " ".join(str(v) for v in s.seeds), r.mean, r.low,
                     r.high, s.recovery_speed, g.mean, g.low, g.high, o.mean, o.low, o.high, s.tokens_needed.estimate,
                     s.tokens_needed.low, s.tokens_needed.high, s.best_speed, s.faster_neighbour, s.slower_neighbour,
                     s.final_gap.mean, s.final_gap_speed, s.final_gap_full.mean, s.zero_shot_damage.mean,
                     p.label if p else None, p.runs[0].ln_free_at if p else None,
                     p.runs[0].total_tokens if p else None])
    return _csv_text(header, rows)


def runs_csv(sizes: list[SizeResult]) -> str:
    header = ["size", "seed", "speed", "status", "removal_start_tokens", "ln_free_at_tokens", "total_tokens",
              "t_delta", "t_delta_low", "t_delta_high", "final_gap", "final_gap_full", "recovery_status",
              "ln_free_evals", "g_inf", "g_inf_se", "tau", "tau_se", "recovery_tokens", "recovery_tokens_se",
              "residual_sd"]
    rows = [[z.name, rep.seed, s.label, s.status, s.window[0], s.ln_free_at, s.total_tokens, s.t_delta.estimate,
             s.t_delta.low, s.t_delta.high, s.final_gap, s.final_gap_full, s.recovery.status, s.recovery.n_points,
             s.recovery.g_inf, s.recovery.g_inf_se, s.recovery.tau, s.recovery.tau_se, s.recovery.recovery_tokens,
             s.recovery.recovery_tokens_se, s.recovery.residual_sd]
            for z in sizes for rep in z.replicates for s in rep.speeds]
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


def interval_text(value: Interval, fmt) -> str:
    """mean [low, high] over seeds; the mean alone with one seed."""
    if math.isnan(value.mean):
        return "-"
    if math.isnan(value.low):
        return fmt(value.mean)
    return f"{fmt(value.mean)} [{fmt(value.low)}, {fmt(value.high)}]"


def recovery_text(size: SizeResult) -> str:
    r = size.recovery_tokens
    if math.isnan(r.mean):
        return "not measured"
    if math.isinf(r.mean):
        bound = size.recovery_lower_bound
        return "not recovered (diverged)" if math.isinf(bound) else f"not recovered (> {tokens_text(bound)})"
    return interval_text(r, tokens_text)


def _loss_text(value: Interval) -> str:
    if math.isnan(value.mean):
        return "-"
    if math.isnan(value.low):
        return f"{value.mean:.3f}"
    return f"{value.mean:.3f} ± {value.half_width:.3f}"


def _fit_text(fit: PowerLawFit) -> str:
    if fit.exponent is None:
        return f"b undetermined ({fit.verdict_reason})"
    if fit.ci_low is None:
        return f"b = {fit.exponent:.3f}, no interval: {fit.verdict} ({fit.verdict_reason})"
    return (f"b = {fit.exponent:.3f}, {LEVEL:.0%} CI [{fit.ci_low:.3f}, {fit.ci_high:.3f}] from {fit.bootstrap} "
            f"bootstrap draws (seed {fit.seed}): {fit.verdict} ({fit.verdict_reason})")


def console_table(delta: float, budget: int, eval_set: str, sizes: list[SizeResult], fits: dict[str, PowerLawFit],
                  sanity: DeltaCheck, size_ordered: bool | None) -> str:
    header = ["size", "N non-emb", "seeds", "pretrained loss", "R: recovery tokens [95%]", "g_inf [95%]",
              "R speed", f"T_delta (delta={delta:g}) [bracket]", "zero-shot damage"]
    checks = {c.name: c for c in sanity.sizes}
    rows = [header]
    for s in sizes:
        check = checks[s.name]
        t_delta = needed_text(s) if check.clear else f"ill-posed ({check.short})"
        plateau = ("diverged" if math.isinf(s.persistent_gap.mean) else
                   interval_text(s.persistent_gap, lambda v: f"{v:+.4f}"))
        rows.append([s.name, f"{s.n_params_nonembed:,}", str(len(s.replicates)), _loss_text(s.original_eval_loss),
                     recovery_text(s), plateau,
                     s.recovery_speed or "-", t_delta, interval_text(s.zero_shot_damage, lambda v: f"{v:+.3f}")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    k = sorted({len(s.replicates) for s in sizes})
    lines = [f"eval set {eval_set}; {'/'.join(map(str, k))} seed(s) per size; per seed R = min over speeds of "
             "t_free + tau*ln10 from the fit gap(t) = g_inf + A*exp(-(t - t_free)/tau); [95%] = between-seed t "
             "interval (none with one seed)"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if size_ordered is False:
        lines.append("WARNING: the sizes are not ordered by held-out loss after pretraining (see the pretrained "
                     "loss column)")
    skipped = [p for s in sizes for p in s.recovery_skipped]
    if skipped:
        lines.append(f"left out of the recovery measure ({len(skipped)}, too few LN-free evaluations): "
                     + ", ".join(skipped))
    lines.append(f"R = a * N^b, N = non-embedding parameters:             {_fit_text(fits['recovery'])}")
    lines.append(f"R = a * N^b, N = total parameters:                     {_fit_text(fits['recovery_total'])}")
    lines.append(sanity.text())
    tag = " (ILL-POSED)" if sanity.ill_posed else ""
    lines.append(f"T_delta = a * N^b{tag}, N = non-embedding parameters: {_fit_text(fits['t_delta'])}")
    lines.append(f"T_delta = a * N^b{tag}, N = total parameters:         {_fit_text(fits['t_delta_total'])}")
    lines.append(f"final gap at {tokens_text(budget)} tokens (smallest over speeds), per size: "
                 + ", ".join(f"{s.name} {interval_text(s.final_gap, lambda v: f'{v:+.4f}')}" for s in sizes))
    return "\n".join(lines)
