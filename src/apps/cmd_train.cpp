// lnfree train: pretraining, vanilla fine-tuning or LN removal from one TOML config.
#include "apps/command_registry.h"
#include "config/train_config.h"
#include "train/trainer.h"

namespace lnfree::apps {
namespace {

struct TrainOptions {
  std::string config;
  std::string out;
  std::vector<std::string> overrides;
  bool resume = false;
  std::int64_t stop_at = 0;
};

RegisterCommand reg("train", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("train", "Train: pretrain, finetune (vanilla control) or remove-ln, from a config");
  auto options = std::make_shared<TrainOptions>();
  cmd->add_option("--config", options->config, "Run config (TOML; see docs/config.md and configs/)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", options->out, "Run folder: config.toml, run.h5, step-NNNNNN/ checkpoints")->required();
  cmd->add_option("--set", options->overrides,
                  "Override a config value, section.key=value (repeatable; type-checked; e.g. "
                  "--set optim.lr=3e-4 --set schedule.ln2.gap=4)");
  cmd->add_flag("--resume", options->resume,
                "Continue the run in --out from its newest complete checkpoint (same config and overrides)");
  cmd->add_option("--stop-at", options->stop_at,
                  "Stop after this many optimizer steps, writing a checkpoint there (continue with --resume)");
  cmd->footer(
      "Every run saves its resolved config (config.toml), writes an HDF5 log (run.h5, readable while it\n"
      "runs with h5py swmr=True) and atomic checkpoints. A resumed run continues bit for bit (CPU).");
  cmd->callback([options] {
    train::run_training({config::load_train_config(options->config, options->overrides), options->out, options->resume,
                        options->stop_at});
  });
});

}  // namespace
}  // namespace lnfree::apps
