// A non-finite loss or gradient norm: the run diverged. The first such step is kept on the device,
// so that no step waits for the host; the loop reads it at log steps (with the step's metrics) and
// before every checkpoint, so that a checkpoint never holds weights updated from a non-finite step.
// optim.on_divergence decides what follows: "stop" ends the run as diverged (run.h5's status, the
// DIVERGED file, an error every rank raises together), "rollback" returns every rank to the newest
// complete checkpoint (further back when it diverges again) with the learning rate times
// optim.rollback_lr_factor, until optim.max_rollbacks.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>

#include "log/run_log.h"
#include "train/step_metrics.h"
#include "train/train_step.h"
#include "train/training_setup.h"

namespace lnfree::train {

class Divergence {
 public:
  // Before the first step: a run that may roll back gets a checkpoint to return to.
  Divergence(TrainingSetup& run, StepMetrics& metrics);

  // Records `step` as the first non-finite step when its totals are not finite (on the device).
  void mark(const StepTotals& totals, std::int64_t step);
  // The first non-finite step so far, -1: none (0-d int64 on the device, for StepMetrics::push).
  const torch::Tensor& first_nonfinite() const { return first_nonfinite_; }
  // The same, read now (waits for the device).
  std::int64_t read_first_nonfinite() const { return first_nonfinite_.item<std::int64_t>(); }

  // Acts on `first`, the first non-finite step seen at the check after step `step_now` (-1: none),
  // taken over every rank: nothing (nullopt), a rollback (the step to continue from; the weights,
  // optimizer, loader, position and `log` are rewound), or an error once the run has diverged.
  std::optional<std::int64_t> check(std::int64_t first, std::int64_t step_now,
                                    std::optional<runlog::RunLog>& log, const runlog::RunLogSpec& spec);

 private:
  std::int64_t roll_back(std::int64_t first, const std::string& message, std::optional<runlog::RunLog>& log,
                         const runlog::RunLogSpec& spec);

  TrainingSetup& run_;
  StepMetrics& metrics_;
  torch::Tensor first_nonfinite_;
};

}  // namespace lnfree::train
