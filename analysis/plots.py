"""Figures, each saved as PNG and SVG: loss and gap curves per size with the recovery fits and the seed
band, the scaling plots (R and g_inf per size; T_delta apart), and sigma trajectories per LN. Saving
is deterministic (no dates, fixed SVG ids) so reruns give identical files."""
from __future__ import annotations

import math
import os
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from .delta_sanity import DeltaCheck  # noqa: E402
from .replicates import Interval, SizeResult  # noqa: E402
from .report import recovery_text, tokens_text  # noqa: E402
from .scaling_fit import LEVEL, PowerLawFit  # noqa: E402
from .study import Study  # noqa: E402

plt.rcParams.update({
    "svg.hashsalt": "lnfree-analysis",
    "font.size": 10,
    "axes.titlesize": 10.5,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
})
TOKENS_AXIS = FuncFormatter(lambda v, _: tokens_text(v) if v >= 0 else "")
PLAIN_AXIS = FuncFormatter(lambda v, _: f"{v:g}")
GAP_AXIS = FuncFormatter(lambda v, _: f"{v:+.2f}" if v else "0")


def _log_ticks(axis, formatter, decades: float = 1.0) -> None:
    """Ticks at 1, 2, 5 times powers of ten, so that a log axis spanning one decade still gets labels;
    at powers of ten only when the axis spans more than two decades (else the labels run together)."""
    subs = (1.0, 2.0, 5.0) if decades <= 2.0 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(formatter)
    axis.set_minor_formatter(NullFormatter())


