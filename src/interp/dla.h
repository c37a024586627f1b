// Direct logit attribution versus direct effect (spec §8.1), the check that an LN-free model is
// exactly linear from each component's write to the logits.
//
// For every window the last input position is read out and its next token t is the target (the
// reference used the last input token; any token works for the exactness check). The final
// residual r is split into parts c (residual_parts: embeddings, every head's z_h W_O,h, each
// layer's b_O, each MLP). Then
//   DLA_c = the part's logit through the final normalisation frozen at r (centre, divide by r's
//           scale, gamma, unembedding; no bias)
//   DE_c  = logit_t(r) - logit_t(r - c)   (the final normalisation recomputed: LN(r - c) when ln_f
//           is real, the fixed sigma when it is fake, nothing when folded)
//   NMAE_c = mean |DLA_c - DE_c| / mean |DE_c|
// With a real ln_f they differ (the paper: ~49% for GPT-2 small); LN-free they agree to rounding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/token_loader.h"
#include "model/language_model.h"

namespace lnfree::interp {

struct DlaOptions {
  std::int64_t seq_len = 128;
  std::int64_t windows = 64;  // 0: all
  std::int64_t batch = 8;
};

struct ComponentError {
  std::string name;
  double nmae = 0;           // mean |DLA - DE| / mean |DE|
  double mean_abs_de = 0;    // mean |DE|
  double mean_abs_diff = 0;  // mean |DLA - DE|
};

struct DlaReport {
  std::int64_t samples = 0;  // windows read out
  std::vector<ComponentError> components;
  double heads_pooled = 0;  // sum over heads and samples of |DLA - DE| / of |DE| (the code's summary)
  double heads_mean = 0;    // mean over heads of NMAE_h (the paper's Eq. 10)
  double all_pooled = 0;    // pooled over every part
  // max |sum of parts - residual| / max |residual|: checks the decomposition itself
  double decomposition_error = 0;
};

DlaReport direct_logit_attribution(model::LanguageModel& model, const data::TokenSplit& split,
                                   const DlaOptions& options);

}  // namespace lnfree::interp
