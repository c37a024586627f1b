// The training loop for all three modes (pretrain, finetune, remove-ln). One optimizer step:
//   1. removal events scheduled for this step are applied (before its first micro-batch, spec §3.1)
//   2. `accumulation` micro-batches: forward, CE (+ aux loss weight * aux), backward
//   3. global gradient norm, clipping, AdamW with the step's learning rate
//   4. at log intervals: metrics to the HDF5 run log and one console line; a non-finite loss or
//      gradient norm stops the run (the last checkpoint stays intact)
//   5. evaluation and checkpoints at their intervals and after the last step
// Nothing in a step reads values back to the host except at log, eval and checkpoint points.
//
// trainer.cpp holds the loop; beside it: training_setup (checks, lock, device, model, data,
// optimizer, resume), train_step (2-3), removal_events (1), run_metrics (4: run-log spec, σ
// columns, step line, evaluations, throughput), divergence (non-finite steps: stop or roll back),
// step_metrics (the device-to-host metrics queue), final_model (RUN/final/), and the injected
// failures of the fault tests in util/debug_kill.
//
// Data parallelism (docs/distributed.md). With a communicator of W ranks each rank reads its slice
// of every global batch (accumulation = sequences per step / (micro_batch x W)), gradients are
// averaged over the ranks in buckets on the last micro-step, the LayerNorm statistics of all ranks
// enter one EMA in global micro-batch order, losses are averaged for the log, and rank 0 alone
// writes run.h5 and checkpoints. A W-rank run follows the one-rank run of the same config up to
// float summation order, and a checkpoint resumes on any world size.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/train_config.h"
#include "parallel/communicator.h"

namespace lnfree::train {

struct TrainRequest {
  config::TrainConfig config;
  std::string out_dir;
  bool resume = false;
  // --resume=auto: resume when out_dir holds a run, start one otherwise (decided under the lock).
  bool resume_if_any = false;
  // Stop once this many steps are done (a checkpoint is written there; --resume continues).
  // 0 = run to the end. For time-limited jobs and the resume tests.
  std::int64_t stop_at = 0;
  // The ranks of a data-parallel job (dist/connect.h); null = a single process.
  std::shared_ptr<parallel::Communicator> comm;
  // Config keys ("data.steps") that --resume may find changed (train/resume_check.h).
  std::vector<std::string> allowed_changes;
};

enum class Outcome {
  kComplete,   // every step ran
  kStopped,    // stop_at reached, checkpoint written
  kPreempted,  // SIGUSR1/SIGTERM received, checkpoint written at the next step boundary (dist/stop_signal.h)
};

// Runs (or resumes) a training run into out_dir. Throws lnfree::Error on bad input or divergence
// (parallel::CollectiveError when every rank stops together).
Outcome run_training(const TrainRequest& request);

}  // namespace lnfree::train
