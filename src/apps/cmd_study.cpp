// lnfree study: a whole scaling study (models x {control, schedule speeds}), then the analysis.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "apps/command_registry.h"
#include "config/train_config.h"
#include "study/study_config.h"
#include "study/study_plan.h"
#include "study/study_runner.h"
#include "study/study_summary.h"
#include "util/error.h"
#include "util/files.h"
#include "util/paths.h"

namespace fs = std::filesystem;

namespace lnfree::apps {
namespace {

struct StudyOptions {
  std::string config;
  std::string out;
  std::vector<std::string> overrides;
  bool print_plan = false;
  bool skip_analysis = false;
};

std::string self_executable() {
  std::error_code error;
  auto path = fs::read_symlink("/proc/self/exe", error);
  if (error) fail("study: cannot find the lnfree executable (/proc/self/exe): {}", error.message());
  return path.string();
}

void run_study(const StudyOptions& o) {
  auto config = study::load_study_config(o.config, o.overrides);
  auto plan = study::make_plan(config, o.out);
  if (o.print_plan) {
    for (const auto& job : plan.jobs) {
      std::string deps, args;
      for (const auto& d : job.deps) deps += (deps.empty() ? "" : ",") + d;
      for (const auto& a : job.args) args += " " + a;
      fmt::print("{}\t{}\t{}\t{}\n", job.id, deps.empty() ? "-" : deps, job.done_marker, "lnfree" + args);
    }
    return;
  }
  fs::create_directories(o.out);
  std::string saved = read_file(o.config);
  if (!o.overrides.empty()) {
    saved += "\n# lnfree study --set (applied over the file above):\n";
    for (const auto& assignment : o.overrides) saved += "#   " + assignment + "\n";
  }
  write_file_atomically((fs::path(o.out) / "study.toml").string(), saved);
  spdlog::info(
      "study '{}': {} models x {} seeds (from {}) x (control + {} speeds), {} jobs, {} at a time, into {}",
      config.name, config.models.size(), config.seeds, config.seed, config.speeds.size(), plan.jobs.size(),
      config.parallel, o.out);
  auto failed = study::run_plan(plan, {self_executable(), config.parallel, config.threads_per_run});
  if (!failed.empty()) {
    std::string list;
    for (const auto& id : failed) list += "\n  " + id;
    fail("study '{}': {} job(s) failed (logs in {}/logs):{}", config.name, failed.size(), o.out, list);
  }
  study::write_study_json(config, plan);
  if (!config.analysis || o.skip_analysis) return;
  const std::string source = default_source_dir();
  const std::string command =
      fmt::format("cd '{}' && /usr/bin/python3 -m analysis '{}'", source, fs::absolute(o.out).string());
  spdlog::info("study: analysis: {}", command);
  const int rc = std::system(command.c_str());
  if (rc != 0) fail("study '{}': the analysis failed (exit {}): {}", config.name, rc, command);
}

RegisterCommand reg("study", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("study",
                                  "Run a scaling study: pretrain/load each model, measure sigma, control + "
                                  "removal at each speed, analyse");
  auto o = std::make_shared<StudyOptions>();
  cmd->add_option("--config", o->config, "Study file (configs/study/*.toml)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out, "Study folder (re-running continues it: finished runs are skipped)")
      ->required();
  cmd->add_option("--set", o->overrides,
                  "Override a study-file field: section.key=value ([study], [data], [runs]; e.g. "
                  "--set study.seed=1 --set study.seeds=5); repeatable");
  cmd->add_flag(
      "--print-plan", o->print_plan,
      "Print the jobs (id, dependencies, done marker, command) one per line and exit (for SLURM arrays)");
  cmd->add_flag("--skip-analysis", o->skip_analysis, "Do not run analysis/ at the end");
  cmd->footer(
      "Layout: STUDY/study.json, runs/<model>/seed-<v>/{control,speed-<label>}/ (one run each, with\n"
      "run.h5), models/<model>/seed-<v>/{stats,original,zero-shot}.json, logs/, analysis/ (summary.json,\n"
      "summary.csv, plots). One seed-<v> folder per replicate: v = study.seed + r for r < study.seeds;\n"
      "each replicate has its own pretraining, control and removal runs.\n"
      "Pretrained models and vocabularies are cached in [study] cache, keyed by config hash.");
  cmd->callback([o] { run_study(*o); });
});

}  // namespace
}  // namespace lnfree::apps
