// Builds the model a resolved `--model` source (model_source.h) names: for training and export a
// model::Gpt2, for inference any model::LanguageModel (folded exports included).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "io/model_source.h"
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
