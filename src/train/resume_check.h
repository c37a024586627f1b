// What `--resume` may continue. The resolved config must be the one the run was started with
// (RUN/config.toml), and the newest checkpoint must have been written under that config: its
// state.json records the config hash. A changed config is refused, naming every differing key,
// unless each of those keys is allowed (`lnfree train --resume --allow-change data.steps`); an
// allowed change rewrites config.toml and is recorded in RUN/config-changes.json, whose "from"
// hashes stay acceptable for checkpoints written before it.
#pragma once

#include <string>
#include <vector>

#include "config/train_config.h"

namespace lnfree::train {

struct ResumePlan {
  std::vector<config::ConfigDifference> changes;  // allowed changes to apply (empty: none)
  std::string saved_hash;                         // config.toml's hash before them
};

// Throws lnfree::Error (naming the run folder, the checkpoint and the keys) when the resume is not
// allowed. Reads only; write_config_change applies the plan.
ResumePlan check_resume(const std::string& run_dir, const config::TrainConfig& resolved,
                        const std::vector<std::string>& allowed_keys);

// Rewrites config.toml with `resolved` and appends the change to config-changes.json (both atomic).
void write_config_change(const std::string& run_dir, const config::TrainConfig& resolved,
                         const ResumePlan& plan);

}  // namespace lnfree::train