def _save(fig, out_dir: str, stem: str) -> list[str]:
    paths = [os.path.join(out_dir, f"{stem}.png"), os.path.join(out_dir, f"{stem}.svg")]
    fig.savefig(paths[0], dpi=130, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return paths


def _speed_colours(count: int) -> list:
    # Fastest schedule darkest; a sequential map keeps "faster vs slower" readable at a glance.
    cmap = plt.get_cmap("plasma")
    return [cmap(0.05 + 0.75 * i / max(count - 1, 1)) for i in range(count)]


def _seed_stack(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over seeds at the first seed's token counts (the others interpolated there;
    outside a seed's range it does not count)."""
    tokens = np.asarray(curves[0][0], np.float64)
    rows = []
    for t, v in curves:
        t, v = np.asarray(t, np.float64), np.asarray(v, np.float64)
        ok = np.isfinite(v)
        if ok.sum() == 0:
            rows.append(np.full(tokens.shape, np.nan))
            continue
        row = np.interp(tokens, t[ok], v[ok])
        row[(tokens < t[ok][0]) | (tokens > t[ok][-1])] = np.nan
        if np.array_equal(t, tokens):
            row[~ok] = np.nan
        rows.append(row)
    stack = np.array(rows)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return tokens, np.nanmean(stack, axis=0), np.nanmin(stack, axis=0), np.nanmax(stack, axis=0)


def _loss_limits(values: list[np.ndarray], reference: float, delta: float) -> tuple[float, float]:
    """Show the converged region and some of the recovery; spikes right after removal may run off the top."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values])
    low = float(finite.min())
    span = max(reference - low, 0.05)
    return low - 0.1 * span, reference + max(1.5 * span, 5.0 * delta)


def _gap_limits(size: SizeResult, delta: float) -> tuple[float, float]:
    """The LN-free part of the gap: up to the largest LN-free gap, but no more than 8x the largest plateau
    (or 3 delta), so the plateaus stay readable when a run spikes."""
    free = [s.gap[(s.eval_tokens > s.ln_free_at) & np.isfinite(s.gap)] for rep in size.replicates for s in rep.speeds]
    values = np.concatenate(free + [np.zeros(1)])
    plateaus = [abs(s.recovery.g_inf) for rep in size.replicates for s in rep.speeds
                if math.isfinite(s.recovery.g_inf)]
    cap = max(8.0 * max(plateaus, default=delta), 3.0 * delta)
    high = min(float(values.max()) * 1.08, cap)
    if not high > 0:
        high = 3.0 * delta  # nothing LN-free to show (every run diverged before t_free)
    low = min(float(values.min()) * 1.2, -0.08 * high)
    return low, high


def _mean_fit_curve(size: SizeResult, label: str, grid: np.ndarray) -> np.ndarray:
    """The fitted recovery curves of one speed, averaged over the seeds that have one."""
    curves = [s.recovery.curve(grid) for rep in size.replicates for s in rep.speeds if s.label == label]
    stack = np.array(curves)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(stack, axis=0) if len(stack) else np.full(grid.shape, np.nan)


def loss_curves(study: Study, sizes: list[SizeResult], delta: float, out_dir: str) -> list[str]:
    """Per size: eval loss (top) and gap to the control with the fitted recovery curves (bottom)."""
    n = len(sizes)
    seeds_max = max(len(s.replicates) for s in sizes)
    ncol = min(4, 2 * n) if n > 1 else 2
    legend_rows = math.ceil(11 / ncol)
    width = max(4.4 * n + 0.8, 7.5)
    height = 7.6 + 0.24 * legend_rows
    fig, axes = plt.subplots(2, n, figsize=(width, height), squeeze=False, sharex="col",
                             gridspec_kw={"height_ratios": [1, 1]})
    by_name = {s.name: s for s in study.sizes}
    for col, size in enumerate(sizes):
        runs = by_name[size.name]
        top, bottom = axes[0, col], axes[1, col]
        controls = [(r.control.eval_curve(study.eval_set).tokens, r.control.eval_curve(study.eval_set).loss)
                    for r in runs.replicates]
        ct, cmean, clo, chi = _seed_stack(controls)
        top.fill_between(ct, clo, chi, color="black", alpha=0.12, lw=0)
        top.plot(ct, cmean, color="black", lw=1.8, zorder=5)
        reference = float(np.nanmax(cmean))
        original = size.original_eval_loss.mean
        if not math.isnan(original):
            top.axhline(original, color="tab:gray", ls="--", lw=1.2)
            reference = max(reference, original)
        curves = [cmean]
        colours = _speed_colours(len(size.speeds))
        gap_low, gap_high = _gap_limits(size, delta)
        clipped = False
        for speed, colour in zip(size.speeds, colours):
            first = speed.runs[0]
            start, end = first.window
            if end > start:
                for ax in (top, bottom):
                    ax.axvspan(start, end, color=colour, alpha=0.12, lw=0)
            else:
                for ax in (top, bottom):
                    ax.axvline(start, color=colour, alpha=0.6, lw=1.0, ls="-.")
            loss_runs = [rep.speeds[speed.label].eval_curve(study.eval_set) for rep in runs.replicates
                         if speed.label in rep.speeds]
            lt, lmean, llo, lhi = _seed_stack([(c.tokens, c.loss) for c in loss_runs])
            curves.append(lmean)
            top.fill_between(lt, llo, lhi, color=colour, alpha=0.22, lw=0)
            top.plot(lt, lmean, color=colour, lw=1.3)
            gt, gmean, glo, ghi = _seed_stack([(r.eval_tokens, r.gap) for r in speed.runs])
            t_free = first.ln_free_at
            free = gt > t_free
            bottom.fill_between(gt, glo, ghi, where=free, color=colour, alpha=0.22, lw=0, interpolate=True)
            bottom.plot(gt[free], gmean[free], ls="", marker="o", ms=3.4, color=colour, mec="none", alpha=0.9)
            bottom.plot(gt[~free], gmean[~free], ls="", marker="o", ms=3.4, mfc="none", mec=colour, mew=0.8,
                        alpha=0.8)
            clipped |= bool(np.any(gmean[free & np.isfinite(gmean)] > gap_high))
            if free.any():
                # Solid where there are LN-free evaluations; dashed back to t_free, where A is an extrapolation.
                grid = np.linspace(float(gt[free][0]), float(gt[-1]), 300)
                head = np.linspace(t_free, float(gt[free][0]), 40)[1:]
                bottom.plot(head, _mean_fit_curve(size, speed.label, head), color=colour, lw=1.1, ls="--")
            else:
                grid = np.array([t_free])
            fitted = _mean_fit_curve(size, speed.label, grid)
            r = speed.recovery_tokens
            label = f"{speed.label}: "
            label += (f"R {tokens_text(r.mean)}" if math.isfinite(r.mean) else
                      "not recovered" if not math.isnan(r.mean) else "no fit")
            if math.isfinite(speed.g_inf.mean):
                label += f", g∞ {speed.g_inf.mean:+.3f}"
            if speed.status == "diverged":
                label += " (diverged)"
            bottom.plot(grid, fitted, color=colour, lw=1.6, label=label)
            if math.isfinite(r.mean) and r.mean <= grid[-1] and np.any(np.isfinite(fitted)):
                y = float(np.interp(r.mean, grid, fitted))
                if math.isfinite(r.low):
                    bottom.plot([r.low, r.high], [y, y], color=colour, lw=3.5, alpha=0.45, solid_capstyle="butt")
                bottom.plot([r.mean], [y], marker="v", ms=8, color=colour, mec="black", zorder=7)
            if speed.status == "diverged":
                finite = np.isfinite(lmean)
                if finite.any():
                    last = np.flatnonzero(finite)[-1]
                    top.plot(lt[last], lmean[last], "X", color=colour, ms=9, mec="black")
        low, high = _loss_limits(curves, reference, delta)
        top.set_ylim(low, high)
        peak = max(float(np.max(c[np.isfinite(c)], initial=-np.inf)) for c in curves)
        if peak > high:
            top.text(0.98, 0.97, f"clipped: peak {peak:.2f}", transform=top.transAxes, ha="right", va="top",
                     fontsize=8, color="0.3")
        seeds = len(size.replicates)
        top.set_title(f"{size.name}: N = {tokens_text(size.n_params_nonembed)} non-embedding, "
                      f"{seeds} seed{'s' if seeds != 1 else ''}")
        bottom.axhline(delta, color="black", ls=":", lw=0.9)
        bottom.axhline(0.0, color="black", lw=0.6)
        bottom.set_ylim(gap_low, gap_high)
        bottom.yaxis.set_major_formatter(GAP_AXIS)
        title = "speed (fastest first)" + ("\npoints above the top are clipped" if clipped else "")
        bottom.legend(loc="upper right", framealpha=0.9, title=title, title_fontsize=8)
        g = size.persistent_gap
        bottom.set_title(f"R = {recovery_text(size)}" + (f" ({size.recovery_speed})" if size.recovery_speed else "")
                         + (f",  g∞ = {g.mean:+.3f}" if math.isfinite(g.mean) else ""), fontsize=9.5)
        bottom.set_xlabel("fine-tuning tokens")
        bottom.xaxis.set_major_formatter(TOKENS_AXIS)
        if col == 0:
            top.set_ylabel(f"held-out loss ({study.eval_set}), nats")
            bottom.set_ylabel("gap = LN-free run − control (nats)")
    band = ("band: min–max over the seeds" if seeds_max > 1 else "one seed per size (no seed band)")
    handles = [Line2D([], [], color="black", lw=1.8, label="vanilla control (mean over seeds)"),
               Line2D([], [], color="tab:gray", lw=1.2, ls="--", label="pretrained model, before fine-tuning"),
               Patch(color="0.5", alpha=0.3, label=band),
               Patch(color="0.6", alpha=0.3, label="removal window (shaded per speed)"),
               Line2D([], [], ls="-.", color="0.4", label="all LNs removed at once"),
               Line2D([], [], ls="", marker="o", ms=4, color="0.4",
                      label="gap at an evaluation of the LN-free model (mean over seeds): fitted"),
               Line2D([], [], ls="", marker="o", ms=4, mfc="none", mec="0.4",
                      label="gap while LNs remain (not fitted)"),
               Line2D([], [], color="0.4", lw=1.6,
                      label="fit g∞ + A·exp(−(t − t_free)/τ) (dashed: extrapolated)"),
               Line2D([], [], marker="v", ls="", color="0.5", mec="black", ms=8,
                      label="R = t_free + τ·ln10: 90% of the excess recovered"),
               Line2D([], [], color="black", lw=0.9, ls=":", label=f"δ = {delta:g} (for T_δ)"),
               Line2D([], [], marker="X", ls="", color="0.5", mec="black", label="diverged")]
    fig.legend(handles=handles, loc="lower center", ncol=ncol if n > 1 else 2, frameon=False)
    fig.suptitle(f"{study.name}: LN removal vs vanilla fine-tuning, and the recovery fit (per size)")
    fig.tight_layout(rect=(0, (0.15 + 0.24 * legend_rows) / height, 1, 0.98))
    return _save(fig, out_dir, "loss_curves")


def _seed_errorbars(ax, x: np.ndarray, values: list[Interval], fit_se: list[float], colour, label: str) -> None:
    """Bars: the between-seed interval; for a size with one seed, thin grey bars of +-2 standard errors of
    its recovery fit instead (evaluation noise only: seed noise is not measured there)."""
    y = np.array([v.mean for v in values])
    lo = np.array([v.low for v in values])
    hi = np.array([v.high for v in values])
    have = np.isfinite(lo)
    if have.any():
        ax.errorbar(x[have], y[have], yerr=[y[have] - lo[have], hi[have] - y[have]], fmt="o", color=colour, ms=6,
                    capsize=4, label=label + f", {LEVEL:.0%} interval over seeds")
    if (~have).any():
        se = np.array(fit_se)[~have]
        yl = y[~have]
        err = np.array([np.minimum(2 * se, yl - 1e-12 * np.abs(yl)) if np.all(yl > 0) else 2 * se, 2 * se])
        err = np.where(np.isfinite(err), err, 0.0)
        ax.errorbar(x[~have], yl, yerr=err, fmt="o", color=colour, ms=6, ecolor="0.55", elinewidth=1.0, capsize=2.5,
                    label=label + " (one seed; bars ±2 s.e. of its fit)")


def _fit_line(ax, fit: PowerLawFit, n_all: np.ndarray, what: str) -> None:
    if fit.exponent is None:
        return
    grid = np.geomspace(n_all.min() / 1.3, n_all.max() * 1.3, 100)
    interval = f" [{fit.ci_low:.2f}, {fit.ci_high:.2f}]" if fit.ci_low is not None else " (no interval)"
    if fit.ci_low is not None:
        lower, upper = fit.band(grid)
        ax.fill_between(grid, lower, upper, color="tab:blue", alpha=0.16, lw=0, label=f"{LEVEL:.0%} bootstrap band")
    ax.plot(grid, fit.prefactor * grid**fit.exponent, color="tab:blue", lw=1.8,
            label=f"fit {what} = a·N^b, b = {fit.exponent:.2f}{interval}")
    pivot = math.exp(fit.x_mean)
    ax.plot(grid, fit.prefactor * pivot**fit.exponent * (grid / pivot), color="0.4", ls=":", lw=1.2,
            label="slope 1 (tokens ∝ N), for comparison")


def _fit_title(fit: PowerLawFit) -> str:
    if fit.exponent is None:
        return "no fit: " + fit.verdict_reason
    if fit.ci_low is None:
        return f"b = {fit.exponent:.2f}, no interval: {fit.verdict}"
    return f"b = {fit.exponent:.2f}, {LEVEL:.0%} CI [{fit.ci_low:.2f}, {fit.ci_high:.2f}]: {fit.verdict}"


def _log_token_axes(ax, xlabel: str, ylabel: str, n_params: np.ndarray, tokens: list[float]) -> None:
    """Log-log axes framed on the sizes and their token counts: a wide bootstrap band runs off the frame
    rather than squashing the points into a sliver."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(float(n_params.min()) / 1.45, float(n_params.max()) * 1.6)
    finite = [t for t in tokens if math.isfinite(t) and t > 0]
    if finite:
        low, high = min(finite) / 2.5, max(finite) * 2.5
        ax.set_ylim(low, high)
        _log_ticks(ax.yaxis, TOKENS_AXIS, math.log10(high / low))
    else:
        _log_ticks(ax.yaxis, TOKENS_AXIS, 3.0)
    _log_ticks(ax.xaxis, TOKENS_AXIS, math.log10(ax.get_xlim()[1] / ax.get_xlim()[0]))


def _unique_legend(ax, loc: str) -> None:
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), loc=loc, framealpha=0.9)


