// Training checkpoints: RUN/step-NNNNNN/ holds
//   model.safetensors                every parameter under Hugging Face GPT-2 names (F32)
//   optimizer.safetensors            AdamW moments, "exp_avg.<param>" / "exp_avg_sq.<param>" (F32)
//   state.json                       format version, step, tokens, config hash, the model's shape
//                                    ("model", config.json's field names), LN flags and every
//                                    sigma buffer (exact: fp32 values round-trip through JSON),
//                                    loader position, CPU RNG state, the rollback state
//                                    (lr_scale, rollbacks), the aux loss's target of the next
//                                    step (aux_target, absent before the first step)
//   DONE                             written last: a folder without it is incomplete
// A checkpoint is assembled in a hidden temporary folder and renamed into place, so a crash never
// leaves a folder that looks complete. Only the newest `keep` complete checkpoints are kept.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "io/checkpoint_model.h"
#include "model/gpt2.h"
#include "train/adamw.h"

namespace lnfree::train {

inline constexpr int kCheckpointFormatVersion = io::kCheckpointFormatVersion;

struct CheckpointState {
  std::int64_t step = 0;    // the next optimizer step to run
  std::int64_t tokens = 0;  // training tokens consumed so far
  std::string config_hash;
  nlohmann::json loader;  // data::LoaderPosition::to_json()
  // optim.on_divergence = "rollback": the learning-rate factor in force from this step on, and
  // the rollbacks made so far (absent from older checkpoints: 1 and 0).
  double lr_scale = 1.0;
  std::int64_t rollbacks = 0;
  // The aux loss's target for the next step (train/aux_target.h); absent before a run's first step
  // and in older checkpoints: the next step then measures it.
  std::optional<double> aux_target;
};

void save_checkpoint(const std::string& run_dir, model::Gpt2& model, const AdamW& optimizer,
                     const CheckpointState& state, std::int64_t keep);

// Removes the hidden ".step-NNNNNN.tmp-PID" folders of run_dir that another process left (a writer
// killed mid-checkpoint); call it only while holding the run folder's lock, so that no live writer
// owns them. Returns how many were removed.
int remove_stale_partial_checkpoints(const std::string& run_dir);

// optim.on_divergence = "rollback": the step of the checkpoint a rollback returns to. The newest complete
// one, unless a rollback already returned there and the run diverged again before writing a newer one (its
// weights may be finite but already past saving): then the one before it, where one is kept.
std::int64_t rollback_target(const std::string& run_dir);
// Records in `folder`'s state.json (atomically) that the run continues from it with `lr_scale`
// after `rollbacks` rollbacks, and removes every newer checkpoint (the abandoned history), so that a
// resume from the folder continues exactly as the run does.
void mark_rollback_target(const std::string& run_dir, const std::string& folder, double lr_scale,
                          std::int64_t rollbacks);

// Restores weights, LN state, optimizer and RNG; returns the rest of the state.
CheckpointState load_checkpoint(const std::string& folder, model::Gpt2& model, AdamW& optimizer);

}  // namespace lnfree::train
