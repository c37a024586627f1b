// One optimizer step of the training loop (trainer.h gives the order of a step):
// `accumulation` micro-batches (forward, CE + aux_weight * aux loss, backward), the gradient average
// over the ranks, the LayerNorm statistics of every rank committed to the σ EMA, clipping and AdamW.
// Nothing is read back to the host: the totals stay on the device for the metrics (step_metrics.h).
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "train/training_setup.h"

namespace lnfree::train {

// A step's device values, 0-d tensors.
struct StepTotals {
  torch::Tensor ce_sum;     // float64 sum of the micro-batches' mean CE
  torch::Tensor aux_sum;    // float64 sum of their aux losses (0 when ln.aux_weight = 0)
  torch::Tensor grad_norm;  // global L2 norm before clipping
  // True when the loss or the gradient norm is not finite.
  torch::Tensor nonfinite() const;
};

// Runs optimizer step `step` at learning rate `lr` on this rank.
StepTotals run_train_step(TrainingSetup& run, std::int64_t step, double lr);

// The RNG seed of micro-batch `global_micro` (rank * accumulation + micro) of `step`: dropout masks
// depend on the position in the global batch only, not on the world size or on where a run resumed.
std::uint64_t micro_batch_seed(std::int64_t seed, std::int64_t step, std::int64_t global_micro);

}  // namespace lnfree::train
