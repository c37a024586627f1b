// lnfree stats: measure every LayerNorm input's std on a seeded data sample.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "apps/command_registry.h"
#include "data/token_loader.h"
#include "io/model_instantiate.h"
#include "io/model_source.h"
#include "train/sigma_stats.h"
#include "util/files.h"

namespace lnfree::apps {
namespace {

struct StatsOptions {
  std::string model;
  std::string data;
  std::string split = "train";
  std::string out;
  std::string vocab_remap;
  train::SigmaStatsRequest request;
};

RegisterCommand reg("stats", [](CLI::App& root) {
  auto* cmd = root.add_subcommand(
      "stats",
      "Measure each LayerNorm input's std on a data sample (JSON that initialises the fixed sigmas)");
  auto o = std::make_shared<StatsOptions>();
  cmd->add_option("--model", o->model, io::kModelOptionHelp)->required();
  cmd->add_option("--data", o->data, "Token manifest.json (from lnfree prepare) or its folder")->required();
  cmd->add_option("--split", o->split, "Split of the manifest to sample")->capture_default_str();
  cmd->add_option("--windows", o->request.windows, "Sequences sampled (seeded)")->capture_default_str();
  cmd->add_option("--seq-len", o->request.seq_len, "Tokens per sequence (<= n_positions)")
      ->capture_default_str();
  cmd->add_option("--batch", o->request.batch, "Sequences per forward pass")->capture_default_str();
  cmd->add_option("--seed", o->request.seed, "Seed of the sample")->capture_default_str();
  cmd->add_option("--out", o->out, "Output JSON file")->required();
  cmd->add_option("--vocab-remap", o->vocab_remap,
                  "Vocabulary remap JSON (lnfree vocab) the model was trained with");
  cmd->footer(
      "Statistic: mean over tokens of sqrt(biased var over d + 1e-5) of the LN's input (RMSNorm models:\n"
      "sqrt(mean x^2 + 1e-5), the divisor sigma replaces; docs/normalization.md); also position 0\n"
      "alone and EOT tokens alone. Use the file as [ln] sigma_init of a run config.");
  cmd->callback([o] {
    auto source = io::resolve_model_source(o->model);
    auto remap = data::VocabRemap::load_optional(o->vocab_remap);
    const std::string tokenizer_hash = data::expected_tokenizer_hash(remap.get());
    if (remap) source.shape.eot_token = remap->eot_id();
    auto model = io::instantiate_model(source, std::nullopt);
    auto split = data::TokenSplit::from_manifest(o->data, o->split, tokenizer_hash, remap);
    auto json = train::measure_sigmas(model, split, o->request);
    json["model"] = o->model;
    write_file_atomically(o->out, json.dump(2) + "\n");
    spdlog::info("wrote {}: {} LayerNorms, {} tokens", o->out, json["ln"].size(),
                 json["tokens"].get<std::int64_t>());
  });
});

}  // namespace
}  // namespace lnfree::apps
