"""The communicator and tensor-collective GoogleTest suites again, as two MPI ranks (under ctest they
run as a world of one), and the launch errors of the trainer."""
import pytest

from dist_helpers import CORE_TESTS, LNFREE, MPI_ENV, SMOKE, TORCH_TESTS, mpirun, run


@pytest.mark.parametrize("binary, tests, marker", [
    (CORE_TESTS, "Collectives.*", "mpi backend, rank 1 of 2"),
    (TORCH_TESTS, "GradientReducer.*:TensorCollectives.*", "hooks during backward, 2 rank(s)")])
def test_suites_pass_as_two_mpi_ranks(binary, tests, marker):
    result, _ = run(mpirun(2, binary, f"--gtest_filter={tests}"), timeout=120)
    print(result.stdout[-3000:])
    assert marker in result.stdout  # really two ranks
    assert result.stdout.count("[  PASSED  ]") == 2, "both ranks must pass"


def test_ranks_with_different_configs_stop_with_an_error_naming_the_rank(tmp_path, smoke_data):
    out = tmp_path / "run"
    # One mpirun, two programs (MPMD): rank 1 gets another learning rate.
    command = mpirun(1, LNFREE, "train", "--config", SMOKE, "--out", out) + \
        [":", "-np", "1", LNFREE, "train", "--config", SMOKE, "--out", str(out), "--set", "optim.lr=1e-3"]
    result, _ = run(command, timeout=60, check=False)
    print(result.stderr[-2000:])
    assert result.returncode != 0
    assert "rank 1: config hash" in result.stderr and "differs from rank 0's" in result.stderr
    assert not (out / "run.h5").exists()


def test_a_launcher_mpi_cannot_reach_is_a_clear_error(tmp_path, smoke_data):
    # srun's variables without srun: MPI starts as a world of one, which contradicts them.
    env = {**MPI_ENV, "SLURM_PROCID": "1", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "2", "SLURM_LOCALID": "1"}
    result, _ = run([LNFREE, "train", "--config", SMOKE, "--out", str(tmp_path / "run")], timeout=60, env=env,
                    check=False)
    print(result.stderr)
    assert result.returncode == 1
    assert "launched by srun as rank 1 of 2, but MPI sees rank 0 of 1" in result.stderr


def test_tokens_per_step_that_do_not_split_over_the_ranks_are_refused(tmp_path, smoke_data):
    # 1024 tokens = 8 sequences of 128; micro-batch 4 x 3 ranks does not divide 8.
    result, _ = run(mpirun(3, *[LNFREE, "train", "--config", SMOKE, "--out", tmp_path / "run"]), timeout=60,
                    check=False)
    print(result.stderr[-1500:])
    assert result.returncode != 0
    assert "cannot be split into micro-batches of data.micro_batch = 4 on 3 ranks" in result.stderr
