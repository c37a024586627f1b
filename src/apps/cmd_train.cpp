// lnfree train: pretraining, vanilla fine-tuning or LN removal from one TOML config.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apps/command_registry.h"
#include "config/train_config.h"
#include "parallel/connect.h"
#include "parallel/run_guard.h"
#include "parallel/stop_signal.h"
#include "train/trainer.h"

namespace lnfree::apps {
namespace {

struct TrainOptions {
  std::string config;
  std::string out;
  std::vector<std::string> overrides;
  std::string resume;  // "", "always" (--resume) or "auto" (--resume=auto)
  std::int64_t stop_at = 0;
  std::vector<std::string> allowed_changes;
};

RegisterCommand reg("train", [](CLI::App& root) {
  auto* cmd =
      root.add_subcommand("train", "Train: pretrain, finetune (vanilla control) or remove-ln, from a config");
  auto options = std::make_shared<TrainOptions>();
  cmd->add_option("--config", options->config, "Run config (TOML; see docs/config.md and configs/)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", options->out, "Run folder: config.toml, run.h5, step-NNNNNN/ checkpoints")
      ->required();
  cmd->add_option("--set", options->overrides,
                  "Override a config value, section.key=value (repeatable; type-checked; e.g. "
                  "--set optim.lr=3e-4 --set schedule.ln2.gap=4)");
  cmd->add_flag("--resume{always}", options->resume,
                "Continue the run in --out from its newest complete checkpoint (same config and overrides). "
                "--resume=auto: continue it when --out holds a run, start one otherwise (for jobs that may "
                "be requeued)")
      ->check(CLI::IsMember({"always", "auto"}));
  cmd->add_option("--allow-change", options->allowed_changes,
                  "With --resume: let this config key differ from the run's saved config (repeatable; e.g. "
                  "--allow-change data.steps); the change is recorded in config-changes.json");
  cmd->add_option(
      "--stop-at", options->stop_at,
      "Stop after this many optimizer steps, writing a checkpoint there (continue with --resume)");
  cmd->footer(
      "Every run saves its resolved config (config.toml), writes an HDF5 log (run.h5, readable while it\n"
      "runs with h5py swmr=True) and atomic checkpoints. A resumed run continues bit for bit (CPU).\n"
      "\n"
      "Data parallel: start N ranks with mpirun or srun (launch/mpirun-local.sh -n 2 -t 1 -- train ...,\n"
      "slurm/); each rank trains on its share of every step's tokens, rank 0 writes the run folder, and\n"
      "a checkpoint resumes on any number of ranks. Settings: [dist] in the config (docs/distributed.md).\n"
      "SIGUSR1, SIGTERM or SIGINT (Ctrl-C): checkpoint at the next step boundary and exit with code 75\n"
      "(resume with --resume); a second signal ends the process at once. A rank that fails ends the whole\n"
      "job with a non-zero exit code.");
  cmd->callback([options] {
    // Before any work: a signal during start-up is honoured at the first step boundary.
    const parallel::StopSignal early_signals;
    auto config = config::load_train_config(options->config, options->overrides);
    auto comm = parallel::connect(
        {config.run.device == config::Device::kCuda ? parallel::Memory::kCuda : parallel::Memory::kHost,
         static_cast<double>(config.dist.timeout_s)});
    if (comm->world_size() > 1) {
      // Every line names its rank; progress lines come from rank 0 only.
      spdlog::set_pattern(
          fmt::format("[%Y-%m-%d %H:%M:%S.%e] [rank {}/{}] [%^%l%$] %v", comm->rank(), comm->world_size()));
      if (comm->rank() != 0) spdlog::set_level(spdlog::level::warn);
    }
    const int code = parallel::run_or_abort(*comm, [&] {
      train::TrainRequest request;
      request.config = std::move(config);
      request.out_dir = options->out;
      request.resume = options->resume == "always";
      request.resume_if_any = options->resume == "auto";
      request.stop_at = options->stop_at;
      request.comm = comm;
      request.allowed_changes = options->allowed_changes;
      const auto outcome = train::run_training(request);
      return outcome == train::Outcome::kPreempted ? parallel::kPreemptedExitCode : 0;
    });
    if (code != 0) throw CLI::RuntimeError(code);
  });
});

}  // namespace
}  // namespace lnfree::apps
