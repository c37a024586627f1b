// The end of a complete run: RUN/final/, a Hugging Face GPT-2 folder that is the input of the next
// run (run.init), of `lnfree score` and `lnfree stats`, and of other tools. An LN-free model is
// written with the eps trick (io/export.h); the run folder itself keeps the exact checkpoint.
#pragma once

#include <string>

#include "config/train_config.h"
#include "model/gpt2.h"

namespace lnfree::train {

// Replaces RUN/final/ with `model`. A remove-ln run whose schedule left a LayerNorm path real gets
// a warning and no final folder (it is not LN-free; its checkpoint is).
void write_final_model(model::Gpt2& model, const config::TrainConfig& cfg, const std::string& run_dir);

}  // namespace lnfree::train
