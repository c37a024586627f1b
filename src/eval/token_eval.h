// The paper's final evaluation (spec §5.4, Table 1) on any LanguageModel: mean cross-entropy per
// set, the per-token loss distribution, and an outlier report (the windows with the most extreme
// per-token loss and final-residual norm), optionally on the "filtered" set that drops every window
// holding a token absent from the fine-tuning data (spec §7.4).
//
// Windows are those of training's evaluation (data::EvalWindows): T + 1 tokens, consecutive
// windows share one token, every token but the split's first is a target exactly once (EOT
// included). The reference instead cuts disjoint 1024-token chunks and scores 1023 targets each;
// --seq-len 1023 gives its window length, the one-token overlap is the documented deviation
// (docs/evaluation.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/token_loader.h"
#include "model/language_model.h"

namespace lnfree::eval {

struct TokenEvalOptions {
  std::int64_t seq_len = 1024;
  std::int64_t max_windows = 0;  // 0: all
  std::int64_t batch = 8;
  std::int64_t outliers = 5;  // windows listed per outlier kind
  std::int64_t context = 24;  // tokens of context kept per outlier
  // Tokens of the fine-tuning data (data/token_presence.h): when set, outliers name their window's
  // unseen tokens, and with drop_unseen every window holding one is left out.
  const std::vector<bool>* seen = nullptr;
  bool drop_unseen = false;
};

// One extreme point of a window. `position` indexes the window's tokens: for a loss outlier it is
// the target token's position (predicted from tokens [0, position)), for a norm outlier the input
// position whose final residual is largest. `context` holds the window's tokens before it, at most
// TokenEvalOptions::context of them, and `token` the token at `position`.
struct Outlier {
  std::int64_t window = 0;
  std::int64_t position = 0;
  double value = 0;
  std::int32_t token = 0;
  std::vector<std::int32_t> context;
  std::vector<std::int32_t> unseen;  // tokens of the window never seen in fine-tuning (when filtering)
};

struct TokenEvalReport {
  std::int64_t windows = 0;           // scored
  std::int64_t windows_dropped = 0;   // by the unseen-token filter
  std::vector<std::int64_t> dropped;  // their indices
  std::int64_t targets = 0;
  double mean = 0, median = 0, p95 = 0, p999 = 0, max = 0;  // per-token CE, nats
  double mean_residual_norm = 0, max_residual_norm = 0;
  std::vector<Outlier> top_loss, top_norm;  // most extreme first
};

TokenEvalReport evaluate_tokens(model::LanguageModel& model, const data::TokenSplit& split,
                                const TokenEvalOptions& options);

}  // namespace lnfree::eval
