// lnfree eval: the paper's final evaluation (spec §5.4) of any model on token splits: mean
// cross-entropy, the per-token loss distribution, an outlier report, and with --filter-unseen the
// "filtered" variant of each set (spec §7.4). The LayerNorms can also be made fake from a stats
// file first (the zero-shot damage). docs/evaluation.md describes the output.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "apps/command_registry.h"
#include "apps/token_text.h"
#include "config/train_config.h"
#include "data/token_loader.h"
#include "data/token_presence.h"
#include "data/vocab_remap.h"
#include "eval/token_eval.h"
#include "io/model_instantiate.h"
#include "io/model_source.h"
#include "log/eval_table.h"
#include "train/sigma_stats.h"
#include "util/error.h"
#include "util/files.h"
#include "util/paths.h"

namespace lnfree::apps {
namespace {

struct EvalOptions {
  std::string model;
  std::vector<std::string> sets;
  std::string vocab_remap;
  std::string sigma_init;
  bool all_fake = false;
  std::string filter_unseen;
  std::string bpe = default_bpe_dir();
  std::string device = "auto";
  eval::TokenEvalOptions protocol;
  std::string out, h5;
};

torch::Device pick_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" || (name == "auto" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available()) fail("--device cuda: CUDA is not available in this build or machine");
    return torch::Device(torch::kCUDA, 0);
  }
  if (name == "auto") return torch::kCPU;
  fail("--device: expected auto, cpu or cuda, got '{}'", name);
}

std::unique_ptr<model::LanguageModel> load_model(const EvalOptions& o,
                                                 std::shared_ptr<const data::VocabRemap> remap) {
  auto source = io::resolve_model_source(o.model);
  if (remap) source.shape.eot_token = remap->eot_id();
  if (o.sigma_init.empty() && !o.all_fake) return io::load_language_model(source);
  if (o.all_fake && o.sigma_init.empty())
    fail("eval: --all-fake needs --sigma-init (the sigmas the fake LayerNorms divide by)");
  auto model = io::instantiate_model(source, std::nullopt);
  train::apply_sigma_init(model, o.sigma_init);
  if (o.all_fake)
    for (auto& [name, ln] : model->layer_norms()) {
      ln->remove(model::LnPath::kMain);
      if (ln->has_value_path()) ln->remove(model::LnPath::kValue);
    }
  return model::as_language_model(std::move(model));
}

nlohmann::json outliers_json(const std::vector<eval::Outlier>& list, const TokenText& text) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& x : list)
    out.push_back({{"window", x.window},
                   {"position", x.position},
                   {"value", x.value},
                   {"token", x.token},
                   {"token_text", text.decode({x.token})},
                   {"context", text.decode(x.context)},
                   {"unseen_tokens", x.unseen}});
  return out;
}

void print_outliers(const char* what, const std::vector<eval::Outlier>& list, const TokenText& text) {
  fmt::print("  highest {}:\n", what);
  for (const auto& x : list) {
    std::string unseen;
    for (auto id : x.unseen)
      unseen += fmt::format("{}'{}' ({})", unseen.empty() ? "" : ", ", printable(text.decode({id})), id);
    fmt::print("    {:>10.4g}  window {} position {}: token '{}' ({}) after \"{}\"{}\n", x.value, x.window,
               x.position, printable(text.decode({x.token})), x.token, printable(text.decode(x.context)),
               unseen.empty() ? "" : "; tokens unseen in fine-tuning: " + unseen);
  }
}

// The numbers of one evaluated set, named as in the JSON output and the HDF5 columns.
runlog::EvalRow report_numbers(const eval::TokenEvalReport& r) {
  return {{"windows", r.windows},
          {"windows_dropped", r.windows_dropped},
          {"targets", r.targets},
          {"mean", r.mean},
          {"median", r.median},
          {"p95", r.p95},
          {"p99_9", r.p999},
          {"max", r.max},
          {"mean_residual_norm", r.mean_residual_norm},
          {"max_residual_norm", r.max_residual_norm}};
}

std::string now_utc() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

