"""Synthetic study folders for the analysis tests: run.h5 files written with h5py exactly as
docs/run-log.md (schema version 1) lays them out, with a planted tokens-needed per size.

Curves: the control's eval loss decays smoothly. A removal run equals the control until its first
removal event; the gap then climbs to `jump` by the end of the removal window and decays
exponentially to `floor` * delta, crossing delta exactly at the planted T. Because the evaluations are
discrete, the analysis sees the crossing only within one evaluation interval. After the window the
gap is exactly g_inf + A exp(-(t - t_free)/tau), so the planted recovery tokens are
R = t_free + tau ln 10 (planted_recovery).

Seeds (make_study(seeds=[...])): the seed layout runs/<size>/seed-<v>/..., each seed with its own
planted T scaled by exp(seed_scatter * z) and its own plateau shifted by plateau_scatter * z (z
standard normal, drawn from the seed and the size so that the files are the same every time), and
optionally eval noise on the removal runs' losses.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

import h5py
import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

EVAL_SET = "synthetic.val"
STRING16 = h5py.string_dtype("utf-8", 16)
STRING1024 = h5py.string_dtype("utf-8", 1024)


# ---------------------------------------------------------------------------------------------
# run.h5 writer (docs/run-log.md)

def _table(group: h5py.Group, name: str, values: np.ndarray, dtype) -> None:
    values = np.asarray(values, dtype=dtype)
    rows = values.shape[0]
    group.create_dataset(name, data=values, maxshape=(None, *values.shape[1:]),
                         chunks=(max(1, min(1024, rows if rows else 1)), *values.shape[1:]))


def write_run_h5(path: str, *, mode: str, n_layer: int, params_total: int, params_non_embedding: int,
                 config: str, train: dict, evals: dict, events: list, ln_names: list[str], sigma: np.ndarray,
                 fake: np.ndarray, ln_steps: np.ndarray, status: str | None, message: str = "") -> None:
    """events: (step, tokens, kind, layer) tuples; evals: set -> (step, tokens, loss); status None = no /status."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["schema_version"] = np.int64(1)
        f.attrs["config"] = config
        f.attrs["mode"] = mode
        f.attrs["n_layer"] = np.int64(n_layer)
        f.attrs["n_embd"] = np.int64(64)
        f.attrs["n_head"] = np.int64(2)
        f.attrs["params_total"] = np.int64(params_total)
        f.attrs["params_non_embedding"] = np.int64(params_non_embedding)
        f.attrs["lnfree_version"] = "0.1.0"
        f.attrs["git_commit"] = "synthetic"
        f.attrs["seed"] = np.int64(1)
        g = f.create_group("train")
        for name in ("step", "tokens"):
            _table(g, name, train[name], np.int64)
        for name in ("loss", "ce_loss", "aux_loss", "lr", "grad_norm", "tokens_per_s"):
            _table(g, name, train.get(name, np.zeros(len(train["step"]))), np.float64)
        ev = f.create_group("eval")
        for set_name, (steps, tokens, loss) in evals.items():
            s = ev.create_group(set_name)
            _table(s, "step", steps, np.int64)
            _table(s, "tokens", tokens, np.int64)
            _table(s, "loss", loss, np.float64)
        e = f.create_group("events")
        _table(e, "step", [x[0] for x in events], np.int64)
        _table(e, "tokens", [x[1] for x in events], np.int64)
        _table(e, "kind", [x[2].encode() for x in events], STRING16)
        _table(e, "layer", [x[3] for x in events], np.int64)
        ln = f.create_group("ln")
        ln.attrs["names"] = np.array(ln_names, dtype=h5py.string_dtype("utf-8"))
        _table(ln, "step", ln_steps, np.int64)
        _table(ln, "sigma", np.asarray(sigma, np.float64).reshape(len(ln_steps), len(ln_names)), np.float64)
        _table(ln, "fake", np.asarray(fake, np.int8).reshape(len(ln_steps), len(ln_names), 2), np.int8)
        ln["fake"].attrs["paths"] = np.array(["main", "v"], dtype=h5py.string_dtype("utf-8"))
        if status is not None:
            f.create_dataset("status", data=status.encode(), dtype=STRING16)
            f.create_dataset("status_message", data=message.encode()[:1024], dtype=STRING1024)


# ---------------------------------------------------------------------------------------------
# Study generator

@dataclasses.dataclass
class SizeSpec:
    name: str
    n_layer: int
    n_nonembed: int
    n_total: int
    t_needed: float  # planted T_delta of the fastest speed (the best one)


@dataclasses.dataclass
class SpeedSpec:
    label: str
    gap: int  # schedule gap g in steps (0 = every LN at once)
    slowdown: float = 1.0  # T_delta of this speed = slowdown * planted (and after its removal window)
    diverge: bool = False
    never_within: bool = False  # the gap is still above delta when the run ends


