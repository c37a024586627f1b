// The model half of a training checkpoint (RUN/step-NNNNNN/, train/checkpoint.h has the layout):
// which folders are checkpoints, how the LayerNorm state (fake flags, every sigma) is written into
// and read from state.json, and how a checkpoint becomes a model without the training state, so
// that `eval`, `export`, `interp` and `generate` take a run folder wherever they take a model.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/gpt2.h"

namespace lnfree::io {

inline constexpr int kCheckpointFormatVersion = 1;

// True when `dir` looks like a checkpoint folder (it holds state.json), complete or not.
bool is_checkpoint_folder(const std::string& dir);

// Reads and checks `folder`/state.json: format, version, and DONE beside it (a folder without
// DONE is an interrupted write and is refused, naming the folder).
nlohmann::json read_checkpoint_state(const std::string& folder);
// The shape recorded in state.json's "model" field.
model::Gpt2Shape checkpoint_shape(const nlohmann::json& state, const std::string& origin);

// Per LN name: {"fake_main", "fake_value", "eot_special", "bos_special", "sigma_initialised",
// and every sigma buffer by name}. Floats are written as doubles, so they round-trip exactly.
nlohmann::json ln_state_to_json(model::Gpt2& model);
void restore_ln_state(const nlohmann::json& ln_state, model::Gpt2& model, const std::string& origin);

// The model of a complete checkpoint folder: weights, sigma buffers and fake flags. `shape`, when
// given, replaces the recorded one (a caller's dropout or EOT id); the weights must still fit it.
model::Gpt2 load_checkpoint_model(const std::string& folder, const model::Gpt2Shape* shape = nullptr);

}  // namespace lnfree::io
