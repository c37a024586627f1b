#include "io/model_instantiate.h"

#include "io/checkpoint_model.h"
#include "io/export.h"
#include "io/hf_gpt2.h"
#include "util/error.h"

namespace lnfree::io {

model::Gpt2 instantiate_model(const ModelSource& source, std::optional<std::uint64_t> random_init_seed) {
  if (source.kind == ModelKind::kFolded)
    fail(
        "{}: a folded export has no LayerNorm modules and cannot be trained or re-exported; it serves eval, "
        "score, generate and interp",
        source.spec);
  if (!source.weights && !random_init_seed)
    fail(
        "{}: has no weights (model.safetensors); pass --random-init SEED to use a randomly "
        "initialised model of this shape",
        source.spec);
  torch::manual_seed(random_init_seed.value_or(0));
  if (source.kind == ModelKind::kCheckpoint && source.weights)
    return load_checkpoint_model(source.folder, &source.shape);
  model::Gpt2 model(source.shape);
  if (source.weights) io::load_weights_into(model, *source.weights);
  return model;
}

std::unique_ptr<model::LanguageModel> load_language_model(const ModelSource& source,
                                                          std::optional<std::uint64_t> random_init_seed) {
  if (source.kind == ModelKind::kFolded) return model::as_language_model(load_folded(source.folder));
  return model::as_language_model(instantiate_model(source, random_init_seed));
}

}  // namespace lnfree::io
