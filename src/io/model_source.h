// Turns the `--model` argument of the CLI into a model source: its kind, shape and weights file.
// Accepted forms:
//   a run folder               RUN/ (config.toml or run.h5): its newest complete checkpoint
//   a checkpoint folder        RUN/step-NNNNNN/ (state.json, DONE): weights, sigmas, fake flags
//   a Hugging Face folder      DIR/config.json (+ DIR/model.safetensors for the weights)
//   a folded export            DIR/config.json with model_type "lnfree-folded-gpt2" (io/folded_format.h)
//   a config.json or .safetensors file inside a Hugging Face folder
//   a shape file               *.toml with a [model] table (random initialisation)
//   a name                     gpt2, gpt2-medium, gpt2-large, gpt2-xl, ... = configs/models/NAME.toml
// Resolution is torch-free (it reads config.json, state.json or a .toml, never the weights), so that
// the study planner knows every model's shape without LibTorch; building the model from a source is
// model_instantiate.h's job.
#pragma once

#include <optional>
#include <string>

#include "model/gpt2_shape.h"

namespace lnfree::io {

enum class ModelKind { kHfFolder, kShape, kCheckpoint, kFolded };

struct ModelSource {
  std::string spec;  // what the user gave
  model::Gpt2Shape shape;
  std::string shape_origin;            // file the shape was read from
  std::optional<std::string> weights;  // model.safetensors, when the source has weights
  ModelKind kind = ModelKind::kHfFolder;
  std::string folder;  // the checkpoint or folded folder (kCheckpoint, kFolded)
};

ModelSource resolve_model_source(const std::string& spec);

constexpr const char* kModelOptionHelp =
    "Model: a run folder (its newest complete checkpoint), a step-NNNNNN/ checkpoint folder, a Hugging Face "
    "folder (config.json + model.safetensors), a folded export (lnfree export --format folded), a .toml "
    "shape file, or a name from configs/models (gpt2, gpt2-medium, gpt2-large, gpt2-xl, ...)";

}  // namespace lnfree::io
