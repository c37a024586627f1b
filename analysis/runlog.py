"""Reading one run log (`run.h5`, docs/run-log.md, schema version 1) into plain numpy arrays."""
from __future__ import annotations

import dataclasses
import tomllib

import h5py
import numpy as np

from .errors import AnalysisError

SCHEMA_VERSION = 1
STATUSES = ("running", "complete", "diverged", "failed", "preempted")
# Event kinds that turn an LN path fake; eot and bos only end special divisors (docs/config.md).
REMOVAL_KINDS = ("ln2", "ln1qk", "ln1v", "lnf")


@dataclasses.dataclass(frozen=True)
class EvalCurve:
    """Evaluations on one set: fine-tuning tokens consumed (strictly increasing) and mean loss."""

    tokens: np.ndarray
    loss: np.ndarray


@dataclasses.dataclass(frozen=True)
class Events:
    step: np.ndarray
    tokens: np.ndarray
    kind: np.ndarray  # str
    layer: np.ndarray

    def removal_tokens(self) -> np.ndarray:
        """Tokens of the events that made an LN path fake, in file order."""
        return self.tokens[np.isin(self.kind, REMOVAL_KINDS)]


@dataclasses.dataclass(frozen=True)
class Sigmas:
    """sigma of every LN column over time, and whether the column's path is fake."""

    step: np.ndarray
    tokens: np.ndarray  # tokens consumed after each row's step (from /train)
    names: list[str]
    sigma: np.ndarray  # [rows, columns]
    fake: np.ndarray  # bool [rows, columns]: the path this column measures is fake


@dataclasses.dataclass(frozen=True)
class RunLog:
    path: str
    status: str  # one of STATUSES, or "missing" when the file has no /status
    status_message: str
    mode: str
    n_layer: int
    params_total: int
    params_non_embedding: int
    config: dict
    eval: dict[str, EvalCurve]
    events: Events
    train_step: np.ndarray
    train_tokens: np.ndarray
    train_loss: np.ndarray
    sigmas: Sigmas
    # optim.on_divergence = "rollback": the last step each rollback kept (/rollbacks/step; empty
    # without rollbacks, and in logs written before the group existed).
    rollback_steps: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # What the trainer records of its plan (root attributes tokens_per_step, removal_first_step and
    # removal_last_step, -1 without removal events); None in logs written before they existed, where
    # the config text is read instead.
    recorded_tokens_per_step: int | None = None
    recorded_removal_steps: tuple[int, int] | None = None

    @property
    def finished(self) -> bool:
        """complete or diverged: the run ended on purpose and its rows are final."""
        return self.status in ("complete", "diverged")

    def eval_curve(self, set_name: str) -> EvalCurve:
        if set_name not in self.eval:
            known = ", ".join(sorted(self.eval)) or "none"
            raise AnalysisError(f"{self.path}: /eval has no set '{set_name}' (sets in the file: {known})")
        return self.eval[set_name]

    def tokens_per_step(self) -> int:
        if self.recorded_tokens_per_step is not None:
            return self.recorded_tokens_per_step
        value = self.config.get("data", {}).get("tokens_per_step")
        if not isinstance(value, int) or value <= 0:
            raise AnalysisError(f"{self.path}: config field 'data.tokens_per_step': expected a positive integer, "
                                f"got {value!r}")
        return value

    def planned_removal_window(self) -> tuple[int, int] | None:
        """(first, last) token count of the removal events the config plans, or None without a schedule.

        Taken from the plan rather than /events so that a run that diverged before its last event
        still has a window. An event at step S fires before step S, after S * tokens_per_step tokens.
        """
        if self.recorded_removal_steps is not None:
            first, last = self.recorded_removal_steps
            return None if first < 0 else (first * self.tokens_per_step(), last * self.tokens_per_step())
        # Logs written before the trainer recorded its plan: expand the config's [schedule].
        schedule = self.config.get("schedule", {})
        steps = []
        for kind in REMOVAL_KINDS:
            entry = schedule.get(kind)
            if entry is None:
                continue
            start, gap = entry.get("start"), entry.get("gap")
            if not isinstance(start, int) or (gap is not None and not isinstance(gap, int)):
                raise AnalysisError(f"{self.path}: config field 'schedule.{kind}': expected integer start and gap, "
                                    f"got {entry!r}")
            last = start if gap is None or kind == "lnf" else start + (self.n_layer - 1) * gap
            steps += [start, last]
        if not steps:
            return None
        tps = self.tokens_per_step()
        return min(steps) * tps, max(steps) * tps


def _open(path: str) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as plain_error:
        # A live writer, or one that crashed, leaves the superblock marked open: SWMR reads still work.
        try:
            return h5py.File(path, "r", libver="latest", swmr=True)
        except OSError:
            raise AnalysisError(f"{path}: cannot open as an HDF5 run log: {plain_error}") from None


def _dataset(f: h5py.File, path: str, name: str) -> h5py.Dataset:
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise AnalysisError(f"{path}: dataset '/{name}' is missing (expected by docs/run-log.md, schema version 1)")
    if f.swmr_mode:
        obj.refresh()
    return obj


def _group(f: h5py.File, path: str, name: str, columns: list[str]) -> dict[str, np.ndarray]:
    """The named datasets of one table, cut to the shortest one (a live writer may be mid-row)."""
    data = {c: _dataset(f, path, f"{name}/{c}")[()] for c in columns}
    rows = min(len(v) for v in data.values())
    return {c: v[:rows] for c, v in data.items()}


def _text(dataset: h5py.Dataset) -> str:
    value = dataset[()]
    return value.decode("utf-8", "replace").rstrip("\0") if isinstance(value, bytes) else str(value)


