// Exports of a trained model that other tools load (docs/export.md):
//   hf      a standard GPT2LMHeadModel folder (config.json + model.safetensors). A removed LN stays
//           an nn.LayerNorm disabled by the eps trick (spec §6.1): layer_norm_epsilon = 1e12 and
//           gamma' = gamma * 1e6 / sigma, so sqrt(var + 1e12) ~ 1e6 and the LN computes
//           (x - mean) * gamma / sigma + beta. Exact in fp32 while var < 32768 (1e12 + var rounds
//           to 1e12); above that the relative error is var / 2e12. ln_1's Q/K sigma, when it
//           differs from its V sigma, is moved into c_attn's Q/K columns (HF has one ln_1).
//           A model whose LNs are all real is written as the plain HF folder it is.
//   folded  no normalisation left (spec §6.2): centring and gamma/sigma folded into the matrices
//           that read each former LN, ln_f into an untied unembedding with a bias. config.json has
//           model_type "lnfree-folded-gpt2", so transformers refuses it instead of misreading it.
// RMSNorm models: hf only where transformers' LayerNorm computes them (a zero-mean residual stream:
// a Pre-RMSNorm conversion, or writes centred in the forward), with epsilon 2^40; folded folds
// without centring. A Pre-CRMSNorm model is refused by both.
// Both refuse a model with a real LN path (naming them) unless allow_partial, which first freezes
// every real path at the sigma it tracks now (so the export is LN-free, but not the trained
// function), and refuse the position-0/EOT special sigmas, which neither form can express.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "io/folded_format.h"
#include "model/fold.h"
#include "model/gpt2.h"

namespace lnfree::io {

enum class ExportFormat { kHf, kFolded };
ExportFormat parse_export_format(const std::string& name);  // "hf" | "folded"

inline constexpr double kEpsTrickEpsilon = 1e12;
// RMSNorm models (seed-normalization §2.1): 2^40 is exact in fp32 and its square root is 2^20, so
// mean(x^2) + eps rounds to exactly 2^40 while mean(x^2) < 2^16 and the module divides by exactly
// 2^20 (1e12 is not an fp32 number: its root is 999999.998). LayerNorm exports keep the reference's
// 1e12 (spec §6.1).
inline constexpr double kRmsEpsTrickEpsilon = 1099511627776.0;  // 2^40
double eps_trick_epsilon(model::NormKind norm);

// The LN paths still computed for real: "h.0.ln_1 (Q/K)", "h.0.ln_1 (V)", "h.0.ln_2", "ln_f".
std::vector<std::string> real_layer_norm_paths(model::Gpt2& model);
// True when some LN paths are real and some removed (neither the plain nor the eps-trick hf form).
bool partly_removed(model::Gpt2& model);

struct ExportResult {
  std::string folder;
  std::vector<std::string> frozen;  // real paths frozen because of allow_partial
  bool plain = false;               // hf of a model with every LN real: a plain GPT-2 folder
};

// Writes `out` (which must not exist) through a hidden temporary folder beside it, renamed into
// place when complete. `provenance` goes into config.json under "lnfree". May freeze paths of
// `model` (allow_partial).
ExportResult export_model(model::Gpt2& model, ExportFormat format, const std::string& out, bool allow_partial,
                          const nlohmann::json& provenance);

// Runs write(tmp) on a hidden temporary folder beside `out`, then renames it to `out` (which must
// not exist); on failure the temporary folder is removed and `out` never appears.
void write_folder_atomically(const std::string& out, const std::function<void(const std::string&)>& write);

// The eps-trick copy of an LN-free model (every path fake, no special sigma): real LayerNorms with
// epsilon 1e12 that compute what the fake ones do.
model::Gpt2 eps_trick_model(model::Gpt2& model);

// Folded folders (folded_format.h tells one): written by export_model, read back by `--model DIR`.
void save_folded(const model::FoldedGpt2& folded, const std::string& dir, const nlohmann::json& provenance);
model::FoldedGpt2 load_folded(const std::string& dir);

}  // namespace lnfree::io