def _recovery_panel(ax, sizes: list[SizeResult], fit: PowerLawFit) -> None:
    n_all = np.array([s.n_params_nonembed for s in sizes], dtype=np.float64)
    _fit_line(ax, fit, n_all, "R")
    finite = [s for s in sizes if math.isfinite(s.recovery_tokens.mean)]
    x = np.array([s.n_params_nonembed for s in finite], dtype=np.float64)
    for s, xi in zip(finite, x):
        per_seed = [r.recovery_fit.recovery_tokens for r in s.replicates]
        if len(per_seed) > 1:
            ax.plot([xi] * len(per_seed), per_seed, ls="", marker=".", color="0.45", ms=5, zorder=4,
                    label="one seed's R")
    _seed_errorbars(ax, x, [s.recovery_tokens for s in finite],
                    [s.replicates[0].recovery_fit.recovery_tokens_se for s in finite], "black",
                    "R (geometric mean over seeds)")
    for s, xi in zip(finite, x):
        ax.annotate(s.name, (xi, s.recovery_tokens.mean), xytext=(7, -12), textcoords="offset points", fontsize=8.5)
    for s in sizes:
        if math.isinf(s.recovery_tokens.mean) and math.isfinite(s.recovery_lower_bound):
            xi, bound = s.n_params_nonembed, s.recovery_lower_bound
            ax.annotate("", xy=(xi, bound * 1.8), xytext=(xi, bound),
                        arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 1.5})
            ax.plot([xi], [bound], marker="_", color="tab:red", ms=14, mew=2.5, ls="",
                    label="not recovered: R above its run")
            ax.annotate(s.name, (xi, bound), xytext=(7, -12), textcoords="offset points", fontsize=8.5)
    shown = [v for s in finite for v in (s.recovery_tokens.low, s.recovery_tokens.high, s.recovery_tokens.mean)]
    shown += [s.recovery_lower_bound * 1.8 for s in sizes if math.isinf(s.recovery_tokens.mean)]
    _log_token_axes(ax, "N = non-embedding parameters", "R: fine-tuning tokens until 90% recovered", n_all, shown)
    ax.set_title("Recovery tokens R per size (primary measure)\n" + _fit_title(fit))
    _unique_legend(ax, "upper left")


