#include "train/final_model.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "io/export.h"
#include "io/hf_gpt2.h"
#include "log/run_folder.h"
#include "util/error.h"

namespace lnfree::train {

void write_final_model(model::Gpt2& model, const config::TrainConfig& cfg, const std::string& run_dir) {
  const std::string final_dir = run_folder::final_path(run_dir);
  std::filesystem::remove_all(final_dir);
  if (cfg.run.mode != config::RunMode::kRemoveLn) {
    io::save_hf_gpt2(model, final_dir);
    spdlog::info("wrote {} (Hugging Face GPT-2 folder)", final_dir);
    return;
  }
  try {
    // An RMSNorm model whose stream is not zero-mean has no hf form: its final/ is the folded export.
    const auto format = io::transformers_computes(model) ? io::ExportFormat::kHf : io::ExportFormat::kFolded;
    io::export_model(model, format, final_dir, /*allow_partial=*/false, {{"source", run_dir}, {"step", cfg.data.steps}});
    spdlog::info("wrote {} ({})", final_dir,
                 format == io::ExportFormat::kHf ? "Hugging Face GPT-2 folder, LN-free by the eps trick"
                                                 : "folded LN-free model: RMSNorm without centred writes has no hf form");
  } catch (const Error& e) {
    spdlog::warn("no {}: {}", final_dir, e.what());
  }
}

}  // namespace lnfree::train
