// Everything a training run holds from its first step to its last, and the start-up that makes it:
// the checks every rank agrees on, the run folder's lock, the device, the model, the data, the
// optimizer, the removal schedule, the position to start from (a resumed checkpoint's) and the
// gradient reducer. The training loop (trainer.cpp) only steps what this holds.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/token_loader.h"
#include "model/gpt2.h"
#include "parallel/gradient_reducer.h"
#include "train/adamw.h"
#include "train/aux_target.h"
#include "train/checkpoint.h"
#include "train/removal_events.h"
#include "train/trainer.h"
#include "util/run_lock.h"

namespace lnfree::train {

// One held-out set, logged as /eval/<name> in run.h5.
struct EvalTarget {
  std::string name;
  std::shared_ptr<const data::TokenSplit> split;
};

// Where the run stands between steps: what a checkpoint records besides weights and optimizer state.
struct RunPosition {
  std::int64_t step = 0;    // the next optimizer step to run
  std::int64_t tokens = 0;  // training tokens consumed so far
  // optim.on_divergence = "rollback": the learning-rate factor in force and the rollbacks so far.
  double lr_scale = 1.0;
  std::int64_t rollbacks = 0;
};

struct TrainingSetup {
  const config::TrainConfig* cfg = nullptr;  // the request's
  std::string out;                           // the run folder
  std::string config_hash;
  std::shared_ptr<parallel::Communicator> comm;
  int rank = 0, world = 1;
  bool leader = true;             // rank 0: the one rank that writes the run folder
  std::unique_ptr<RunLock> lock;  // rank 0's: one writer per run folder
  bool resumed = false;           // continues a run (--resume, or --resume=auto that found one)

  torch::Device device{torch::kCPU};
  bool bf16_autocast = false;  // run.precision = "bf16"
  model::Gpt2 model{nullptr};

  std::unique_ptr<data::TokenLoader> loader;  // this rank's slice of every global batch
  std::int64_t accumulation = 1;              // micro-batches per rank per step
  std::int64_t tokens_per_step = 0;           // over all ranks
  std::vector<EvalTarget> eval_sets;          // at intervals (eval.max_windows)
  std::vector<EvalTarget> final_eval_sets;    // once after the last step, every window ("<name>.full")

  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<parallel::GradientReducer> reducer;  // a no-op in a world of one
  std::unique_ptr<RemovalEvents> removal;
  AuxTarget aux_target;  // the aux loss's target, pooled per optimizer step
  RunPosition position;  // where the loop starts

  const config::TrainConfig& config() const { return *cfg; }
  // What a checkpoint written before step `next_step` records.
  CheckpointState checkpoint_state(std::int64_t next_step) const;
};

// Validates the request on every rank (model source, data, vocabulary, batch split, schedule,
// device: the checks of `lnfree config`), takes the run folder's lock, decides --resume=auto, builds
// the model, data, optimizer and reducer, loads the checkpoint to resume from, makes every rank start
// from rank 0's weights, and only then writes config.toml: a start that fails writes nothing but the
// lock file. The run log is opened by the caller (run_metrics.h), so that a failure after it is
// recorded there.
TrainingSetup set_up_training(const TrainRequest& request);

}  // namespace lnfree::train
