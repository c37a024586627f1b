// The aux loss's target σ̂ (spec §4), one value per optimizer step, whatever micro-batches and ranks
// the step is split into.
//
// The reference takes σ̂ from each micro-batch: the mean per-token std of ln_f's input over the
// micro-batch's ordinary positions (not position 0, not EOT). The gradient then depends on how a
// step is cut into micro-batches (2 × (σ̂_mb − σ̂_step) × d(Σσ)/dθ per micro-batch), which on the smoke
// config moved the σ of micro-batches of 2 and 8 apart by 3% while the cross-entropy agreed to 1e-5.
// An exact pooled σ̂ of the current step would need the step's forwards twice. lnfree uses the
// target pooled over all of the previous step's sequences (every micro-batch of every rank): a
// constant for the whole step, measured on weights one update older. A run's first step, and a
// resume from a checkpoint that has no target, measure it first on the step's own sequences in a
// forward without gradient and without dropout (train_step.cpp). docs/training.md states this.
#pragma once

#include <torch/torch.h>

#include <optional>

#include "parallel/communicator.h"

namespace lnfree::train {

class AuxTarget {
 public:
  bool known() const { return value_.defined(); }
  // The target of the current step: a 0-d fp32 tensor on the training device.
  const torch::Tensor& value() const { return value_; }
  // One micro-batch's [sum of σ over ordinary positions, their count] (model::aux_target_statistics).
  void record(const torch::Tensor& statistics);
  // Pools what every rank recorded since the last commit into the target of the next step (no host
  // sync); without records it keeps the target it has.
  void commit(parallel::Communicator& comm);

  // For checkpoints: the target as a number (a host sync; checkpoints sync anyway), or nothing
  // before the first step. restore() puts it on `device`; nothing makes the next step measure it.
  std::optional<double> checkpoint_value() const;
  void restore(std::optional<double> value, const torch::Device& device);

 private:
  torch::Tensor value_;    // 0-d fp32, undefined until the first commit
  torch::Tensor pending_;  // [2] float64 sums of this rank's records since the last commit
};

}  // namespace lnfree::train
