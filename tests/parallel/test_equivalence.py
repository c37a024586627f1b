"""Two ranks train exactly what one process trains: configs/smoke.toml (1024 tokens per step = 8
sequences of 128; micro-batch 4: 2 micro-batches on one rank, 1 on each of two) through every
LayerNorm removal event, with dist.check_weights comparing every parameter and buffer across the
ranks after each step."""
from dist_helpers import assert_same_run, max_relative_difference, mpirun, read_log, run, train


def test_two_ranks_log_the_losses_of_one_rank(one_rank_reference, tmp_path):
    out = tmp_path / "two-ranks"
    result, seconds = run(mpirun(2, *train(out, "--set", "dist.check_weights=true")))
    two = read_log(out)
    assert two["world_size"] == 2 and one_rank_reference["world_size"] == 1
    assert len(two["train/step"]) == 36 and len(two["events/step"]) == len(one_rank_reference["events/step"])
    worst = assert_same_run(one_rank_reference, two, tolerance=1e-5)
    print(f"2 ranks vs 1 rank: {len(two['train/step'])} steps, {len(two['events/step'])} removal events, largest "
          f"relative difference of any logged loss, gradient norm, sigma or eval loss {worst:.3g} ({seconds:.0f} s)")
    # Only rank 0 writes: one log, one checkpoint folder per interval.
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("step-")) == ["step-000024", "step-000036"]


def test_one_rank_under_mpirun_is_the_single_process_run(one_rank_reference, tmp_path):
    out = tmp_path / "mpirun-one"
    run(mpirun(1, *train(out, "--set", "dist.check_weights=true")))
    worst = max_relative_difference(one_rank_reference, read_log(out))
    print(f"mpirun -np 1 vs plain process: largest relative difference {worst:.3g}")
    assert worst == 0.0