def _plateau_panel(ax, sizes: list[SizeResult], delta: float, sanity: DeltaCheck) -> None:
    x = np.array([s.n_params_nonembed for s in sizes], dtype=np.float64)
    have = [i for i, s in enumerate(sizes) if math.isfinite(s.persistent_gap.mean)]
    _seed_errorbars(ax, x[have], [sizes[i].persistent_gap for i in have],
                    [sizes[i].replicates[0].recovery_fit.g_inf_se for i in have], "tab:purple",
                    "g∞ of the speed with the smallest R")
    noise = {c.name: c.noise for c in sanity.sizes}
    for i in have:
        s = sizes[i]
        ax.annotate(s.name, (x[i], s.persistent_gap.mean), xytext=(7, -4), textcoords="offset points", fontsize=8.5)
        if math.isfinite(noise.get(s.name, math.nan)):
            ax.plot([x[i]] * 2, [delta - noise[s.name], delta], color="tab:red", lw=5, alpha=0.25,
                    solid_capstyle="butt", label="δ − noise … δ: a plateau here makes T_δ ill-posed")
    ax.axhline(delta, color="black", ls=":", lw=1.0, label=f"δ = {delta:g}")
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlim(float(x.min()) / 1.45, float(x.max()) * 1.6)
    _log_ticks(ax.xaxis, TOKENS_AXIS)
    ax.yaxis.set_major_formatter(GAP_AXIS)
    ax.set_xlabel("N = non-embedding parameters")
    ax.set_ylabel("persistent gap g∞ (nats above the control)")
    ax.set_title("Persistent gap per size\n" + ("T_δ ill-posed: some plateau within noise of δ" if sanity.ill_posed
                                                 else "δ clears every plateau by more than its noise"))
    top = max([sizes[i].persistent_gap.high if math.isfinite(sizes[i].persistent_gap.high)
               else sizes[i].persistent_gap.mean for i in have] + [delta])
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), top * 1.35)
    _unique_legend(ax, "upper left")


