// Turns the `--model` argument of the CLI into a model. Accepted forms:
//   a Hugging Face folder      DIR/config.json (+ DIR/model.safetensors for the weights)
//   a config.json or .safetensors file inside such a folder
//   a shape file               *.toml with a [model] table (random initialisation)
//   a name                     gpt2, gpt2-medium, gpt2-large, gpt2-xl, ... = configs/models/NAME.toml
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/gpt2_shape.h"

namespace lnfree::io {

struct ModelSource {
  std::string spec;  // what the user gave
  model::Gpt2Shape shape;
  std::string shape_origin;            // file the shape was read from
  std::optional<std::string> weights;  // model.safetensors, when the source has weights
};

ModelSource resolve_model_source(const std::string& spec);

constexpr const char* kModelOptionHelp =
    "Model: a Hugging Face folder (config.json + model.safetensors), a .toml shape file, or a name "
    "from configs/models (gpt2, gpt2-medium, gpt2-large, gpt2-xl, ...)";

}  // namespace lnfree::io

#include "model/gpt2.h"

namespace lnfree::io {

// Builds the model. Sources with weights load them; sources without need `random_init_seed` (a
// random model is never made silently), and get GPT-2's initialisation from that seed.
model::Gpt2 instantiate_model(const ModelSource& source, std::optional<std::uint64_t> random_init_seed);

}  // namespace lnfree::io
