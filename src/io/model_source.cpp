#include "io/model_source.h"

#include <filesystem>
#include <utility>

#include "io/checkpoint_state.h"
#include "io/folded_format.h"
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
    if (fs::exists(final_dir / "config.json")) return from_directory(spec, final_dir);  // hf or folded
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