TOKENS_PER_STEP = 1024
START_STEP = 10
DEFAULT_SPEEDS = (SpeedSpec("g0", 0), SpeedSpec("g2", 2, 1.25), SpeedSpec("g8", 8, 1.6))


def ln_columns(n_layer: int) -> list[str]:
    names = []
    for i in range(n_layer):
        names += [f"h.{i}.ln_1", f"h.{i}.ln_1.v", f"h.{i}.ln_2"]
    return names + ["ln_f"]


def schedule_events(n_layer: int, g: int) -> list[tuple[int, str, int]]:
    """(step, kind, layer): ln2 per layer, then ln_1's QK and V together, then ln_f (tiny-feasibility.md)."""
    events = [(START_STEP + i * g, "ln2", i) for i in range(n_layer)]
    events += [(START_STEP + (n_layer + i) * g, kind, i) for i in range(n_layer) for kind in ("ln1qk", "ln1v")]
    events.append((START_STEP + 2 * n_layer * g, "lnf", -1))
    order = {"ln2": 0, "ln1qk": 1, "ln1v": 2, "lnf": 3}
    return sorted(events, key=lambda e: (e[0], order[e[1]], e[2]))


def config_toml(mode: str, steps: int, n_layer: int, g: int | None) -> str:
    text = (f'[run]\nmode = "{mode}"\nseed = 1\ninit = "synthetic"\n\n[data]\ntrain = "x/manifest.json"\n'
            f"seq_len = 128\nmicro_batch = 8\ntokens_per_step = {TOKENS_PER_STEP}\nsteps = {steps}\n\n"
            f"[optim]\nlr = 0.003\n\n[eval]\ninterval = 4\n")
    if g is not None:
        text += (f"\n[schedule.ln2]\nstart = {START_STEP}\ngap = {g}\n\n[schedule.ln1qk]\nstart = "
                 f"{START_STEP + n_layer * g}\ngap = {g}\n\n[schedule.ln1v]\nstart = {START_STEP + n_layer * g}\n"
                 f"gap = {g}\n\n[schedule.lnf]\nstart = {START_STEP + 2 * n_layer * g}\n")
    return text


def control_loss(tokens: np.ndarray) -> np.ndarray:
    return 5.0 + 0.4 * np.exp(-np.asarray(tokens, np.float64) / 40_000.0)


def planted_tau(window: tuple[float, float], t_cross: float, delta: float, jump: float = 1.5,
                floor: float = 0.3) -> float:
    """The decay constant that takes the gap from jump at the window's end through delta at t_cross."""
    floor_gap = floor * delta
    return (t_cross - window[1]) / math.log((jump - floor_gap) / (delta - floor_gap))


def planted_gap(tokens: np.ndarray, window: tuple[float, float], t_cross: float, delta: float,
                jump: float = 1.5, floor: float = 0.3) -> np.ndarray:
    """0 before the window, rising to `jump` across it, then decaying to floor*delta through delta at t_cross."""
    t = np.asarray(tokens, np.float64)
    w0, w1 = window
    floor_gap = floor * delta
    tau = planted_tau(window, t_cross, delta, jump, floor)
    rising = jump * np.clip((t - w0) / max(w1 - w0, 1.0), 0.0, 1.0) if w1 > w0 else np.where(t > w0, jump, 0.0)
    decaying = floor_gap + (jump - floor_gap) * np.exp(-(t - w1) / tau)
    return np.where(t <= w0, 0.0, np.where(t <= w1, rising, decaying))


def _steps_for(size: SizeSpec, speeds: list[SpeedSpec], eval_every: int) -> int:
    slowest = max([s.slowdown for s in speeds if not s.never_within] or [1.0])
    last_window = max(START_STEP + 2 * size.n_layer * s.gap for s in speeds)
    steps = int(math.ceil(max(2.2 * slowest * size.t_needed / TOKENS_PER_STEP, 1.5 * last_window + 20)))
    return steps + (-steps) % eval_every


def removal_window(size: SizeSpec, speed: SpeedSpec) -> tuple[float, float]:
    return (START_STEP * TOKENS_PER_STEP, (START_STEP + 2 * size.n_layer * speed.gap) * TOKENS_PER_STEP)


def crossing(size: SizeSpec, speed: SpeedSpec, steps: int) -> float:
    """The planted T_delta of one speed."""
    window = removal_window(size, speed)
    if speed.never_within:
        return 3.0 * steps * TOKENS_PER_STEP
    return max(speed.slowdown * size.t_needed, window[1] + 0.15 * size.t_needed)


