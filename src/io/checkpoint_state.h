// The torch-free half of a training checkpoint folder (RUN/step-NNNNNN/, train/checkpoint.h has the
// layout): which folders are checkpoints, and state.json read back and checked, with the model
// shape it records. `--model` resolution (model_source.h) and the resume checks read a checkpoint
// through it without LibTorch; the LayerNorm state and the weights are checkpoint_model.h's.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "model/gpt2_shape.h"

namespace lnfree::io {

inline constexpr int kCheckpointFormatVersion = 1;

// True when `dir` looks like a checkpoint folder (it holds state.json), complete or not.
bool is_checkpoint_folder(const std::string& dir);

// Reads and checks `folder`/state.json: format, version, and DONE beside it (a folder without
// DONE is an interrupted write and is refused, naming the folder).
nlohmann::json read_checkpoint_state(const std::string& folder);
// The shape recorded in state.json's "model" field.
model::Gpt2Shape checkpoint_shape(const nlohmann::json& state, const std::string& origin);

}  // namespace lnfree::io
