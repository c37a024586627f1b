"""`lnfree schedule` output format, and the spec's removal windows for the four paper configs (§3.3)."""
import os
import re
import subprocess

import pytest

LNFREE = os.environ.get("LNFREE_BINARY", "build/lnfree")
ROOT = os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
LINE = re.compile(r"^(\d+) (ln2|ln1qk|ln1v|lnf|eot|bos) (\d+|-)$")
KIND_ORDER = ["ln2", "ln1qk", "ln1v", "lnf", "eot", "bos"]

# Spec §3.3: n_layer, removal window [first, last], last events LN_MLP^{L-1}, LN_qk^{L-1}, LN_v^{L-1}, LN_f,
# and the start of the (no-op) eot events.
PAPER = {
    "gpt2-small": (12, 20, 104, 42, 66, 101, 104, 106),
    "gpt2-medium": (24, 20, 188, 66, 114, 185, 188, 190),
    "gpt2-large": (36, 30, 534, 170, 314, 528, 534, 536),
    "gpt2-xl": (48, 50, 722, 238, 430, 716, 722, 724),
}


def run_schedule(*args):
    return subprocess.run([LNFREE, "schedule", *args], capture_output=True, text=True, cwd=ROOT)


def events(*args):
    result = run_schedule(*args)
    assert result.returncode == 0, result.stderr
    parsed = []
    for line in result.stdout.splitlines():
        match = LINE.match(line)
        assert match, f"malformed line {line!r}"
        step, kind, layer = match.groups()
        parsed.append((int(step), kind, None if layer == "-" else int(layer)))
    return parsed


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_schedules_match_the_spec(name):
    n_layer, first, last, ln2, qk, v, lnf, eot = PAPER[name]
    got = events("--config", os.path.join(ROOT, "configs", f"{name}.toml"))
    # Ordered by step, then the reference's remover order, then layer.
    keys = [(s, KIND_ORDER.index(k), -1 if l is None else l) for s, k, l in got]
    assert keys == sorted(keys)
    removals = [e for e in got if e[1] in ("ln2", "ln1qk", "ln1v", "lnf")]
    print(f"{name}: {len(got)} events, window [{removals[0][0]}, {removals[-1][0]}]")
    assert (removals[0][0], removals[-1][0]) == (first, last)
    by_kind = {k: [(s, l) for s, kk, l in got if kk == k] for k in KIND_ORDER}
    for kind, expected in (("ln2", ln2), ("ln1qk", qk), ("ln1v", v)):
        assert [l for _, l in by_kind[kind]] == list(range(n_layer))
        assert by_kind[kind][-1] == (expected, n_layer - 1)
    assert by_kind["lnf"] == [(lnf, None)]
    assert by_kind["eot"] == [(eot, layer) for layer in range(n_layer)]
    assert by_kind["bos"] == []


def test_vanilla_config_has_no_events():
    result = run_schedule("--config", os.path.join(ROOT, "configs", "gpt2-small-vanilla.toml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_n_layer_and_overrides():
    got = events("--config", os.path.join(ROOT, "configs", "gpt2-small.toml"), "--n-layer", "2",
                 "--set", "schedule.ln2.gap=none", "--set", "schedule.eot=none", "--set", "schedule.bos.start=110")
    assert got == [(20, "ln2", None), (44, "ln1qk", 0), (46, "ln1qk", 1), (68, "ln1v", 0), (71, "ln1v", 1),
                   (104, "lnf", None), (110, "bos", None)]


def test_refusals_name_the_event_and_field():
    config = os.path.join(ROOT, "configs", "gpt2-small.toml")
    # ln1v layer 8 would be at 68 + 8*30 = 308 >= 300 steps.
    result = run_schedule("--config", config, "--set", "schedule.ln1v.gap=30")
    assert result.returncode == 1
    assert "lnfree: error:" in result.stderr and "'ln1v layer 8 at step 308'" in result.stderr, result.stderr
    assert config in result.stderr
    result = run_schedule("--config", config, "--set", "optim.lrr=1")
    assert result.returncode == 1
    assert "unknown key 'lrr'" in result.stderr and "known: lr min_lr" in result.stderr, result.stderr
    result = run_schedule("--config", config, "--set", "data.steps=many")
    assert result.returncode == 1 and "field 'data.steps': expected an integer" in result.stderr, result.stderr


def test_config_command_prints_the_resolved_config_and_its_hash(tmp_path):
    config = os.path.join(ROOT, "configs", "gpt2-small.toml")
    resolved = subprocess.run([LNFREE, "config", "--skip-data", "--config", config, "--set", "optim.lr=5e-4"], capture_output=True,
                              text=True, check=True, cwd=ROOT).stdout
    assert "lr = 0.0005\n" in resolved and "[schedule.ln1v]\nstart = 68\ngap = 3\n" in resolved
    # The resolved text is itself a config with the same hash.
    (tmp_path / "resolved.toml").write_text(resolved)
    hashes = [subprocess.run([LNFREE, "config", "--skip-data", "--hash", "--config", path, *extra], capture_output=True, text=True,
                             check=True, cwd=ROOT).stdout.strip()
              for path, extra in ((config, ["--set", "optim.lr=5e-4"]), (str(tmp_path / "resolved.toml"), []))]
    assert re.fullmatch(r"[0-9a-f]{64}", hashes[0])
    assert hashes[0] == hashes[1]