def planted_recovery(size: SizeSpec, speed: SpeedSpec, delta: float, floor: float = 0.3) -> tuple[float, float, float]:
    """(g_inf, tau, R) that the analysis should find for one speed of a noise-free synthetic run."""
    window = removal_window(size, speed)
    tau = planted_tau(window, crossing(size, speed, 0), delta, floor=floor)
    return floor * delta, tau, window[1] + math.log(10.0) * tau


def write_run(path: str, size: SizeSpec, mode: str, steps: int, eval_every: int, delta: float,
              speed: SpeedSpec | None, status: str = "complete", floor: float = 0.3, eval_noise: float = 0.0,
              noise_seed: tuple = (0,), full_set: bool = False) -> None:
    n_layer = size.n_layer
    names = ln_columns(n_layer)
    events = schedule_events(n_layer, speed.gap) if speed else []
    planned_steps, diverge_step = steps, None
    if speed and speed.diverge:
        diverge_step = START_STEP + 2 * n_layer * speed.gap - 1  # blows up during removal, before ln_f
        events = [e for e in events if e[0] <= diverge_step]
        steps = diverge_step + 1
    step = np.arange(steps, dtype=np.int64)
    tokens = (step + 1) * TOKENS_PER_STEP
    eval_steps = np.arange(eval_every, steps + 1, eval_every, dtype=np.int64)
    if len(eval_steps) == 0 or eval_steps[-1] != steps:
        eval_steps = np.append(eval_steps, steps)
    eval_tokens = eval_steps * TOKENS_PER_STEP
    loss = control_loss(eval_tokens)
    train_loss = control_loss(tokens) + 0.2
    if speed:
        window = removal_window(size, speed)
        t_cross = crossing(size, speed, steps)
        loss = loss + planted_gap(eval_tokens, window, t_cross, delta, floor=floor)
        train_loss = train_loss + planted_gap(tokens, window, t_cross, delta, floor=floor)
        if eval_noise > 0:
            loss = loss + eval_noise * np.random.default_rng(list(noise_seed)).standard_normal(len(loss))
        if diverge_step is not None:
            loss[-1], train_loss[-1] = np.nan, np.nan
    evals = {EVAL_SET: (eval_steps, eval_tokens, loss)}
    if full_set and diverge_step is None:
        # The whole held-out split, once at the last step: a little harder than the subset.
        evals[EVAL_SET + ".full"] = (eval_steps[-1:], eval_tokens[-1:], loss[-1:] + 0.02)
    fired = np.zeros((steps, len(names), 2), np.int8)
    for ev_step, kind, layer in events:
        for j, name in enumerate(names):
            target = (kind == "lnf" and name == "ln_f") or (
                name.startswith(f"h.{layer}.") and {"ln2": name.endswith("ln_2"), "ln1qk": name.endswith("ln_1"),
                                                    "ln1v": ".ln_1" in name}.get(kind, False))
            if target:
                path_index = 1 if kind == "ln1v" else 0
                fired[step >= ev_step, j, path_index] = 1
                if kind == "ln1v" and name.endswith(".v"):
                    fired[step >= ev_step, j, 0] = 1
    base = np.array([0.2 + 0.5 * j for j in range(len(names))])
    sigma = base[None, :] * (1.0 + 0.3 * np.sqrt(step[:, None] / max(steps, 1)))
    for j in range(len(names)):
        column_fake = fired[:, j, 1 if names[j].endswith(".v") else 0]
        if column_fake.any():
            first = int(np.argmax(column_fake))
            sigma[first:, j] = sigma[first, j]
    write_run_h5(
        path, mode=mode, n_layer=n_layer, params_total=size.n_total, params_non_embedding=size.n_nonembed,
        config=config_toml(mode, planned_steps, n_layer, speed.gap if speed else None),
        train={"step": step, "tokens": tokens, "loss": train_loss, "ce_loss": train_loss},
        evals=evals,
        events=[(s, s * TOKENS_PER_STEP, k, layer) for s, k, layer in events],
        ln_names=names, sigma=sigma, fake=fired, ln_steps=step,
        status="diverged" if diverge_step is not None and status == "complete" else status,
        message="synthetic run")


def _seed_normal(seed: int, size_index: int, what: int) -> float:
    return float(np.random.default_rng([seed, size_index, what]).standard_normal())


def seed_variant(size: SizeSpec, index: int, seed: int | None, seed_scatter: float) -> SizeSpec:
    """The size as one seed sees it: its planted T scaled by exp(seed_scatter * z)."""
    if seed is None or seed_scatter == 0:
        return size
    return dataclasses.replace(size, t_needed=size.t_needed * math.exp(seed_scatter * _seed_normal(seed, index, 0)))


