"""The launch scripts without a cluster: slurm/ and launch/mpirun-*.sh in dry-run mode
(LNFREE_DRY_RUN=1) print the commands they would run; these tests check them against the numbers in
slurm/sizes.tsv and the resolved configs."""
import math
import os
import shlex
import stat
import subprocess

import pytest

from dist_helpers import LNFREE, SOURCE

DRY = {**os.environ, "LNFREE_DRY_RUN": "1", "LNFREE_BIN": LNFREE}


def sh(*command, env=None, check=True, timeout=60):
    result = subprocess.run([str(c) for c in command], cwd=SOURCE, env=env or DRY, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stderr}")
    return result


def printed(result):
    """The '+ command' lines of stdout and stderr, split into words."""
    return [shlex.split(line[2:]) for line in (result.stdout + result.stderr).splitlines() if line.startswith("+ ")]


def sizes():
    rows = {}
    with open(os.path.join(SOURCE, "slurm", "sizes.tsv")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, config, nodes, tasks, gpus, cpus, mem, rate, overhead, sets = line.split()
                rows[name] = dict(config=config, nodes=int(nodes), tasks=int(tasks), gpus=int(gpus), cpus=int(cpus),
                                  mem=mem, rate=float(rate), overhead=float(overhead),
                                  sets=[] if sets == "-" else sets.split(","))
    return rows


def resolved(config, sets):
    text = sh(LNFREE, "config", "--skip-data", "--config", config, *[a for s in sets for a in ("--set", s)]).stdout
    values, section = {}, None
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif " = " in line:
            key, value = line.split(" = ", 1)
            values[f"{section}.{key}"] = value
    return values


def option(words, name):
    for w in words:
        if w.startswith(f"--{name}="):
            return w.split("=", 1)[1]
    raise AssertionError(f"--{name} missing in {words}")


@pytest.mark.parametrize("size", ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"])
def test_submit_derives_resources_and_time_limit_from_sizes_tsv(size):
    row = sizes()[size]
    (sbatch,) = [w for w in printed(sh("slurm/submit.sh", size)) if w[0] == "sbatch"]
    gpus = row["nodes"] * row["gpus"]
    assert option(sbatch, "nodes") == str(row["nodes"]) and option(sbatch, "gpus-per-node") == str(row["gpus"])
    assert option(sbatch, "ntasks-per-node") == str(row["gpus"]) == str(row["tasks"])  # one rank per GPU
    assert option(sbatch, "cpus-per-task") == str(row["cpus"]) and "--mem" not in " ".join(sbatch)
    tail = sbatch[sbatch.index("slurm/train.sbatch"):]
    assert tail[1:3] == [row["config"], f"runs/{size}"]
    assert tail[3:] == [a for s in row["sets"] for a in ("--set", s)]
    # Time limit: tokens / (tokens/s per GPU x GPUs) x 1.25 + overhead + the 300 s between SIGUSR1
    # (--signal=B:USR1@300) and the limit, whole minutes rounded up.
    config = resolved(row["config"], row["sets"])
    tokens = int(config["data.steps"]) * int(config["data.tokens_per_step"])
    seconds = math.ceil((tokens / (row["rate"] * gpus) * 1.25 + row["overhead"] * 60 + 300) / 60) * 60
    h, m = divmod(seconds // 60, 60)
    print(f"{size}: {tokens:,} tokens on {gpus} GPUs -> --time={option(sbatch, 'time')}")
    assert option(sbatch, "time") == f"{h:02d}:{m:02d}:00"
    # The global batch must split over the GPUs: sequences per step = micro_batch x GPUs x accumulation.
    sequences = int(config["data.tokens_per_step"]) // int(config["data.seq_len"])
    assert sequences % (int(config["data.micro_batch"]) * gpus) == 0, (sequences, config["data.micro_batch"], gpus)


def test_train_job_runs_one_rank_per_gpu_resumes_and_requeues_when_preempted(tmp_path):
    out = tmp_path / "run"
    env = {**DRY, "SLURM_JOB_ID": "4242", "SLURM_SUBMIT_DIR": SOURCE}
    fresh = sh("bash", "slurm/train.sbatch", "configs/gpt2-small.toml", out, "--set", "optim.lr=1e-4", env=env)
    (srun,) = printed(fresh)
    # The MPI type that fits Debian's Open MPI (a dry run assumes pmix) and a binding (a dry run
    # assumes a cluster that can bind; tests/slurm/ checks both against a real SLURM).
    assert srun[:4] == ["srun", "--kill-on-bad-exit=1", "--mpi=pmix", "--cpu-bind=cores"]
    # --resume=auto on every start: lnfree starts the run in an empty --out and continues the one a
    # requeued job finds there (deciding under the run folder's lock; tests/train/test_status.py).
    assert srun[4:] == [LNFREE, "train", "--config", "configs/gpt2-small.toml", "--out", str(out), "--resume=auto",
                        "--set", "optim.lr=1e-4"]
    preempted = sh("bash", "slurm/train.sbatch", "configs/gpt2-small.toml", out, env={**env, "LNFREE_DRY_RUN_RC": "75"})
    lines = printed(preempted)
    assert "--resume=auto" in lines[0]
    assert lines[1] == ["scontrol", "requeue", "4242"] and preempted.returncode == 0
    failed = sh("bash", "slurm/train.sbatch", "configs/gpt2-small.toml", out, env={**env, "LNFREE_DRY_RUN_RC": "3"},
                check=False)
    assert failed.returncode == 3 and len(printed(failed)) == 1  # no requeue


def fake_lnfree(tmp_path, plan):
    """An lnfree that prints `plan` for `study --print-plan` and runs the real binary otherwise."""
    stub = tmp_path / "lnfree"
    (tmp_path / "plan.tsv").write_text(plan)
    stub.write_text(f"""#!/usr/bin/env bash
if [ "$1" = study ]; then
  case " $* " in *" --print-plan "*) cat {tmp_path / 'plan.tsv'}; exit 0 ;; esac
fi
exec {LNFREE} "$@"
""")
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return stub


def test_study_becomes_arrays_per_size_and_level_then_the_analysis(tmp_path):
    d = tmp_path / "study"
    (d / "models" / "gpt2").mkdir(parents=True)
    (d / "models" / "gpt2" / "original.json").write_text("{}")  # a finished job: skipped
    train = "lnfree train --config configs/gpt2-small{}.toml --out {} --set run.init=data/hf/gpt2"
    plan = "\n".join([
        f"gpt2/original\t-\t{d}/models/gpt2/original.json\tlnfree eval --model data/hf/gpt2",
        f"gpt2/stats\t-\t{d}/models/gpt2/stats.json\tlnfree stats --model data/hf/gpt2 --out {d}/models/gpt2/stats.json",
        f"gpt2-xl/stats\t-\t{d}/models/gpt2-xl/stats.json\tlnfree stats --model data/hf/gpt2-xl",
        f"gpt2/control\t-\t{d}/runs/gpt2/control/DONE\t" + train.format("-vanilla", d / "runs/gpt2/control"),
        f"gpt2/speed-paper\tgpt2/stats,gpt2/original\t{d}/runs/gpt2/speed-paper/DONE\t"
        + train.format("", d / "runs/gpt2/speed-paper"),
        f"gpt2/speed-g1\tgpt2/stats\t{d}/runs/gpt2/speed-g1/DONE\t" + train.format("", d / "runs/gpt2/speed-g1")
        + " --set schedule.ln2.gap=1",
        f"gpt2-xl/speed-paper\tgpt2-xl/stats\t{d}/runs/gpt2-xl/speed-paper/DONE\tlnfree train --config "
        f"configs/gpt2-xl.toml --out {d}/runs/gpt2-xl/speed-paper",
    ]) + "\n"
    env = {**DRY, "LNFREE_BIN": str(fake_lnfree(tmp_path, plan))}
    result = sh("slurm/submit-study.sh", "configs/study/gpt2.toml", d, "--set", "study.seed=3", env=env)
    print(result.stderr)
    jobs = [w for w in printed(result) if w[0] == "sbatch"]
    names = [option(w, "job-name") for w in jobs]
    # Lowest level first; within a level the other jobs, then the longest training runs (xl) first.
    assert names == ["lnfree-study-default.0.other", "lnfree-study-gpt2.0.train", "lnfree-study-gpt2-xl.1.train",
                     "lnfree-study-gpt2.1.train", "lnfree-analysis"]
    ids = {name: str(1001 + i) for i, name in enumerate(names)}  # the dry run's made-up job ids
    arrays = dict(zip(names, jobs))
    assert option(arrays["lnfree-study-default.0.other"], "array") == "0-1"  # two stats jobs (original is done)
    assert option(arrays["lnfree-study-gpt2.1.train"], "array") == "0-1"  # speeds of one size: one array
    assert option(arrays["lnfree-study-gpt2.1.train"], "dependency") == f"afterok:{ids['lnfree-study-default.0.other']}"
    assert option(arrays["lnfree-study-gpt2.0.train"], "gpus-per-node") == "8"
    assert "--dependency" not in " ".join(arrays["lnfree-study-gpt2.0.train"])
    assert option(arrays["lnfree-study-gpt2-xl.1.train"], "export") == "ALL,LNFREE_TASK_SETS=--set data.micro_batch=7"
    assert option(arrays["lnfree-analysis"], "dependency") == "afterok:" + ":".join(ids[n] for n in names[:-1])
    # The study's --set overrides reach the analysis job's `lnfree study` (it re-plans the same study).
    assert arrays["lnfree-analysis"][-5:] == ["slurm/analysis.sbatch", "configs/study/gpt2.toml", str(d),
                                              "--set", "study.seed=3"]


def status_lnfree(tmp_path, answer):
    """An lnfree whose `status` prints the word in the file `answer` (the state a run folder would be
    in: tests/train/test_status.py checks lnfree's own answers) and runs the real binary otherwise."""
    stub = tmp_path / "lnfree"
    stub.write_text(f"""#!/usr/bin/env bash
if [ "$1" = status ]; then cat {answer}; exit 0; fi
exec {LNFREE} "$@"
""")
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return stub


def test_study_task_runs_its_line_of_the_task_file(tmp_path):
    tasks = tmp_path / "g.tasks"
    out = tmp_path / "runs" / "control"
    tasks.write_text(f"gpt2/stats\tlnfree stats --model m\ngpt2/control\tlnfree train --config c.toml --out {out}\n")
    answer = tmp_path / "status"
    answer.write_text("failed\n")
    stub = status_lnfree(tmp_path, answer)
    env = {**DRY, "LNFREE_BIN": str(stub), "SLURM_ARRAY_TASK_ID": "1", "SLURM_JOB_ID": "77",
           "SLURM_SUBMIT_DIR": SOURCE, "LNFREE_TASK_SETS": "--set data.micro_batch=7"}
    (srun,) = printed(sh("bash", "slurm/study-task.sbatch", tasks, env=env))
    assert srun[4:] == [str(stub), "train", "--config", "c.toml", "--out", str(out), "--resume=auto", "--set",
                        "data.micro_batch=7"]
    # A run that fails is a failed task, unless it diverged (a result of the study), as `lnfree
    # status` reports the run folder.
    assert sh("bash", "slurm/study-task.sbatch", tasks, env={**env, "LNFREE_DRY_RUN_RC": "1"}, check=False).returncode == 1
    answer.write_text("diverged\n")
    assert sh("bash", "slurm/study-task.sbatch", tasks, env={**env, "LNFREE_DRY_RUN_RC": "1"}).returncode == 0


def test_mpirun_launch_scripts(tmp_path):
    (local,) = printed(sh("launch/mpirun-local.sh", "-n", "2", "-t", "1", "--", "train", "--config", "c.toml"))
    assert local[:4] == ["mpirun", "-np", "2", "-x"] and local[4] == "OMP_NUM_THREADS=1"
    assert local[-4:] == [LNFREE, "train", "--config", "c.toml"]
    hosts = tmp_path / "hosts"
    hosts.write_text("node01 slots=8\n# spare\nnode02 slots=8\n")
    (multi,) = printed(sh("launch/mpirun-hosts.sh", "-f", hosts, "-N", "8", "--", "train", "--config", "c.toml"))
    assert multi[multi.index("-np") + 1] == "16" and "ppr:8:node:PE=1" in multi
    assert multi[multi.index("--wdir") + 1] == SOURCE


def test_cpu_study_asks_for_no_gpus_and_site_options_reach_every_job(tmp_path):
    """The default (tiny) study: CPU rows for its sizes, default-cpu for the other jobs and the
    analysis, no GPU request anywhere; partition/account/QoS/extra options on every sbatch."""
    rows = sizes()
    env = {**DRY, "LNFREE_PARTITION": "short", "LNFREE_ACCOUNT": "proj1", "LNFREE_QOS": "low",
           "LNFREE_SBATCH_OPTIONS": "--constraint=avx2 --exclusive", "LNFREE_SLURM_LOGS": str(tmp_path / "logs")}
    result = sh("slurm/submit-study.sh", "configs/study/tiny.toml", tmp_path / "study", env=env, timeout=180)
    jobs = [w for w in printed(result) if w[0] == "sbatch"]
    names = [option(w, "job-name") for w in jobs]
    assert names[0] == "lnfree-study-default-cpu.0.other" and names[-1] == "lnfree-analysis", names
    for words in jobs:
        assert not any(w.startswith("--gpus") or w.startswith("--gres") for w in words), words
        assert option(words, "partition") == "short" and option(words, "account") == "proj1"
        assert option(words, "qos") == "low" and "--constraint=avx2" in words and "--exclusive" in words
        assert option(words, "output").startswith(str(tmp_path / "logs") + "/")
        name = option(words, "job-name")
        size = name.removeprefix("lnfree-study-").split(".")[0] if name != "lnfree-analysis" else "default-cpu"
        assert option(words, "cpus-per-task") == str(rows[size]["cpus"]) and option(words, "mem") == rows[size]["mem"]
        if "--dependency" in " ".join(words):
            assert "--kill-on-invalid-dep=yes" in words  # a failed dependency cancels, never pending forever
    for size in ("s1-2x64", "s2-3x96", "s3-4x128", "s4-4x192"):
        assert rows[size]["gpus"] == 0 and f"lnfree-study-{size}.1.train" in names  # pretraining arrays
    # %A_%a for arrays, %j for the single analysis job
    assert option(jobs[0], "output").endswith("%x-%A_%a.out") and option(jobs[-1], "output").endswith("%x-%j.out")


def test_srun_mpi_type_and_binding_can_be_set(tmp_path):
    env = {**DRY, "SLURM_JOB_ID": "9", "SLURM_SUBMIT_DIR": SOURCE, "SLURM_CPUS_PER_TASK": "3",
           "LNFREE_SRUN_MPI": "pmi2", "LNFREE_SRUN_CPU_BIND": "none"}
    (srun,) = printed(sh("bash", "slurm/train.sbatch", "c.toml", tmp_path / "o", env=env))
    assert srun[:4] == ["srun", "--kill-on-bad-exit=1", "--mpi=pmi2", "--cpus-per-task=3"], srun
    (srun,) = printed(sh("bash", "slurm/train.sbatch", "c.toml", tmp_path / "o",
                         env={**env, "LNFREE_SRUN_CPU_BIND": "map_cpu:0,1"}))
    assert "--cpu-bind=map_cpu:0,1" in srun


def test_time_limit_leaves_room_for_the_preemption_warning():
    """The smoke row's limit exceeds its run time plus the 300 s between SIGUSR1 and the limit (a
    run that got the warning before its end would be preempted every time)."""
    (sbatch,) = [w for w in printed(sh("slurm/submit.sh", "smoke")) if w[0] == "sbatch"]
    h, m, s = map(int, option(sbatch, "time").split(":"))
    assert h * 3600 + m * 60 + s >= 300 + sizes()["smoke"]["overhead"] * 60
    assert "--gpus-per-node" not in " ".join(sbatch) and option(sbatch, "ntasks-per-node") == "2"


def test_analysis_job_refuses_to_run_missing_jobs_itself(tmp_path):
    """Started with jobs of the study not done (cancelled, files removed), the analysis job fails
    listing them instead of running them on its own CPUs."""
    env = {**os.environ, "LNFREE_BIN": LNFREE, "SLURM_SUBMIT_DIR": SOURCE}
    env.pop("LNFREE_DRY_RUN", None)
    result = sh("bash", "slurm/analysis.sbatch", "configs/study/tiny.toml", tmp_path / "study", env=env, check=False)
    print(result.stderr[-600:])
    assert result.returncode == 1 and "jobs not done, so no analysis" in result.stderr
    assert "  vocab\n" in result.stderr and "s4-4x192/seed-2/speed-g2" in result.stderr
    assert not (tmp_path / "study").exists()  # nothing was run
