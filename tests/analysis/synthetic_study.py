"""Synthetic study folders for the analysis tests: run.h5 files written with h5py exactly as
docs/run-log.md (schema version 1) lays them out, with a planted tokens-needed per size.

Curves: the control's eval loss decays smoothly. A removal run equals the control until its first
removal event; the gap then climbs to `jump` by the end of the removal window and decays
exponentially to `floor`, crossing delta exactly at the planted T. Because the evaluations are
discrete, the analysis sees the crossing only within one evaluation interval.
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


def planted_gap(tokens: np.ndarray, window: tuple[float, float], t_cross: float, delta: float,
                jump: float = 1.5, floor: float = 0.3) -> np.ndarray:
    """0 before the window, rising to `jump` across it, then decaying to floor*delta through delta at t_cross."""
    t = np.asarray(tokens, np.float64)
    w0, w1 = window
    floor_gap = floor * delta
    tau = (t_cross - w1) / math.log((jump - floor_gap) / (delta - floor_gap))
    rising = jump * np.clip((t - w0) / max(w1 - w0, 1.0), 0.0, 1.0) if w1 > w0 else np.where(t > w0, jump, 0.0)
    decaying = floor_gap + (jump - floor_gap) * np.exp(-(t - w1) / tau)
    return np.where(t <= w0, 0.0, np.where(t <= w1, rising, decaying))


def _steps_for(size: SizeSpec, speeds: list[SpeedSpec], eval_every: int) -> int:
    slowest = max([s.slowdown for s in speeds if not s.never_within] or [1.0])
    last_window = max(START_STEP + 2 * size.n_layer * s.gap for s in speeds)
    steps = int(math.ceil(max(2.2 * slowest * size.t_needed / TOKENS_PER_STEP, 1.5 * last_window + 20)))
    return steps + (-steps) % eval_every


def write_run(path: str, size: SizeSpec, mode: str, steps: int, eval_every: int, delta: float,
              speed: SpeedSpec | None, status: str = "complete") -> None:
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
        window = (START_STEP * TOKENS_PER_STEP, (START_STEP + 2 * n_layer * speed.gap) * TOKENS_PER_STEP)
        t_cross = max(speed.slowdown * size.t_needed, window[1] + 0.15 * size.t_needed)
        if speed.never_within:
            t_cross = 3.0 * steps * TOKENS_PER_STEP
        loss = loss + planted_gap(eval_tokens, window, t_cross, delta)
        train_loss = train_loss + planted_gap(tokens, window, t_cross, delta)
        if diverge_step is not None:
            loss[-1], train_loss[-1] = np.nan, np.nan
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
        evals={EVAL_SET: (eval_steps, eval_tokens, loss)},
        events=[(s, s * TOKENS_PER_STEP, k, layer) for s, k, layer in events],
        ln_names=names, sigma=sigma, fake=fired, ln_steps=step,
        status="diverged" if diverge_step is not None and status == "complete" else status,
        message="synthetic run")


def make_study(root: str, sizes: list[SizeSpec], delta: float = 0.1, speeds=DEFAULT_SPEEDS, evals_per_run: int = 60,
               budget_tokens: int | None = None, with_losses: bool = True, name: str = "synthetic") -> str:
    """Write study.json and every run; evaluation spacing scales with each size's run length.

    speeds: one list for every size, or a dict from size name to that size's list.
    """
    entries = []
    for size in sizes:
        speeds_of = speeds.get(size.name, DEFAULT_SPEEDS) if isinstance(speeds, dict) else speeds
        speeds_of = list(speeds_of)
        base_steps = _steps_for(size, speeds_of, 1)
        eval_every = max(1, base_steps // evals_per_run)
        steps = _steps_for(size, speeds_of, eval_every)
        run_dir = os.path.join(root, "runs", size.name)
        write_run(os.path.join(run_dir, "control", "run.h5"), size, "finetune", steps, eval_every, delta, None)
        for speed in speeds_of:
            write_run(os.path.join(run_dir, f"speed-{speed.label}", "run.h5"), size, "remove-ln", steps, eval_every,
                      delta, speed)
        entry = {"name": size.name, "n_params_nonembed": size.n_nonembed, "n_params_total": size.n_total}
        if with_losses:
            original = float(control_loss(np.array([0.0]))[0]) + 0.05
            entry["original_eval_loss"] = original
            entry["zero_shot_eval_loss"] = original + 3.0 * math.sqrt(1e5 / size.n_nonembed)
        entries.append(entry)
    study = {"name": name, "delta": delta, "eval_set": EVAL_SET, "sizes": entries}
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