def scaling(sizes: list[SizeResult], fits: dict[str, PowerLawFit], delta: float, sanity: DeltaCheck,
            out_dir: str) -> list[str]:
    """scaling: R per size with its fit (primary) and g_inf per size; scaling_t_delta: the T_delta view."""
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 5.4), gridspec_kw={"width_ratios": [1.35, 1]})
    _recovery_panel(axes[0], sizes, fits["recovery"])
    _plateau_panel(axes[1], sizes, delta, sanity)
    seeds = sorted({len(s.replicates) for s in sizes})
    per = "/".join(map(str, seeds))
    fig.suptitle("How the tokens to recover from LayerNorm removal scale with model size "
                 f"({per} seed{'s' if seeds != [1] else ''} per size)")
    fig.tight_layout()
    paths = _save(fig, out_dir, "scaling")
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 5.0))
    _t_delta_panel(axes[0], sizes, fits["t_delta"], "n_params_nonembed", "non-embedding parameters")
    _t_delta_panel(axes[1], sizes, fits["t_delta_total"], "n_params_total", "total parameters")
    title = f"Secondary view: tokens until the gap stays within δ = {delta:g} nats (T_δ), tokens = a·N^b"
    if sanity.ill_posed:
        title += "\nILL-POSED at this δ: a plateau lies within noise of δ, so evaluation noise decides T_δ"
    fig.suptitle(title, color="tab:red" if sanity.ill_posed else "black")
    fig.tight_layout()
    return paths + _save(fig, out_dir, "scaling_t_delta")