void run_eval(EvalOptions& o) {
  auto remap = data::VocabRemap::load_optional(o.vocab_remap);
  const std::string tokenizer_hash = data::expected_tokenizer_hash(remap.get());
  // Every input is checked before the first forward pass.
  std::vector<std::pair<std::string, std::shared_ptr<const data::TokenSplit>>> splits;
  for (const auto& spec : o.sets) {
    auto set = config::parse_eval_set(spec, "--data");
    splits.emplace_back(config::eval_set_name(set),
                        data::TokenSplit::from_manifest(set.manifest, set.split, tokenizer_hash, remap));
  }
  std::vector<bool> seen;
  if (!o.filter_unseen.empty()) {
    const bool has_split = o.filter_unseen.rfind(".json") != o.filter_unseen.size() - 5;
    auto set =
        config::parse_eval_set(has_split ? o.filter_unseen : o.filter_unseen + ":train", "--filter-unseen");
    seen = data::token_presence(
        *data::TokenSplit::from_manifest(set.manifest, set.split, tokenizer_hash, remap));
    o.protocol.seen = &seen;
  }
  auto model = load_model(o, remap);
  const auto device = pick_device(o.device);
  model->to(device);
  for (const auto& [name, split] : splits)
    if (split->vocab_size() > model->shape().vocab_size)
      fail("{}: tokens need a vocabulary of {} but the model has vocab_size {} (missing --vocab-remap?)",
           split->description(), split->vocab_size(), model->shape().vocab_size);
  const TokenText text(o.bpe, remap);

  fmt::print("model: {} ({}), device {}\n", o.model, model->kind(), device.str());
  fmt::print("{:<40} {:>8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10}\n", "set", "windows", "targets", "mean CE",
             "median", "p95", "p99.9", "max");
  nlohmann::json sets = nlohmann::json::object(), losses = nlohmann::json::object();
  std::vector<runlog::EvalRow> rows;
  const std::string when = now_utc();
  for (std::size_t i = 0; i < splits.size(); ++i) {
    const auto& [name, split] = splits[i];
    for (bool filtered : {false, true}) {
      if (filtered && seen.empty()) continue;
      auto protocol = o.protocol;
      protocol.drop_unseen = filtered;
      const auto started = std::chrono::steady_clock::now();
      const auto r = eval::evaluate_tokens(*model, *split, protocol);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      const std::string label = filtered ? name + ".filtered" : name;
      fmt::print("{:<40} {:>8} {:>10} {:>10.6f} {:>9.4f} {:>9.4f} {:>9.4f} {:>10.4f}\n", label, r.windows,
                 r.targets, r.mean, r.median, r.p95, r.p999, r.max);
      if (filtered)
        fmt::print("  dropped {} of {} windows holding a token absent from {}\n", r.windows_dropped,
                   r.windows + r.windows_dropped, o.filter_unseen);
      if (o.protocol.outliers > 0) {
        print_outliers("per-token loss (nats)", r.top_loss, text);
        print_outliers("final-residual norm", r.top_norm, text);
      }
      spdlog::info("{}: {} targets in {:.1f} s", label, r.targets, seconds);
      if (!filtered) losses[o.sets[i]] = r.mean;
      // One list of numbers serves both outputs: the JSON entry and the HDF5 row.
      const auto numbers = report_numbers(r);
      nlohmann::json entry = {{"dropped_windows", r.dropped},
                              {"outliers_loss", outliers_json(r.top_loss, text)},
                              {"outliers_residual_norm", outliers_json(r.top_norm, text)}};
      for (const auto& [key, value] : numbers)
        std::visit([&, &key = key](const auto& v) { entry[key] = v; }, value);
      sets[label] = entry;
      runlog::EvalRow row = {{"time", when},
                             {"model", o.model},
                             {"model_kind", model->kind()},
                             {"set", label},
                             {"filter", filtered ? o.filter_unseen : std::string()},
                             {"seq_len", o.protocol.seq_len}};
      row.insert(row.end(), numbers.begin(), numbers.end());
      rows.push_back(std::move(row));
    }
  }
  if (!o.out.empty()) {
    nlohmann::json json = {{"model", o.model},
                           {"model_kind", model->kind()},
                           {"all_fake", o.all_fake},
                           {"sigma_init", o.sigma_init},
                           {"seq_len", o.protocol.seq_len},
                           {"max_windows", o.protocol.max_windows},
                           {"filter_unseen", o.filter_unseen},
                           {"loss", losses},
                           {"sets", sets}};
    write_file_atomically(o.out, json.dump(1) + "\n");
  }
  if (!o.h5.empty()) runlog::append_eval_rows(o.h5, rows);
}

RegisterCommand reg("eval", [](CLI::App& root) {
  auto* cmd = root.add_subcommand(
      "eval", "Held-out cross-entropy of a model on token splits: mean, per-token distribution, outliers");
  auto o = std::make_shared<EvalOptions>();
  cmd->add_option("--model", o->model, io::kModelOptionHelp)->required();
  cmd->add_option("--data", o->sets, "MANIFEST.json:SPLIT to evaluate on (repeatable)")->required();
  cmd->add_option("--vocab-remap", o->vocab_remap,
                  "Vocabulary remap JSON (lnfree vocab) the model was trained with");
  cmd->add_option("--sigma-init", o->sigma_init, "lnfree stats JSON: the fixed sigmas");
  cmd->add_flag("--all-fake", o->all_fake, "Make every LayerNorm path fake first (zero-shot LN removal)");
  cmd->add_option(
      "--filter-unseen", o->filter_unseen,
      "Fine-tuning data MANIFEST.json[:SPLIT] (default split train): also evaluate each set without the "
      "windows holding a token absent from it (\"The Pile-filtered\"), and name such tokens in outliers");
  cmd->add_option("--seq-len", o->protocol.seq_len, "Window length T (T + 1 tokens per window)")
      ->capture_default_str();
  cmd->add_option("--max-windows", o->protocol.max_windows, "First N windows of each split; 0 = all")
      ->capture_default_str();
  cmd->add_option("--batch", o->protocol.batch, "Windows per forward pass")->capture_default_str();
  cmd->add_option("--outliers", o->protocol.outliers, "Windows listed per outlier kind (0: no report)")
      ->capture_default_str();
  cmd->add_option("--context", o->protocol.context, "Tokens of context shown per outlier")
      ->capture_default_str();
  cmd->add_option("--bpe", o->bpe, "Folder with GPT-2's encoder.json and vocab.bpe (to decode outliers)")
      ->capture_default_str();
  cmd->add_option("--device", o->device, "auto (CUDA when available), cpu or cuda")->capture_default_str();
  cmd->add_option("--out", o->out, "Also write the results as JSON");
  cmd->add_option("--h5", o->h5, "Append one row per set to this HDF5 file (group /eval_suite)");
  cmd->footer(
      "Protocol: windows of T + 1 tokens in order (consecutive windows share one token), every next-token\n"
      "target scored once, EOT included, token-weighted mean (docs/evaluation.md; the reference's "
      "1024-token\n"
      "chunks with 1023 targets are --seq-len 1023 up to that shared token). Distribution: median, 95th and\n"
      "99.9th percentile and max of the per-token loss. Outliers: the windows with the highest per-token "
      "loss\n"
      "and final-residual norm, with the position, the token and its preceding context.");
  cmd->callback([o] { run_eval(*o); });
});

}  // namespace
}  // namespace lnfree::apps
