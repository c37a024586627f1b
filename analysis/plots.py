"""Figures, each saved as PNG and SVG: loss and gap curves per size, the log-log scaling plot, and sigma
trajectories per LN. Saving is deterministic (no dates, fixed SVG ids) so reruns give identical files."""
from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from .report import needed_text, tokens_text  # noqa: E402
from .scaling_fit import LEVEL, PowerLawFit  # noqa: E402
from .study import Study  # noqa: E402
from .tokens_needed import SizeResult  # noqa: E402

plt.rcParams.update({
    "svg.hashsalt": "lnfree-analysis",
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
})
TOKENS_AXIS = FuncFormatter(lambda v, _: tokens_text(v) if v >= 0 else "")
PLAIN_AXIS = FuncFormatter(lambda v, _: f"{v:g}")


def _log_ticks(axis, formatter) -> None:
    """Ticks at 1, 2, 5 times powers of ten: a log axis spanning one decade still gets labels."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
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


def _loss_limits(values: list[np.ndarray], reference: float, delta: float) -> tuple[float, float]:
    """Show the converged region and some of the recovery; spikes right after removal may run off the top."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values])
    low = float(finite.min())
    span = max(reference - low, 0.05)
    return low - 0.1 * span, reference + max(1.5 * span, 5.0 * delta)


def loss_curves(study: Study, sizes: list[SizeResult], delta: float, out_dir: str) -> list[str]:
    """Per size: eval loss (top) and gap to the control (bottom) against fine-tuning tokens."""
    n = len(sizes)
    ncol = min(7, 2 * n)
    legend_rows = math.ceil(7 / ncol)
    height = 7.0 + 0.22 * legend_rows
    fig, axes = plt.subplots(2, n, figsize=(max(4.3 * n + 0.6, 6.5), height), squeeze=False, sharex="col",
                             gridspec_kw={"height_ratios": [3, 2]})
    by_name = {s.name: s for s in study.sizes}
    for col, size in enumerate(sizes):
        runs = by_name[size.name]
        top, bottom = axes[0, col], axes[1, col]
        control = runs.control.eval_curve(study.eval_set)
        top.plot(control.tokens, control.loss, color="black", lw=1.8, zorder=5)
        top.plot(control.tokens, control.loss + delta, color="black", lw=0.9, ls=":")
        reference = float(control.loss.max())
        if size.original_eval_loss is not None:
            top.axhline(size.original_eval_loss, color="tab:gray", ls="--", lw=1.2)
            reference = max(reference, size.original_eval_loss)
        curves = [control.loss]
        colours = _speed_colours(len(size.speeds))
        for speed, colour in zip(size.speeds, colours):
            curve = runs.speeds[speed.label].eval_curve(study.eval_set)
            curves.append(curve.loss)
            start, end = speed.window
            if end > start:
                for ax in (top, bottom):
                    ax.axvspan(start, end, color=colour, alpha=0.13, lw=0)
            else:
                for ax in (top, bottom):
                    ax.axvline(start, color=colour, alpha=0.6, lw=1.0, ls="-.")
            label = (f"{speed.label}: removal {tokens_text(start)}–{tokens_text(end)}" if end > start else
                     f"{speed.label}: all LNs at {tokens_text(start)}")
            if speed.diverged:
                label += " (diverged)"
            elif not math.isfinite(speed.t_delta.estimate):
                label += " (never within δ)"
            finite = np.isfinite(curve.loss)
            top.plot(curve.tokens[finite], curve.loss[finite], color=colour, lw=1.4, marker=".", ms=3)
            bottom.plot(speed.eval_tokens, speed.gap, color=colour, lw=1.4, marker=".", ms=3, label=label)
            if speed.diverged and finite.any():
                last = np.flatnonzero(finite)[-1]
                top.plot(curve.tokens[last], curve.loss[last], "X", color=colour, ms=9, mec="black")
            t = speed.t_delta.estimate
            if math.isfinite(t):
                bottom.plot([speed.t_delta.low, speed.t_delta.high], [delta, delta], color=colour, lw=4,
                            alpha=0.55, solid_capstyle="butt", zorder=6)
                bottom.plot([t], [delta], marker="v", color=colour, ms=9, mec="black", zorder=7)
        low, high = _loss_limits(curves, reference, delta)
        top.set_ylim(low, high)
        peak = max(float(np.max(c[np.isfinite(c)], initial=-np.inf)) for c in curves)
        if peak > high:
            top.text(0.98, 0.97, f"clipped: peak {peak:.2f}", transform=top.transAxes, ha="right", va="top",
                     fontsize=8, color="0.3")
        top.set_title(f"{size.name}  (N = {tokens_text(size.n_params_nonembed)} non-emb.)")
        bottom.axhline(delta, color="black", ls=":", lw=0.9)
        bottom.axhline(0.0, color="black", lw=0.6)
        bottom.set_yscale("symlog", linthresh=delta, linscale=1.5)
        gaps = np.concatenate([s.gap[np.isfinite(s.gap)] for s in size.speeds] + [np.zeros(1)])
        bottom.set_ylim(min(float(gaps.min()) * 1.3, -0.3 * delta), max(float(gaps.max()) * 1.5, 3 * delta))
        bottom.yaxis.set_major_formatter(PLAIN_AXIS)
        bottom.legend(loc="best", framealpha=0.9, title="speed (fastest first)", title_fontsize=8)
        bottom.set_title(f"tokens needed: {needed_text(size)}" + (f" ({size.best_speed})" if size.best_speed else ""),
                         fontsize=10)
        bottom.set_xlabel("fine-tuning tokens")
        bottom.xaxis.set_major_formatter(TOKENS_AXIS)
        if col == 0:
            top.set_ylabel(f"eval loss ({study.eval_set})")
            bottom.set_ylabel("gap to control (nats, symlog)")
    handles = [Line2D([], [], color="black", lw=1.8, label="vanilla control"),
               Line2D([], [], color="black", lw=0.9, ls=":", label="control + δ / δ"),
               Line2D([], [], color="tab:gray", lw=1.2, ls="--", label="original model (before fine-tuning)"),
               Patch(color="0.6", alpha=0.35, label="removal window (shaded per speed)"),
               Line2D([], [], ls="-.", color="0.4", label="window of zero length (all LNs at once)"),
               Line2D([], [], marker="v", lw=4, color="0.5", mec="black", alpha=0.8,
                      label="T_δ (gap stays ≤ δ from here) and its bracket"),
               Line2D([], [], marker="X", ls="", color="0.5", mec="black", label="diverged")]
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False)
    fig.suptitle(f"{study.name}: LN removal vs vanilla fine-tuning (δ = {delta:g} nats)")
    fig.tight_layout(rect=(0, (0.1 + 0.22 * legend_rows) / height, 1, 0.98))
    return _save(fig, out_dir, "loss_curves")


