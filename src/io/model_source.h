// Turns the `--model` argument of the CLI into a model. Accepted forms:
//   a run folder               RUN/ (config.toml or run.h5): its newest complete checkpoint
//   a checkpoint folder        RUN/step-NNNNNN/ (state.json, DONE): weights, sigmas, fake flags
//   a Hugging Face folder      DIR/config.json (+ DIR/model.safetensors for the weights)
//   a folded export            DIR/config.json with model_type "lnfree-folded-gpt2" (io/export.h)
//   a config.json or .safetensors file inside a Hugging Face folder
//   a shape file               *.toml with a [model] table (random initialisation)
//   a name                     gpt2, gpt2-medium, gpt2-large, gpt2-xl, ... = configs/models/NAME.toml
#pragma once

#include <cstdint>
#include <memory>
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

#include "model/gpt2.h"
#include "model/language_model.h"

namespace lnfree::io {

// Builds the model. Sources with weights load them (a checkpoint with its sigmas and fake flags);
// sources without need `random_init_seed` (a random model is never made silently), and get GPT-2's
// initialisation from that seed. A folded export is not a Gpt2 and is refused here.
model::Gpt2 instantiate_model(const ModelSource& source, std::optional<std::uint64_t> random_init_seed);

// Any source with weights as a LanguageModel (folded exports included), for inference.
std::unique_ptr<model::LanguageModel> load_language_model(const ModelSource& source,
                                                          std::optional<std::uint64_t> random_init_seed = {});

}  // namespace lnfree::io