def _t_delta_panel(ax, sizes: list[SizeResult], fit: PowerLawFit, attr: str, label: str) -> None:
    n_all = np.array([getattr(s, attr) for s in sizes], dtype=np.float64)
    reached = [s for s in sizes if math.isfinite(s.tokens_needed.estimate)]
    _fit_line(ax, fit, n_all, "T_δ")
    if reached:
        x = np.array([getattr(s, attr) for s in reached], dtype=np.float64)
        y = np.array([s.tokens_needed.estimate for s in reached])
        err = np.array([[s.tokens_needed.estimate - s.tokens_needed.low for s in reached],
                        [s.tokens_needed.high - s.tokens_needed.estimate for s in reached]])
        ax.errorbar(x, y, yerr=err, fmt="o", color="black", ms=6, capsize=4,
                    label="T_δ with its evaluation bracket")
        for s, xi, yi in zip(reached, x, y):
            ax.annotate(s.name, (xi, yi), xytext=(6, -12), textcoords="offset points", fontsize=9)
    for s in sizes:
        if math.isfinite(s.tokens_needed.estimate):
            continue
        bound = s.tokens_needed.low
        if math.isfinite(bound):
            ax.annotate("", xy=(getattr(s, attr), bound * 1.8), xytext=(getattr(s, attr), bound),
                        arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 1.5})
            ax.plot([getattr(s, attr)], [bound], marker="_", color="tab:red", ms=14, mew=2.5, ls="",
                    label="never within δ: needs more than its run")
            ax.annotate(s.name, (getattr(s, attr), bound), xytext=(6, -12), textcoords="offset points", fontsize=9)
    shown = [v for s in reached for v in (s.tokens_needed.low, s.tokens_needed.high)]
    shown += [s.tokens_needed.low * 1.8 for s in sizes if not math.isfinite(s.tokens_needed.estimate)]
    _log_token_axes(ax, label, "T_δ: fine-tuning tokens until within δ", n_all, shown)
    ax.set_title(f"N = {label}\n" + _fit_title(fit))
    _unique_legend(ax, "upper left")


