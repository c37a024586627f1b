"""analysis/ reads run.h5 with constants of its own (schema version, statuses, removal kinds, the
groups, columns and root attributes it reads): they must be the binary's (`lnfree schema`, from the one C++ place each is declared). And the removal
window the trainer records must be the one analysis/ used to expand from the config's [schedule]."""
import dataclasses
import inspect
import json
import os
import re
import subprocess

from analysis import runlog

LNFREE = os.environ.get("LNFREE_BINARY", "build/lnfree")
SOURCE = os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def test_python_constants_equal_the_binarys_schema():
    dump = json.loads(subprocess.run([LNFREE, "schema"], cwd=SOURCE, capture_output=True, text=True,
                                     check=True).stdout)
    assert runlog.SCHEMA_VERSION == dump["schema_version"]
    assert runlog.STATUSES == tuple(dump["statuses"])
    assert runlog.REMOVAL_KINDS == tuple(k["name"] for k in dump["removal_kinds"] if k["removes_layer_norm"])
    assert dump["run_folder"]["log"] == "run.h5" and dump["run_folder"]["checkpoint_example"] == "step-000042"
    # Every group and column runlog.py reads is one the writer declares (eval sets as "eval/SET").
    written = {t["group"].lstrip("/"): {c["name"] for c in t["columns"]} for t in dump["tables"]}
    source = inspect.getsource(runlog)
    read = re.findall(r'_group\(f, path, f?"([^"]+)", \[([^\]]*)\]\)', source)
    assert len(read) >= 5, read
    for group, columns in read:
        group = re.sub(r"\{name\}", "SET", group)
        assert group in written, (group, sorted(written))
        for column in re.findall(r'"([^"]+)"', columns):
            assert column in written[group], (group, column, written[group])
    # Every root attribute runlog.py reads is one the writer declares.
    declared = set(dump["required_attributes"]) | set(dump["model_attributes"]) | set(dump["run_attributes"])
    attributes = set(re.findall(r'_attr\(f, path, "([^"]+)"', source))
    attributes |= set(re.findall(r'"([^"]+)" in f\.attrs', source))
    attributes |= {n for group in re.findall(r'for name in \(([^)]*)\)', source) for n in re.findall(r'"([^"]+)"', group)}
    assert {"config", "mode", "n_layer", "tokens_per_step", "removal_first_step", "removal_last_step"} <= attributes
    assert attributes <= declared, sorted(attributes - declared)
    print(f"schema {dump['schema_version']}: {len(dump['statuses'])} statuses, {len(dump['removal_kinds'])} "
          f"event kinds, the {len(read)} tables and {len(attributes)} root attributes analysis/runlog.py reads "
          f"agree with `lnfree schema`")


def test_the_recorded_removal_window_equals_the_config_expansion(tmp_path):
    out = tmp_path / "smoke"
    # One step of the smoke removal run is enough: the plan is recorded when the log is created.
    subprocess.run([LNFREE, "train", "--config", "configs/smoke.toml", "--out", str(out), "--stop-at", "1"],
                   cwd=SOURCE, capture_output=True, text=True, check=True)
    run = runlog.read_run(str(out / "run.h5"))
    assert run.recorded_removal_steps is not None and run.recorded_tokens_per_step is not None
    from_config = dataclasses.replace(run, recorded_removal_steps=None, recorded_tokens_per_step=None)
    assert run.planned_removal_window() == from_config.planned_removal_window()
    assert run.tokens_per_step() == from_config.tokens_per_step()
    print(f"removal window {run.planned_removal_window()} tokens, recorded = expanded from [schedule]")
