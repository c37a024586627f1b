// lnfree eval: held-out cross-entropy of a model on a token split (the paper's protocol), with its
// LayerNorms as they are or with every LN made fake from a stats file (the zero-shot damage).
#include <fmt/format.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "apps/command_registry.h"
#include "config/train_config.h"
#include "data/token_loader.h"
#include "data/vocab_remap.h"
#include "io/model_source.h"
#include "train/evaluator.h"
#include "train/sigma_stats.h"
#include "util/error.h"
#include "util/files.h"

namespace lnfree::apps {
namespace {

struct EvalOptions {
  std::string model;
  std::vector<std::string> sets;
  std::string vocab_remap;
  std::string sigma_init;
  bool all_fake = false;
  std::int64_t seq_len = 1024;
  std::int64_t max_windows = 0;
  std::int64_t batch = 8;
  std::string out;
};

void run_eval(const EvalOptions& o) {
  auto source = io::resolve_model_source(o.model);
  auto remap = data::VocabRemap::load_optional(o.vocab_remap);
  if (remap) source.shape.eot_token = remap->eot_id();
  auto model = io::instantiate_model(source, std::nullopt);
  if (!o.sigma_init.empty()) train::apply_sigma_init(model, o.sigma_init);
  if (o.all_fake) {
    if (o.sigma_init.empty())
      fail("eval: --all-fake needs --sigma-init (the sigmas the fake LayerNorms divide by)");
    for (auto& [name, ln] : model->layer_norms()) {
      ln->remove(model::LnPath::kMain);
      if (ln->has_value_path()) ln->remove(model::LnPath::kValue);
    }
  }
  nlohmann::json results = nlohmann::json::object();
  for (const auto& spec : o.sets) {
    auto set = config::parse_eval_set(spec, "--data");
    auto split = data::TokenSplit::from_manifest(set.manifest, set.split, "", remap);
    if (split->vocab_size() > source.shape.vocab_size)
      fail("{}: tokens need a vocabulary of {} but the model has vocab_size {} (missing --vocab-remap?)",
           split->description(), split->vocab_size(), source.shape.vocab_size);
    double loss = train::evaluate_loss(model, *split, o.seq_len, o.max_windows, o.batch, torch::kCPU);
    results[spec] = loss;
    fmt::print("{:<48} {:.6f}{}\n", spec, loss, o.all_fake ? " (every LayerNorm fake)" : "");
  }
  if (!o.out.empty()) {
    nlohmann::json json = {
        {"model", o.model},     {"all_fake", o.all_fake},       {"sigma_init", o.sigma_init},
        {"seq_len", o.seq_len}, {"max_windows", o.max_windows}, {"loss", results}};
    write_file_atomically(o.out, json.dump(1) + "\n");
  }
}

RegisterCommand reg("eval", [](CLI::App& root) {
  auto* cmd = root.add_subcommand(
      "eval", "Held-out cross-entropy of a model on token splits (full windows, every target)");
  auto o = std::make_shared<EvalOptions>();
  cmd->add_option("--model", o->model, io::kModelOptionHelp)->required();
  cmd->add_option("--data", o->sets, "MANIFEST.json:SPLIT to evaluate on (repeatable)")->required();
  cmd->add_option("--vocab-remap", o->vocab_remap,
                  "Vocabulary remap JSON (lnfree vocab) the model was trained with");
  cmd->add_option("--sigma-init", o->sigma_init, "lnfree stats JSON: the fixed sigmas");
  cmd->add_flag("--all-fake", o->all_fake, "Make every LayerNorm path fake first (zero-shot LN removal)");
  cmd->add_option("--seq-len", o->seq_len, "Window length T (T + 1 tokens per window)")
      ->capture_default_str();
  cmd->add_option("--max-windows", o->max_windows, "First N windows of each split; 0 = all")
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Windows per forward pass")->capture_default_str();
  cmd->add_option("--out", o->out, "Also write the results as JSON");
  cmd->callback([o] { run_eval(*o); });
});

}  // namespace
}  // namespace lnfree::apps
