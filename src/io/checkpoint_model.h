// The model half of a training checkpoint (RUN/step-NNNNNN/, train/checkpoint.h has the layout):
// how the LayerNorm state (fake flags, every sigma) is written into and read from state.json, and
// how a checkpoint becomes a model without the training state, so that `eval`, `export`, `interp`
// and `generate` take a run folder wherever they take a model. Which folders are checkpoints and
// state.json itself are torch-free (checkpoint_state.h).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "io/checkpoint_state.h"
#include "model/gpt2.h"

namespace lnfree::io {

// Per LN name: {"fake_main", "fake_value", "eot_special", "bos_special", "sigma_initialised",
// and every sigma buffer by name}. Floats are written as doubles, so they round-trip exactly.
nlohmann::json ln_state_to_json(model::Gpt2& model);
void restore_ln_state(const nlohmann::json& ln_state, model::Gpt2& model, const std::string& origin);

// The model of a complete checkpoint folder: weights, sigma buffers and fake flags. `shape`, when
// given, replaces the recorded one (a caller's dropout or EOT id); the weights must still fit it.
model::Gpt2 load_checkpoint_model(const std::string& folder, const model::Gpt2Shape* shape = nullptr);

}  // namespace lnfree::io
