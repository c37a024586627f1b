// lnfree config: validate a training config and print it resolved (canonical TOML) or its hash.
#include <fmt/format.h>

#include "apps/command_registry.h"
#include "config/train_config.h"
#include "train/preflight.h"

namespace lnfree::apps {
namespace {

struct ConfigOptions {
  std::string config;
  std::vector<std::string> overrides;
  bool hash = false;
  bool skip_data = false;
};

RegisterCommand reg("config", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("config", "Validate a training config and print the resolved config");
  auto options = std::make_shared<ConfigOptions>();
  cmd->add_option("--config", options->config, "Training config (TOML; see docs/config.md)")->required();
  cmd->add_option("--set", options->overrides,
                  "Override a config field: section.key=value (repeatable; e.g. optim.lr=3e-4, "
                  "eval.sets=a.json:val,b.json:val, schedule.ln2.gap=none)");
  cmd->add_flag("--hash", options->hash, "Print only the config hash (SHA-256 of the resolved TOML)");
  cmd->add_flag("--skip-data", options->skip_data,
                "Check the config alone (types, ranges, batch split) and skip what belongs to the training "
                "machine: the model source, token files and device (for planning elsewhere, e.g. a SLURM "
                "login node)");
  cmd->footer(
      "Output: the resolved config as canonical TOML (every section and field, defaults written out, "
      "overrides applied), the text saved with every run; with --hash, its SHA-256 in hex. Exits 1 "
      "with a message naming the file and field when the config is invalid. The checks are those `lnfree "
      "train` makes before it starts (src/train/preflight.h): model source, data and eval manifests "
      "(tokenizer hash, vocabulary), context length, batch split, removal schedule, device.");
  cmd->callback([options] {
    const auto config = config::load_train_config(options->config, options->overrides);
    train::preflight(config, /*world=*/1, !options->skip_data);
    if (options->hash) {
      fmt::print("{}\n", config::config_hash(config));
    } else {
      fmt::print("{}", config::to_canonical_toml(config));
    }
  });
});

}  // namespace
}  // namespace lnfree::apps
