#include "io/checkpoint_state.h"

#include <filesystem>

#include "log/run_folder.h"
#include "util/error.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace lnfree::io {

bool is_checkpoint_folder(const std::string& dir) { return fs::exists(fs::path(dir) / "state.json"); }

nlohmann::json read_checkpoint_state(const std::string& folder) {
  const std::string state_path = (fs::path(folder) / "state.json").string();
  if (!fs::exists(run_folder::done_path(folder)))
    fail(
        "{}: incomplete checkpoint (no DONE file: its write was interrupted); use a complete step-NNNNNN/ "
        "folder or the run folder (its newest complete checkpoint)",
        folder);
  nlohmann::json json = read_json_file(state_path);
  if (json.value("format", "") != "lnfree-checkpoint" ||
      json.value("format_version", 0) != kCheckpointFormatVersion)
    fail("{}: field 'format_version': expected lnfree-checkpoint version {}", state_path,
         kCheckpointFormatVersion);
  return json;
}

model::Gpt2Shape checkpoint_shape(const nlohmann::json& state, const std::string& origin) {
  if (!state.contains("model"))
    fail(
        "{}: field 'model' (the model's shape) missing: the checkpoint was written by an lnfree before "
        "2026-12-02; resume the run once to rewrite it",
        origin);
  return model::shape_from_hf_json(state.at("model"), origin + ": field 'model'");
}

}  // namespace lnfree::io
