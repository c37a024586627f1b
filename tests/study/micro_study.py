"""The micro study family (tests/study/micro-*.toml: 3 sizes of seconds each) as a study config, shared
by the `lnfree study` tests here and the SLURM tests (tests/slurm/)."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def micro_study_toml(name, cache, speeds=(("g0", 0), ("g1", 1))):
    """The study config text: `name`, run cache folder `cache`, and one [[speed]] per (label, gap)."""
    speed_tables = "".join(f'\n[[speed]]\nlabel = "{label}"\ngap = {gap}\n' for label, gap in speeds)
    return f"""
[study]
name = "{name}"
delta = 0.3
parallel = 2
threads_per_run = 1
cache = "{cache}"

[data]
train = "data/tokens/brown/manifest.json"
eval_sets = ["data/tokens/brown/manifest.json:val"]
vocab_top = 512
stats_windows = 16
base_eval_windows = 8

[runs]
pretrain = "{HERE}/micro-pretrain.toml"
control = "{HERE}/micro-control.toml"
remove_ln = "{HERE}/micro-remove-ln.toml"
start = 4

[[model]]
name = "a-2x64"
init = "configs/models/study-2x64.toml"

[[model]]
name = "b-3x96"
init = "configs/models/study-3x96.toml"

[[model]]
name = "c-4x128"
init = "configs/models/study-4x128.toml"
{speed_tables}"""
