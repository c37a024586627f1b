// lnfree info: shape, parameter counts and training FLOPs per token of a model.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "apps/command_registry.h"
#include "io/model_source.h"

namespace lnfree::apps {
namespace {

std::string grouped(std::int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

void run_info(const std::string& spec, bool as_json) {
  auto source = io::resolve_model_source(spec);
  const auto& s = source.shape;
  auto counts = model::count_parameters(s);
  const double flops = model::training_flops_per_token(s);
  if (as_json) {
    nlohmann::json j = {{"model", spec},
                        {"shape_from", source.shape_origin},
                        {"weights", source.weights ? *source.weights : ""},
                        {"n_layer", s.n_layer},
                        {"n_embd", s.n_embd},
                        {"n_head", s.n_head},
                        {"head_dim", s.head_dim()},
                        {"n_positions", s.n_positions},
                        {"vocab_size", s.vocab_size},
                        {"layer_norm_epsilon", s.layer_norm_epsilon},
                        {"norm", config::enum_name(s.norm)},
                        {"centre_writes", s.centre_writes},
                        {"residual_width", s.residual_width()},
                        {"tie_word_embeddings", s.tie_word_embeddings},
                        {"params_total", counts.total},
                        {"params_embedding", counts.embedding},
                        {"params_non_embedding", counts.non_embedding},
                        {"train_flops_per_token", flops}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  fmt::print("model             {}\n", spec);
  fmt::print("shape from        {}\n", source.shape_origin);
  fmt::print("weights           {}\n", source.weights ? *source.weights : "none (random initialisation)");
  fmt::print("n_layer           {}\n", s.n_layer);
  fmt::print("n_embd            {}\n", s.n_embd);
  fmt::print("n_head            {} (head_dim {})\n", s.n_head, s.head_dim());
  fmt::print("n_positions       {}\n", s.n_positions);
  fmt::print("vocab_size        {}\n", s.vocab_size);
  fmt::print("norm              {}{}\n", config::enum_name(s.norm),
             s.centre_writes                            ? " (writes centred in the forward: the Pre-LN function)"
             : s.norm == model::NormKind::kCrmsNorm ? fmt::format(" (residual stream {} wide)", s.residual_width())
                                                    : std::string());
  fmt::print("norm epsilon      {:g}\n", s.layer_norm_epsilon);
  fmt::print("unembedding       {}\n", s.tie_word_embeddings ? "tied to wte" : "untied (lm_head)");
  fmt::print("params total      {}\n", grouped(counts.total));
  fmt::print("params embedding  {} (token + position{})\n", grouped(counts.embedding),
             s.tie_word_embeddings ? "" : " + lm_head");
  fmt::print("params non-embed  {}\n", grouped(counts.non_embedding));
  fmt::print("train FLOPs/token {:.4g} (6*(12*L*d^2 + V*d) + 12*L*T*d at T = n_positions)\n", flops);
}

RegisterCommand reg("info", [](CLI::App& root) {
  auto* cmd =
      root.add_subcommand("info", "Print a model's shape, parameter counts and training FLOPs per token");
  auto spec = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("--model", *spec, io::kModelOptionHelp)->required();
  cmd->add_flag("--json", *as_json, "Print one JSON object instead of a table");
  cmd->footer(
      "Parameter counts: a tied unembedding is counted once, an untied one (lm_head) as an embedding; "
      "non-embedding = total - token and position embeddings and lm_head (Kaplan et al.'s N).");
  cmd->callback([spec, as_json] { run_info(*spec, *as_json); });
});

}  // namespace
}  // namespace lnfree::apps
