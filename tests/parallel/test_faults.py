"""A rank that dies or fails ends the whole job, non-zero, within a bounded time (no hang); the run
then resumes from its last checkpoint, also on another number of ranks, and matches the
uninterrupted one-rank run. SIGUSR1 checkpoints and exits with code 75 (requeue)."""
import os
import signal
import subprocess
import time

from dist_helpers import (LNFREE, MPI_ENV, SOURCE, assert_same_run, child_pids, mpirun, read_log, run, train,
                          wait_for)

LIMIT_S = 60  # a failed job must be gone within this


def start(command, log, env=MPI_ENV):
    """Starts a job with stderr into `log`."""
    return subprocess.Popen(command, cwd=SOURCE, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"), text=True)


def exit_after(job, log, marker):
    """Waits for `marker` in the job's stderr, then for its exit; returns (exit code, seconds from marker to exit)."""
    try:
        wait_for(lambda: marker in log.read_text() or job.poll() is not None, 240, marker)
        seen = time.monotonic()
        job.wait(timeout=LIMIT_S)
        return job.returncode, time.monotonic() - seen
    finally:
        if job.poll() is None:
            job.kill()


def test_a_killed_rank_ends_the_job_and_one_rank_resumes_it(one_rank_reference, tmp_path):
    out, log = tmp_path / "killed", tmp_path / "killed.log"
    env = {**MPI_ENV, "LNFREE_DEBUG_DIE_AT_STEP": "14"}  # rank 1 raises SIGKILL when step 14 starts
    job = start(mpirun(2, *train(out, "--set", "dist.check_weights=true"), export=["LNFREE_DEBUG_DIE_AT_STEP"]), log,
                env)
    code, seconds = exit_after(job, log, "SIGKILL now")
    stderr = log.read_text()
    print(stderr[-1500:])
    assert code != 0 and seconds < LIMIT_S
    assert "rank 1" in stderr and "signal 9" in stderr
    assert (out / "step-000012" / "DONE").exists() and not (out / "step-000024").exists()
    # Resume on ONE rank from the 2-rank checkpoint (step boundary: any world size works).
    run(train(out, "--set", "dist.check_weights=true", "--resume"))
    worst = assert_same_run(one_rank_reference, read_log(out))
    print(f"rank 1 killed at step 14: job gone {seconds:.1f} s later (exit {code}); resumed on 1 rank from step 12: "
          f"largest relative difference {worst:.3g}")


def test_kill_9_of_a_rank_process_ends_the_job_and_two_ranks_resume_it(one_rank_reference, tmp_path):
    out, log = tmp_path / "kill9", tmp_path / "kill9.log"
    job = start(mpirun(2, *train(out, "--set", "dist.check_weights=true")), log)
    try:
        wait_for(lambda: (out / "step-000012" / "DONE").exists(), 240, "the step-12 checkpoint")
        ranks = [pid for pid in child_pids(job.pid) if os.path.realpath(f"/proc/{pid}/exe") == LNFREE]
        assert len(ranks) == 2, ranks
        os.kill(ranks[-1], signal.SIGKILL)
        killed = time.monotonic()
        job.wait(timeout=LIMIT_S)
        seconds = time.monotonic() - killed
    finally:
        if job.poll() is None:
            job.kill()
    stderr = log.read_text()
    print(stderr[-1200:])
    assert job.returncode != 0
    assert "exited on signal 9" in stderr
    print(f"kill -9 of rank pid {ranks[-1]}: job exited with code {job.returncode} after {seconds:.1f} s")
    run(mpirun(2, *train(out, "--set", "dist.check_weights=true", "--resume")))
    worst = assert_same_run(one_rank_reference, read_log(out))
    print(f"resumed on 2 ranks: largest relative difference {worst:.3g}")


def test_a_rank_that_throws_aborts_the_job_naming_rank_and_reason(tmp_path, smoke_data):
    log = tmp_path / "throws.log"
    env = {**MPI_ENV, "LNFREE_DEBUG_DIE_AT_STEP": "2", "LNFREE_DEBUG_DIE_MODE": "throw"}
    job = start(mpirun(2, *train(tmp_path / "throws"), export=["LNFREE_DEBUG_DIE_AT_STEP", "LNFREE_DEBUG_DIE_MODE"]),
                log, env)
    code, seconds = exit_after(job, log, "throwing now")
    stderr = log.read_text()
    print(stderr[-1500:])
    assert code == 1 and seconds < LIMIT_S
    assert "rank 1 of 2" in stderr and "aborting the job: rank 1: failing at step 2" in stderr
    print(f"rank 1 threw at step 2: job gone {seconds:.1f} s later (exit {code})")


def test_sigusr1_writes_a_checkpoint_and_exits_75(tmp_path, smoke_data):
    out, log = tmp_path / "preempted", tmp_path / "preempted.log"
    job = start(mpirun(2, *train(out)), log)
    try:
        wait_for(lambda: "step      2/36" in log.read_text(), 240, "step 2")
        job.send_signal(signal.SIGUSR1)  # mpirun forwards SIGUSR1 to the ranks
        job.wait(timeout=LIMIT_S)
    finally:
        if job.poll() is None:
            job.kill()
    stderr = log.read_text()
    print(stderr[-800:])
    assert job.returncode == 75
    checkpoints = sorted(p.name for p in out.iterdir() if p.name.startswith("step-"))
    assert len(checkpoints) == 1 and (out / checkpoints[0] / "DONE").exists()
    stopped = int(checkpoints[0].split("-")[1])
    assert 1 <= stopped < 36 and len(read_log(out)["train/step"]) == stopped
    print(f"SIGUSR1: checkpoint {checkpoints[0]}, exit code 75")
