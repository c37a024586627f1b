// lnfree convert: the exact Pre-RMSNorm and Pre-CRMSNorm forms of a Pre-LN GPT-2 (Jiang et al.;
// model/norm_conversion.h, docs/normalization.md).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "apps/command_registry.h"
#include "io/export.h"
#include "io/hf_gpt2.h"
#include "io/model_instantiate.h"
#include "io/model_source.h"
#include "model/norm_conversion.h"
#include "util/error.h"

namespace lnfree::apps {
namespace {

struct ConvertOptions {
  std::string model, to, out;
};

void run_convert(const ConvertOptions& o) {
  if (o.to != "pre-rmsnorm" && o.to != "pre-crmsnorm")
    fail("--to: expected 'pre-rmsnorm' or 'pre-crmsnorm', got '{}'", o.to);
  if (std::filesystem::exists(o.out))
    fail("{}: already exists (choose a new --out; nothing is overwritten)", o.out);
  auto source = io::resolve_model_source(o.model);
  if (source.kind == io::ModelKind::kFolded)
    fail("{}: a folded export has no normalisation left to convert", o.model);
  if (!source.weights)
    fail("{}: has no weights (model.safetensors) to convert; a shape file or name gives none (lnfree init "
         "writes a random model of a shape)",
         o.model);
  auto model = io::instantiate_model(source, std::nullopt);
  for (const auto& [name, ln] : model->layer_norms()) {
    const auto flags = ln->flags();
    if (flags.bos_special || flags.eot_special)
      fail("{}: {} still divides position 0 / EOT tokens by its own sigma (the schedule's bos/eot events "
           "never ran); neither converted form can express that",
           o.model, name);
  }
  if (o.to == "pre-rmsnorm" && io::partly_removed(model))
    fail("{}: the LayerNorms are partly removed; a converted Hugging Face folder can hold a model whose "
         "normalisers are all real or all removed: finish the removal (or convert its initial model)",
         o.model);
  nlohmann::json provenance = {{"source", o.model},
                               {"source_folder", source.folder.empty() ? source.shape_origin : source.folder},
                               {"conversion", o.to}};
  if (o.to == "pre-rmsnorm") {
    auto converted = model::to_pre_rmsnorm(*model);
    // A model whose normalisers are all real is written as the HF folder it is; an LN-free one by
    // the eps trick (2^40); a partly removed one is refused (HF cannot express it).
    const auto result = io::export_model(converted, io::ExportFormat::kHf, o.out, false, provenance);
    fmt::print("wrote {}: Pre-RMSNorm GPT-2 ({}), untied head; transformers loads it as GPT2LMHeadModel\n",
               o.out, result.plain ? "RMSNorms real" : "every RMSNorm removed, eps trick");
    return;
  }
  auto converted = model::to_pre_crmsnorm(*model);
  io::write_folder_atomically(o.out, [&](const std::string& tmp) {
    io::save_hf_gpt2(converted, tmp, io::Dtype::kF32, {{"lnfree", provenance}});
  });
  fmt::print("wrote {}: Pre-CRMSNorm GPT-2 (residual stream {} wide; lnfree eval/score/generate only)\n", o.out,
             converted->shape().residual_width());
}

RegisterCommand reg("convert", [](CLI::App& root) {
  auto* cmd = root.add_subcommand(
      "convert", "Rewrite a Pre-LN GPT-2 exactly as Pre-RMSNorm or Pre-CRMSNorm (Jiang et al.)");
  auto o = std::make_shared<ConvertOptions>();
  cmd->add_option("--model", o->model, io::kModelOptionHelp)->required();
  cmd->add_option("--to", o->to, "pre-rmsnorm or pre-crmsnorm")->required();
  cmd->add_option("--out", o->out, "Folder to create (must not exist)")->required();
  cmd->footer(
      "pre-rmsnorm:  every write to the residual stream (wte, wpe, both c_proj weights and biases) centred\n"
      "              in float64, the head untied (lm_head = the original wte): every LayerNorm then sees a\n"
      "              zero-mean input and equals an RMSNorm. A Hugging Face GPT-2 folder that transformers\n"
      "              loads unchanged (config.json marks it lnfree_norm = \"rmsnorm\" for lnfree). An LN-free\n"
      "              model is written by the eps trick (epsilon 2^40).\n"
      "pre-crmsnorm: additionally gamma/beta folded into the readers and the residual stream one coordinate\n"
      "              narrower (n_embd - 1): an lnfree format (model_type lnfree-gpt2) for eval, score,\n"
      "              generate and interp; not for training or export. Needs real normalisers.\n"
      "Same logits as the original to fp32 rounding (docs/normalization.md has the measured errors).");
  cmd->callback([o] { run_convert(*o); });
});

}  // namespace
}  // namespace lnfree::apps