def _attr(f: h5py.File, path: str, name: str, kind: type):
    if name not in f.attrs:
        raise AnalysisError(f"{path}: root attribute '{name}' is missing")
    value = f.attrs[name]
    if kind is int:
        if not isinstance(value, (int, np.integer)):
            raise AnalysisError(f"{path}: root attribute '{name}': expected an integer, got {value!r}")
        return int(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise AnalysisError(f"{path}: root attribute '{name}': expected a string, got {value!r}")
    return value


def _eval_curves(f: h5py.File, path: str) -> dict[str, EvalCurve]:
    group = f.get("eval")
    if not isinstance(group, h5py.Group):
        raise AnalysisError(f"{path}: group '/eval' is missing")
    curves = {}
    for name in group:
        rows = _group(f, path, f"eval/{name}", ["tokens", "loss"])
        tokens, loss = rows["tokens"].astype(np.int64), rows["loss"].astype(np.float64)
        if np.any(np.diff(tokens) < 0):
            raise AnalysisError(f"{path}: dataset '/eval/{name}/tokens': expected non-decreasing token counts")
        # Keep the last evaluation of a repeated token count, so interpolation sees a function.
        keep = np.append(tokens[1:] != tokens[:-1], True) if len(tokens) else np.zeros(0, bool)
        curves[name] = EvalCurve(tokens[keep], loss[keep])
    return curves


def _sigmas(f: h5py.File, path: str, train_step: np.ndarray, train_tokens: np.ndarray, tps: int | None) -> Sigmas:
    rows = _group(f, path, "ln", ["step", "sigma", "fake"])
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["ln"].attrs.get("names", [])]
    sigma, fake = rows["sigma"], rows["fake"]
    if sigma.ndim != 2 or sigma.shape[1] != len(names) or fake.shape[:2] != sigma.shape:
        raise AnalysisError(f"{path}: '/ln/sigma' {sigma.shape} and '/ln/fake' {fake.shape} do not match the "
                            f"{len(names)} names of the '/ln' attribute 'names'")
    paths = [p.decode() if isinstance(p, bytes) else str(p) for p in f["ln/fake"].attrs.get("paths", ["main", "v"])]
    if "main" not in paths:
        raise AnalysisError(f"{path}: '/ln/fake' attribute 'paths': expected it to name 'main', got {paths}")
    # A column "<ln>.v" is the V path's sigma of an ln_1; every other column is the LN's main path.
    path_of = [paths.index("v") if n.endswith(".v") and "v" in paths else paths.index("main") for n in names]
    is_fake = np.stack([fake[:, j, p] != 0 for j, p in enumerate(path_of)], axis=1) if names else fake[:, :, 0] != 0
    step = rows["step"].astype(np.int64)
    if len(train_step):
        tokens = np.interp(step, train_step, train_tokens)
    else:
        tokens = (step + 1).astype(np.float64) * (tps or 0)
    return Sigmas(step, tokens, names, sigma.astype(np.float64), is_fake)


def read_run(path: str) -> RunLog:
    """Read a run log, whatever its status; the caller decides what an unfinished run means."""
    with _open(path) as f:
        version = f.attrs.get("schema_version")
        if version is None or int(version) != SCHEMA_VERSION:
            raise AnalysisError(f"{path}: root attribute 'schema_version': expected {SCHEMA_VERSION}, got {version!r}")
        config_text = _attr(f, path, "config", str)
        try:
            config = tomllib.loads(config_text)
        except tomllib.TOMLDecodeError as e:
            raise AnalysisError(f"{path}: root attribute 'config': not valid TOML: {e}") from None
        if "status" in f:
            status = _text(_dataset(f, path, "status"))
            message = _text(_dataset(f, path, "status_message")) if "status_message" in f else ""
            if status not in STATUSES:
                raise AnalysisError(f"{path}: dataset '/status': expected one of {', '.join(STATUSES)}, got {status!r}")
        else:
            status, message = "missing", ""
        train = _group(f, path, "train", ["step", "tokens", "loss"])
        ev = _group(f, path, "events", ["step", "tokens", "kind", "layer"])
        kinds = np.array([k.decode("utf-8").rstrip("\0") if isinstance(k, bytes) else str(k) for k in ev["kind"]],
                         dtype=object)
        events = Events(ev["step"].astype(np.int64), ev["tokens"].astype(np.int64), kinds, ev["layer"].astype(np.int64))
        recorded_tps = _attr(f, path, "tokens_per_step", int) if "tokens_per_step" in f.attrs else None
        recorded_window = (tuple(_attr(f, path, name, int) for name in ("removal_first_step", "removal_last_step"))
                           if "removal_first_step" in f.attrs else None)
        tps = recorded_tps if recorded_tps is not None else config.get("data", {}).get("tokens_per_step")
        n_layer = _attr(f, path, "n_layer", int)
        return RunLog(
            path=path,
            status=status,
            status_message=message,
            mode=_attr(f, path, "mode", str),
            n_layer=n_layer,
            params_total=_attr(f, path, "params_total", int),
            params_non_embedding=_attr(f, path, "params_non_embedding", int),
            config=config,
            eval=_eval_curves(f, path),
            events=events,
            train_step=train["step"].astype(np.int64),
            train_tokens=train["tokens"].astype(np.int64),
            train_loss=train["loss"].astype(np.float64),
            sigmas=_sigmas(f, path, train["step"], train["tokens"], tps if isinstance(tps, int) else None),
            rollback_steps=(_group(f, path, "rollbacks", ["step"])["step"].astype(np.int64) if "rollbacks" in f
                            else np.zeros(0, dtype=np.int64)),
            recorded_tokens_per_step=recorded_tps,
            recorded_removal_steps=recorded_window,
        )
