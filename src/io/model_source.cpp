#include "io/model_source.h"

#include <filesystem>

#include "util/error.h"

namespace fs = std::filesystem;

namespace lnfree::io {
namespace {

ModelSource from_hf_folder(const std::string& spec, const fs::path& dir) {
  ModelSource source{spec, {}, (dir / "config.json").string(), std::nullopt};
  if (!fs::exists(source.shape_origin))
    fail("{}: not a Hugging Face model folder: missing {}", spec, source.shape_origin);
  source.shape = model::shape_from_hf_config(source.shape_origin);
  fs::path weights = dir / "model.safetensors";
  if (fs::exists(weights)) source.weights = weights.string();
  return source;
}

}  // namespace

ModelSource resolve_model_source(const std::string& spec) {
  fs::path path(spec);
  if (fs::is_directory(path)) return from_hf_folder(spec, path);
  if (fs::is_regular_file(path)) {
    const auto ext = path.extension().string();
    if (ext == ".toml") return {spec, model::shape_from_toml_file(spec), spec, std::nullopt};
    if (ext == ".json" || ext == ".safetensors") {
      auto source = from_hf_folder(spec, path.has_parent_path() ? path.parent_path() : fs::path("."));
      if (ext == ".safetensors") source.weights = spec;
      return source;
    }
    fail("{}: expected a model folder, a .toml shape file, config.json or a .safetensors file", spec);
  }
  if (spec.find('/') != std::string::npos) fail("{}: no such file or folder", spec);
  std::string toml = model::named_shape_path(spec);
  return {spec, model::shape_from_toml_file(toml), toml, std::nullopt};
}

}  // namespace lnfree::io

#include "io/hf_gpt2.h"

namespace lnfree::io {

model::Gpt2 instantiate_model(const ModelSource& source, std::optional<std::uint64_t> random_init_seed) {
  if (!source.weights && !random_init_seed)
    fail(
        "{}: has no weights (model.safetensors); pass --random-init SEED to use a randomly "
        "initialised model of this shape",
        source.spec);
  torch::manual_seed(random_init_seed.value_or(0));
  model::Gpt2 model(source.shape);
  if (source.weights) io::load_weights_into(model, *source.weights);
  return model;
}

}  // namespace lnfree::io
