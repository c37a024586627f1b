// Every check a training run can make before it computes anything, in one place: `lnfree train`
// runs it before it writes into the run folder, and `lnfree config` runs the same, so a config that
// `config` accepts does not fail at the start of `train`. Nothing is built or written.
//   - the model source resolves (run.init) and, with a vocabulary remap, has its vocabulary;
//   - the train split and every eval set open, carry the expected tokenizer hash
//     (data::expected_tokenizer_hash) and fit the model's vocabulary;
//   - data.seq_len fits n_positions, the batch splits into micro-batches on `world` ranks;
//   - the removal schedule expands for the model's depth and ends before the last step;
//   - the device and precision are available;
//   - run.norm applies to the model (apply_run_norm) and the resulting shape is valid.
#pragma once

#include <cstdint>

#include "config/train_config.h"
#include "model/gpt2_shape.h"

namespace lnfree::train {

struct PreflightResult {
  model::Gpt2Shape shape;  // the model's shape as the run will build it (not set without check_data)
  std::int64_t removal_events = 0;
};

// Throws lnfree::Error naming the file, the field and what was expected. `check_data` false checks
// only the config itself (batch split) and skips what belongs to the machine that will train (the
// model source, which a study may not have made yet, the token files, the device): for planning
// elsewhere, such as a SLURM login node.
PreflightResult preflight(const config::TrainConfig& cfg, int world, bool check_data = true);

// run.norm (docs/normalization.md) applied to the shape of run.init: "rmsnorm" turns a Pre-LN model
// into the RMSNorm model that computes the same function with the same parameters (writes centred
// in the forward, head still tied), so the weights load unchanged. Refuses a CRMSNorm model and
// "layernorm" on an RMSNorm model.
void apply_run_norm(const config::TrainConfig& cfg, model::Gpt2Shape& shape);

}  // namespace lnfree::train
