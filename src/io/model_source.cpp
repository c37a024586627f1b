#include "io/model_source.h"

#include <filesystem>

#include "io/checkpoint_model.h"
#include "io/export.h"
#include "log/run_folder.h"
#include "util/error.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace lnfree::io {
namespace {

ModelSource shape_source(const std::string& spec, const model::Gpt2Shape& shape, const std::string& origin) {
  ModelSource source;
  source.spec = spec;
  source.shape = shape;
  source.shape_origin = origin;
  source.kind = ModelKind::kShape;
  return source;
}

ModelSource weights_source(const std::string& spec, const std::string& origin,
                           std::optional<std::string> weights) {
  ModelSource source;
  source.spec = spec;
  source.shape_origin = origin;
  source.weights = std::move(weights);
  return source;
}

ModelSource from_hf_folder(const std::string& spec, const fs::path& dir) {
  ModelSource source = weights_source(spec, (dir / "config.json").string(), std::nullopt);
  if (!fs::exists(source.shape_origin))
    fail(
        "{}: not a model folder: no config.json (Hugging Face or folded export), state.json (checkpoint) or "
        "config.toml / run.h5 (run folder)",
        spec);
  source.shape = model::shape_from_hf_config(source.shape_origin);
  fs::path weights = dir / "model.safetensors";
  if (fs::exists(weights)) source.weights = weights.string();
  return source;
}

ModelSource from_checkpoint(const std::string& spec, const fs::path& dir) {
  ModelSource source =
      weights_source(spec, (dir / "state.json").string(), (dir / "model.safetensors").string());
  source.kind = ModelKind::kCheckpoint;
  source.folder = dir.string();
  source.shape = checkpoint_shape(read_checkpoint_state(dir.string()), source.shape_origin);
  return source;
}

ModelSource from_directory(const std::string& spec, const fs::path& dir) {
  if (is_checkpoint_folder(dir.string())) return from_checkpoint(spec, dir);
  if (is_folded_folder(dir.string())) {
    ModelSource source =
        weights_source(spec, (dir / "config.json").string(), (dir / "model.safetensors").string());
    source.kind = ModelKind::kFolded;
    source.folder = dir.string();
    source.shape = model::shape_from_hf_json(read_json_file(source.shape_origin), source.shape_origin);
    return source;
  }
  if (!fs::exists(dir / "config.json") && run_folder::holds_run(dir.string())) {
    if (auto latest = run_folder::latest_checkpoint(dir.string())) return from_checkpoint(spec, *latest);
    const fs::path final_dir = run_folder::final_path(dir.string());
    if (fs::exists(final_dir / "config.json")) return from_hf_folder(spec, final_dir);
    fail("{}: run folder without a complete checkpoint (no step-NNNNNN/ with DONE, no final/)", spec);
  }
  return from_hf_folder(spec, dir);
}

}  // namespace

ModelSource resolve_model_source(const std::string& spec) {
  fs::path path(spec);
  if (fs::is_directory(path)) return from_directory(spec, path);
  if (fs::is_regular_file(path)) {
    const auto ext = path.extension().string();
    if (ext == ".toml") return shape_source(spec, model::shape_from_toml_file(spec), spec);
    if (ext == ".json" || ext == ".safetensors") {
      auto source = from_hf_folder(spec, path.has_parent_path() ? path.parent_path() : fs::path("."));
      if (ext == ".safetensors") source.weights = spec;
      return source;
    }
    fail("{}: expected a model folder, a .toml shape file, config.json or a .safetensors file", spec);
  }
  if (spec.find('/') != std::string::npos) fail("{}: no such file or folder", spec);
  std::string toml = model::named_shape_path(spec);
  return shape_source(spec, model::shape_from_toml_file(toml), toml);
}

}  // namespace lnfree::io

#include "io/hf_gpt2.h"

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
