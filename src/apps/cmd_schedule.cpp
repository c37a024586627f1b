// lnfree schedule: the LN-removal events a training config produces, one per line.
#include <fmt/format.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "apps/command_registry.h"
#include "config/removal_schedule.h"
#include "config/train_config.h"
#include "io/model_source.h"

namespace lnfree::apps {
namespace {

struct ScheduleOptions {
  std::string config;
  std::vector<std::string> overrides;
  std::int64_t n_layer = 0;  // 0 = from run.init
};

void run_schedule(const ScheduleOptions& options) {
  const auto config = config::load_train_config(options.config, options.overrides);
  std::int64_t n_layer = options.n_layer;
  if (n_layer == 0) n_layer = io::resolve_model_source(config.run.init).shape.n_layer;
  const auto schedule = config::RemovalSchedule::of(config, n_layer);
  for (const auto& event : schedule.events()) {
    const std::string layer = event.layer == config::kWholeModel ? "-" : std::to_string(event.layer);
    fmt::print("{} {} {}\n", event.step, config::removal_kind_name(event.kind), layer);
  }
  // The summary goes to stderr so that stdout is exactly the event list.
  if (auto window = schedule.removal_window())
    fmt::print(stderr, "{} events for n_layer = {}; LayerNorm removal window [{}, {}] of steps 0 .. {}\n",
               schedule.events().size(), n_layer, window->first, window->second, config.data.steps - 1);
  else
    fmt::print(stderr, "no removal events (mode {})\n", config::enum_name(config.run.mode));
}

RegisterCommand reg("schedule", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("schedule", "Print the LayerNorm-removal events of a training config");
  auto options = std::make_shared<ScheduleOptions>();
  cmd->add_option("--config", options->config, "Training config (TOML; see docs/config.md)")->required();
  cmd->add_option("--set", options->overrides,
                  "Override a config field: section.key=value (repeatable; e.g. schedule.ln1v.gap=4, "
                  "data.steps=400, schedule.eot=none)");
  cmd->add_option("--n-layer", options->n_layer,
                  "Number of blocks; default: n_layer of the model named by run.init")
      ->check(CLI::PositiveNumber);
  cmd->footer(
      "Output: one event per line, `STEP KIND LAYER`, ordered by step, then kind in the order "
      "ln2 ln1qk ln1v lnf eot bos, then layer. LAYER is a block index, or `-` for a whole-model event "
      "(lnf, and any kind whose [schedule.KIND] has no gap). The events of step S fire before the "
      "first micro-batch of optimizer step S (steps run 0 .. data.steps-1). A summary line goes to "
      "stderr. The config is validated first: events at or after data.steps and collisions are errors.");
  cmd->callback([options] { run_schedule(*options); });
});

}  // namespace
}  // namespace lnfree::apps
