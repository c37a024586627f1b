#include "train/resume_check.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "io/checkpoint_state.h"
#include "log/run_folder.h"
#include "util/error.h"
#include "util/files.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace lnfree::train {
namespace {

const char* kChangesFile = "config-changes.json";

nlohmann::json read_changes(const std::string& run_dir) {
  const auto path = (fs::path(run_dir) / kChangesFile).string();
  if (!fs::exists(path)) return nlohmann::json::array();
  auto json = read_json_file(path);
  if (!json.is_array()) fail("{}: expected a JSON array of config changes", path);
  return json;
}

}  // namespace

ResumePlan check_resume(const std::string& run_dir, const config::TrainConfig& resolved,
                        const std::vector<std::string>& allowed_keys) {
  const auto config_path = run_folder::config_path(run_dir);
  if (!fs::exists(config_path)) fail("{}: nothing to resume (no config.toml)", run_dir);
  const auto saved = config::parse_train_config(read_file(config_path), config_path);
  ResumePlan plan;
  plan.saved_hash = config::config_hash(saved);

  // The newest checkpoint must belong to this config (or to one it was changed from).
  if (auto latest = run_folder::latest_checkpoint(run_dir)) {
    const auto state = io::read_checkpoint_state(*latest);
    const auto written_under = state.value("config_hash", std::string());
    std::vector<std::string> accepted{plan.saved_hash};
    for (const auto& change : read_changes(run_dir)) accepted.push_back(change.value("from", std::string()));
    if (std::find(accepted.begin(), accepted.end(), written_under) == accepted.end())
      fail(
          "{}: was written under config hash {}, but {} has hash {}: the run folder's config was replaced "
          "(by a second writer, or by hand); refusing to continue these checkpoints under another config",
          *latest, written_under.substr(0, 12), config_path, plan.saved_hash.substr(0, 12));
  }

  const auto differences = config::config_differences(saved, resolved);
  if (differences.empty()) return plan;
  std::string listed, refused;
  for (const auto& d : differences) {
    listed += fmt::format("\n  {}: {} -> {}", d.key, d.before, d.after);
    if (std::find(allowed_keys.begin(), allowed_keys.end(), d.key) == allowed_keys.end())
      refused += (refused.empty() ? "" : " ") + std::string("--allow-change ") + d.key;
  }
  if (!refused.empty())
    fail(
        "{}: the resolved config differs from the run's saved config in {} key(s):{}\nresume with the same "
        "config and overrides, or allow the change explicitly with {}",
        config_path, differences.size(), listed, refused);
  plan.changes = differences;
  return plan;
}

void write_config_change(const std::string& run_dir, const config::TrainConfig& resolved,
                         const ResumePlan& plan) {
  if (plan.changes.empty()) return;
  auto changes = read_changes(run_dir);
  nlohmann::json keys = nlohmann::json::array();
  for (const auto& d : plan.changes)
    keys.push_back({{"key", d.key}, {"before", d.before}, {"after", d.after}});
  std::optional<std::string> latest = run_folder::latest_checkpoint(run_dir);
  changes.push_back({{"from", plan.saved_hash},
                     {"to", config::config_hash(resolved)},
                     {"at_checkpoint", latest ? fs::path(*latest).filename().string() : std::string("none")},
                     {"changes", keys}});
  write_file_atomically((fs::path(run_dir) / kChangesFile).string(), changes.dump(1) + "\n");
  write_file_atomically(run_folder::config_path(run_dir), config::to_canonical_toml(resolved));
}

}  // namespace lnfree::train