LN_KINDS = (("ln_1.v", "Blues", "ln_1 (V path)"), ("ln_1", "Greens", "ln_1 (Q/K path)"),
            ("ln_2", "Oranges", "ln_2"), ("ln_f", "Reds", "ln_f"))


def _ln_style(name: str, n_layer: int):
    layer = int(name.split(".")[1]) if name.startswith("h.") else n_layer - 1
    for suffix, cmap, _ in LN_KINDS:
        if name.endswith(suffix):
            shade = 0.4 + 0.5 * layer / max(n_layer - 1, 1) if suffix != "ln_f" else 0.8
            return plt.get_cmap(cmap)(shade), ("--" if suffix == "ln_1.v" else "-")
    return "0.3", "-"


def sigma_trajectories(study: Study, sizes: list[SizeResult], out_dir: str) -> list[str]:
    """One figure per size, one panel per speed: sigma of every LN column; dots where a path turns fake."""
    paths = []
    by_name = {s.name: s for s in study.sizes}
    for size in sizes:
        replicate = by_name[size.name].replicates[0]  # sigma is a mechanism check: one seed shows it
        first = size.replicates[0]
        n = len(first.speeds)
        fig, axes = plt.subplots(1, n, figsize=(4.4 * n + 1.8, 4.6), squeeze=False, sharey=True)
        for ax, speed in zip(axes[0], first.speeds):
            run = replicate.speeds[speed.label]
            sig = run.sigmas
            for j, name in enumerate(sig.names):
                colour, style = _ln_style(name, run.n_layer)
                ax.plot(sig.tokens, sig.sigma[:, j], color=colour, ls=style, lw=1.2)
                turned = np.flatnonzero(sig.fake[:, j])
                if len(turned):
                    k = turned[0]
                    ax.plot(sig.tokens[k], sig.sigma[k, j], "o", color=colour, mec="black", ms=5, zorder=5)
            start, end = speed.window
            if end > start:
                ax.axvspan(start, end, color="0.5", alpha=0.12, lw=0)
            else:
                ax.axvline(start, color="0.5", ls="-.", lw=1.0)
            title = f"{speed.label}" + (" (diverged)" if speed.diverged else "")
            ax.set_title(title)
            ax.set_yscale("log")
            _log_ticks(ax.yaxis, PLAIN_AXIS)
            ax.set_xlabel("fine-tuning tokens")
            ax.xaxis.set_major_formatter(TOKENS_AXIS)
        axes[0, 0].set_ylabel("σ (running estimate; frozen once fake)")
        handles = [Line2D([], [], color=plt.get_cmap(c)(0.75), ls="--" if s == "ln_1.v" else "-", label=lab)
                   for s, c, lab in LN_KINDS]
        handles += [Line2D([], [], marker="o", ls="", color="0.6", mec="black", label="path turns fake"),
                    Patch(color="0.5", alpha=0.25, label="removal window")]
        fig.legend(handles=handles, loc="center right", frameon=False, title="darker = later layer")
        which = f", seed {first.seed}" if first.seed is not None else ""
        fig.suptitle(f"{study.name}, size {size.name}{which}: σ of each LayerNorm during removal")
        fig.tight_layout(rect=(0, 0, 1 - 1.7 / (4.4 * n + 1.8), 1))
        paths += _save(fig, out_dir, f"sigma_{size.name}")
    return paths