def seed_floor(index: int, seed: int | None, floor: float, plateau_scatter: float, delta: float) -> float:
    """The plateau (as a fraction of delta) of one seed: floor + plateau_scatter * z nats."""
    if seed is None or plateau_scatter == 0:
        return floor
    return floor + plateau_scatter * _seed_normal(seed, index, 1) / delta


def original_loss(index: int) -> float:
    """Held-out loss after pretraining: falls with size, as a family limited by capacity would."""
    return float(control_loss(np.array([0.0]))[0]) + 0.05 - 0.02 * index


def make_study(root: str, sizes: list[SizeSpec], delta: float = 0.1, speeds=DEFAULT_SPEEDS, evals_per_run: int = 60,
               budget_tokens: int | None = None, with_losses: bool = True, name: str = "synthetic",
               seeds: list[int] | None = None, seed_scatter: float = 0.0, plateau_scatter: float = 0.0,
               eval_noise: float = 0.0, floor: float = 0.3, full_set: bool = False) -> str:
    """Write study.json and every run; evaluation spacing scales with each size's run length.

    speeds: one list for every size, or a dict from size name to that size's list. seeds: None writes
    the single-replicate layout runs/<size>/{control,speed-*}; a list writes runs/<size>/seed-<v>/...
    """
    entries = []
    for index, size in enumerate(sizes):
        speeds_of = speeds.get(size.name, DEFAULT_SPEEDS) if isinstance(speeds, dict) else speeds
        speeds_of = list(speeds_of)
        # One run length per size, long enough for its slowest seed.
        longest = max([seed_variant(size, index, v, seed_scatter) for v in (seeds or [None])],
                      key=lambda s: s.t_needed)
        base_steps = _steps_for(longest, speeds_of, 1)
        eval_every = max(1, base_steps // evals_per_run)
        steps = _steps_for(longest, speeds_of, eval_every)
        entry = {"name": size.name, "n_params_nonembed": size.n_nonembed, "n_params_total": size.n_total}
        replicates = []
        for seed in (seeds or [None]):
            variant = seed_variant(size, index, seed, seed_scatter)
            plateau = seed_floor(index, seed, floor, plateau_scatter, delta)
            run_dir = os.path.join(root, "runs", size.name) + ("" if seed is None else f"/seed-{seed}")
            write_run(os.path.join(run_dir, "control", "run.h5"), variant, "finetune", steps, eval_every, delta, None,
                      full_set=full_set)
            for k, speed in enumerate(speeds_of):
                write_run(os.path.join(run_dir, f"speed-{speed.label}", "run.h5"), variant, "remove-ln", steps,
                          eval_every, delta, speed, floor=plateau, eval_noise=eval_noise,
                          noise_seed=(index, k, 0 if seed is None else seed + 1), full_set=full_set)
            if seed is not None:
                rep = {"seed": seed, "dir": f"seed-{seed}"}
                if with_losses:
                    original = original_loss(index) + 0.01 * _seed_normal(seed, index, 2)
                    rep["original_eval_loss"] = original
                    rep["zero_shot_eval_loss"] = original + 3.0 * math.sqrt(1e5 / size.n_nonembed)
                replicates.append(rep)
        if with_losses:
            if replicates:
                entry["original_eval_loss"] = float(np.mean([r["original_eval_loss"] for r in replicates]))
                entry["zero_shot_eval_loss"] = float(np.mean([r["zero_shot_eval_loss"] for r in replicates]))
            else:
                entry["original_eval_loss"] = original_loss(index)
                entry["zero_shot_eval_loss"] = original_loss(index) + 3.0 * math.sqrt(1e5 / size.n_nonembed)
        if replicates:
            entry["replicates"] = replicates
        entries.append(entry)
    study = {"name": name, "delta": delta, "eval_set": EVAL_SET, "sizes": entries}
    if seeds is not None:
        study["seeds"] = list(seeds)
    if budget_tokens is not None:
        study["budget_tokens"] = budget_tokens
    with open(os.path.join(root, "study.json"), "w") as f:
        json.dump(study, f, indent=2)
    return root


def power_law_sizes(exponent: float, n_nonembed=(100_000, 300_000, 1_000_000, 3_000_000), t_smallest: float = 60_000,
                    scatter=(0.0, 0.0, 0.0, 0.0), layers=(2, 2, 4, 4), vocab_params: int = 4098 * 64) -> list[SizeSpec]:
    """Sizes with planted tokens needed = a * N^exponent * exp(scatter), a set by the smallest size."""
    a = t_smallest / n_nonembed[0] ** exponent
    return [SizeSpec(f"S{i + 1}", layers[i], n, n + vocab_params * (i + 1), a * n**exponent * math.exp(scatter[i]))
            for i, n in enumerate(n_nonembed)]