def _scaling_panel(ax, sizes: list[SizeResult], fit: PowerLawFit, attr: str, label: str) -> None:
    n_all = np.array([getattr(s, attr) for s in sizes], dtype=np.float64)
    reached = [s for s in sizes if math.isfinite(s.tokens_needed.estimate)]
    if fit.exponent is not None:
        grid = np.geomspace(n_all.min() / 1.3, n_all.max() * 1.3, 100)
        line = fit.prefactor * grid**fit.exponent
        lower, upper = fit.band(grid)
        ax.fill_between(grid, lower, upper, color="tab:blue", alpha=0.18, lw=0, label=f"{LEVEL:.0%} band")
        ax.plot(grid, line, color="tab:blue", lw=1.8,
                label=f"fit: b = {fit.exponent:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]")
        pivot = math.exp(fit.x_mean)
        ax.plot(grid, fit.prefactor * pivot**fit.exponent * (grid / pivot), color="0.4", ls=":", lw=1.2,
                label="slope 1 (tokens ∝ N)")
    if reached:
        x = np.array([getattr(s, attr) for s in reached], dtype=np.float64)
        y = np.array([s.tokens_needed.estimate for s in reached])
        err = np.array([[s.tokens_needed.estimate - s.tokens_needed.low for s in reached],
                        [s.tokens_needed.high - s.tokens_needed.estimate for s in reached]])
        ax.errorbar(x, y, yerr=err, fmt="o", color="black", ms=6, capsize=4, label="tokens needed [low, high]")
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
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("fine-tuning tokens needed")
    _log_ticks(ax.yaxis, TOKENS_AXIS)
    _log_ticks(ax.xaxis, TOKENS_AXIS)
    title = f"N = {label}\n"
    title += (f"b = {fit.exponent:.2f}, {LEVEL:.0%} CI [{fit.ci_low:.2f}, {fit.ci_high:.2f}]: {fit.verdict}"
              if fit.exponent is not None else "no fit: " + fit.verdict_reason)
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), loc="upper left", framealpha=0.9)


def scaling(sizes: list[SizeResult], fit: PowerLawFit, fit_total: PowerLawFit, delta: float, out_dir: str) -> list[str]:
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 5.0))
    _scaling_panel(axes[0], sizes, fit, "n_params_nonembed", "non-embedding parameters")
    _scaling_panel(axes[1], sizes, fit_total, "n_params_total", "total parameters")
    fig.suptitle(f"Tokens needed to stay within δ = {delta:g} nats of the vanilla control: tokens = a·N^b")
    fig.tight_layout()
    return _save(fig, out_dir, "scaling")


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
        runs = by_name[size.name]
        n = len(size.speeds)
        fig, axes = plt.subplots(1, n, figsize=(4.4 * n + 1.8, 4.6), squeeze=False, sharey=True)
        for ax, speed in zip(axes[0], size.speeds):
            run = runs.speeds[speed.label]
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
        fig.suptitle(f"{study.name}, size {size.name}: σ of each LayerNorm during removal")
        fig.tight_layout(rect=(0, 0, 1 - 1.7 / (4.4 * n + 1.8), 1))
        paths += _save(fig, out_dir, f"sigma_{size.name}")
    return paths
