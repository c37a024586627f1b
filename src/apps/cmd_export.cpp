// lnfree export: hand a trained model to other tools (docs/export.md). `hf` is a GPT2LMHeadModel
// folder that transformers loads with no code of ours (removed LNs disabled by the eps trick);
// `folded` has no normalisation left at all.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <optional>
#include <string>

#include "apps/command_registry.h"
#include "io/export.h"
#include "io/model_instantiate.h"
#include "io/model_source.h"
#include "util/error.h"

namespace lnfree::apps {
namespace {

struct ExportOptions {
  std::string model, format = "hf", out;
  bool allow_partial = false;
};

void run_export(const ExportOptions& o) {
  const auto format = io::parse_export_format(o.format);
  auto source = io::resolve_model_source(o.model);
  if (source.kind != io::ModelKind::kCheckpoint && source.kind != io::ModelKind::kHfFolder)
    fail("{}: expected a run folder, a checkpoint folder or a Hugging Face folder to export", o.model);
  auto model = io::instantiate_model(source, std::nullopt);
  nlohmann::json provenance = {
      {"source", o.model}, {"source_folder", source.folder.empty() ? source.shape_origin : source.folder}};
  const auto result = io::export_model(model, format, o.out, o.allow_partial, provenance);
  const char* what = format == io::ExportFormat::kFolded ? "folded LN-free model (no normalisation)"
                     : result.plain                      ? "Hugging Face GPT-2 (its LayerNorms are real)"
                                    : "Hugging Face GPT-2, LN-free by the eps trick";
  fmt::print("wrote {}: {}", result.folder, what);
  if (format == io::ExportFormat::kHf && !result.plain)
    fmt::print(" (epsilon {:g})", io::eps_trick_epsilon(model->shape().norm));
  fmt::print("\n");
  if (!result.frozen.empty())
    fmt::print("froze {} real LayerNorm path(s) (--allow-partial)\n", result.frozen.size());
}

RegisterCommand reg("export", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("export",
                                  "Write a trained model as a Hugging Face folder or a folded LN-free model");
  auto o = std::make_shared<ExportOptions>();
  cmd->add_option("--model", o->model,
                  "A run folder (its newest complete checkpoint), a step-NNNNNN/ folder or a "
                  "Hugging Face folder")
      ->required();
  cmd->add_option("--format", o->format, "hf or folded")->capture_default_str();
  cmd->add_option("--out", o->out, "Folder to create (must not exist)")->required();
  cmd->add_flag("--allow-partial", o->allow_partial,
                "Export even when some LayerNorm paths are still real, freezing them at their current sigma");
  cmd->footer(
      "hf:     config.json + model.safetensors for transformers' GPT2LMHeadModel. Every removed LN becomes "
      "an\n"
      "        nn.LayerNorm with layer_norm_epsilon = 1e12 and weight gamma * 1e6 / sigma, which computes\n"
      "        (x - mean) gamma / sigma + beta: exact in fp32 while the per-token variance is below 32768,\n"
      "        relative error var / 2e12 above. A run that kept its LayerNorms gives a plain GPT-2 folder.\n"
      "folded: no LayerNorm parameters: centring and gamma/sigma folded into the following matrices, ln_f "
      "into\n"
      "        an untied unembedding with a bias (model_type lnfree-folded-gpt2; docs/export.md has the "
      "layout).\n"
      "RMSNorm models (docs/normalization.md): hf only for a zero-mean residual stream (a Pre-RMSNorm "
      "conversion,\n"
      "        run.norm = \"rmsnorm\"), epsilon 2^40 and weight gamma * 2^20 / sigma; folded without "
      "centring.\n"
      "Refused: a run with real LayerNorm paths (unless --allow-partial), a checkpoint folder without DONE,\n"
      "position-0/EOT special sigmas still on, an --out that exists.");
  cmd->callback([o] { run_export(*o); });
});

}  // namespace
}  // namespace lnfree::apps
