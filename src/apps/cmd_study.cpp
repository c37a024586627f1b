// lnfree study: a whole scaling study (models x {control, schedule speeds}), then the analysis.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "apps/command_registry.h"
#include "config/train_config.h"
#include "data/token_loader.h"
#include "data/vocab_remap.h"
#include "study/study_config.h"
#include "study/study_plan.h"
#include "study/study_runner.h"
#include "util/error.h"
#include "util/files.h"
#include "util/json_file.h"
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

// Cross-entropy of the first eval set under the training split's unigram distribution (add-one
// smoothing): the loss a model that ignores context would reach.
double unigram_eval_loss(const study::StudyConfig& c, const study::StudyPlan& plan) {
  auto remap = data::VocabRemap::load_optional(plan.vocab_path);
  const std::string tokenizer_hash = data::expected_tokenizer_hash(remap.get());
  auto train = data::TokenSplit::from_manifest(c.train, "train", tokenizer_hash, remap);
  auto set = config::parse_eval_set(c.eval_sets.front(), c.origin);
  auto eval = data::TokenSplit::from_manifest(set.manifest, set.split, tokenizer_hash, remap);
  const std::size_t vocab = remap ? static_cast<std::size_t>(remap->vocab_size()) : 50257;
  auto counts = [&](const data::TokenSplit& split) {
    std::vector<double> n(vocab, 0.0);
    std::vector<std::int64_t> buffer(1 << 20);
    for (std::uint64_t begin = 0; begin < split.size(); begin += buffer.size()) {
      const std::uint64_t k = std::min<std::uint64_t>(buffer.size(), split.size() - begin);
      split.copy(begin, k, buffer.data());
      for (std::uint64_t i = 0; i < k; ++i) n[static_cast<std::size_t>(buffer[i])] += 1;
    }
    return n;
  };
  auto p = counts(*train), q = counts(*eval);
  double total = static_cast<double>(train->size() + vocab), ce = 0, n = 0;
  for (std::size_t i = 0; i < vocab; ++i) {
    ce -= q[i] * std::log((p[i] + 1) / total);
    n += q[i];
  }
  return ce / n;
}

double read_loss(const std::string& path) {
  auto json = read_json_file(path);
  return json.at("loss").begin().value().get<double>();
}

void write_study_json(const study::StudyConfig& c, const study::StudyPlan& plan, bool final) {
  nlohmann::json sizes = nlohmann::json::array();
  for (const auto& s : plan.sizes) {
    nlohmann::json entry = {{"name", s.name},
                            {"n_layer", s.n_layer},
                            {"n_params_nonembed", s.params_non_embedding},
                            {"n_params_total", s.params_total}};
    // Per replicate, and their mean at the size's level (where every replicate has the value).
    nlohmann::json replicates = nlohmann::json::array();
    std::map<std::string, std::pair<double, std::size_t>> sums;
    for (const auto& r : s.replicates) {
      nlohmann::json rep = {{"seed", r.seed}, {"dir", r.dir}};
      for (const auto& [key, path] : {std::pair{"original_eval_loss", r.original_eval},
                                      std::pair{"zero_shot_eval_loss", r.zero_shot_eval}}) {
        if (!final || !fs::exists(path)) continue;
        rep[key] = read_loss(path);
        sums[key].first += rep[key].get<double>();
        sums[key].second += 1;
      }
      replicates.push_back(rep);
    }
    for (const auto& [key, sum] : sums)
      if (sum.second == s.replicates.size()) entry[key] = sum.first / static_cast<double>(sum.second);
    entry["replicates"] = replicates;
    sizes.push_back(entry);
  }
  // The fixed budget for the "final gap": the shortest control's full fine-tuning.
  std::int64_t budget = 0;
  for (const auto& s : plan.sizes)
    budget = budget == 0 ? s.control_tokens : std::min(budget, s.control_tokens);
  nlohmann::json json = {{"name", c.name},
                         {"delta", c.delta},
                         {"eval_set", plan.eval_set_name},
                         {"budget_tokens", budget},
                         {"seeds", plan.seeds},
                         {"sizes", sizes}};
  if (!plan.vocab_path.empty()) {
    auto vocab = read_json_file(plan.vocab_path);
    json["vocab"] = {
        {"top", vocab["top"]}, {"vocab_size", vocab["vocab_size"]}, {"unk_share", vocab["unk_share"]}};
  }
  if (final) json["unigram_eval_loss"] = unigram_eval_loss(c, plan);
  write_file_atomically((fs::path(plan.out_dir) / "study.json").string(), json.dump(1) + "\n");
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
  spdlog::info("study '{}': {} models x {} seeds (from {}) x (control + {} speeds), {} jobs, {} at a time, into {}",
               config.name, config.models.size(), config.seeds, config.seed, config.speeds.size(),
               plan.jobs.size(), config.parallel, o.out);
  auto failed = study::run_plan(plan, {self_executable(), config.parallel, config.threads_per_run});
  if (!failed.empty()) {
    std::string list;
    for (const auto& id : failed) list += "\n  " + id;
    fail("study '{}': {} job(s) failed (logs in {}/logs):{}", config.name, failed.size(), o.out, list);
  }
  write_study_json(config, plan, /*final=*/true);
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
