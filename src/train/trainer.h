// The training loop for all three modes (pretrain, finetune, remove-ln). One optimizer step:
//   1. removal events scheduled for this step are applied (before its first micro-batch, spec §3.1)
//   2. `accumulation` micro-batches: forward, CE (+ aux loss weight * aux), backward
//   3. global gradient norm, clipping, AdamW with the step's learning rate
//   4. at log intervals: metrics to the HDF5 run log and one console line; a non-finite loss or
//      gradient norm stops the run (the last checkpoint stays intact)
//   5. evaluation and checkpoints at their intervals and after the last step
// Nothing in a step reads values back to the host except at log, eval and checkpoint points.
#pragma once

#include <cstdint>
#include <string>

#include "config/train_config.h"

namespace lnfree::train {

struct TrainRequest {
  config::TrainConfig config;
  std::string out_dir;
  bool resume = false;
  // Stop once this many steps are done (a checkpoint is written there; --resume continues).
  // 0 = run to the end. For time-limited jobs and the resume tests.
  std::int64_t stop_at = 0;
};

// Runs (or resumes) a training run into out_dir. Throws lnfree::Error on bad input or divergence.
void run_training(const TrainRequest& request);

}  // namespace lnfree::train
