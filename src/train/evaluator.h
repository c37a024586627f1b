// Held-out cross-entropy with the paper's protocol (spec §5.4): full context windows of T + 1
// tokens in order, every next-token target scored (EOT included), token-weighted mean. Runs in
// eval mode (no dropout, no LN statistics updates) and restores the previous mode.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/token_loader.h"
#include "model/gpt2.h"

namespace lnfree::train {

struct EvalSetData {
  std::string name;  // as logged: "<manifest folder name>.<split>"
  std::shared_ptr<const data::TokenSplit> split;
};

// Mean CE over the first `max_windows` windows (0 = all) in batches of `batch` sequences.
double evaluate_loss(model::Gpt2& model, const data::TokenSplit& split, std::int64_t seq_len,
                     std::int64_t max_windows, std::int64_t batch, const torch::Device& device);

// One rank's share of that evaluation (EvalWindows' contiguous block for `rank` of `world`): the
// summed CE of its targets and their count. Summed over the ranks, loss_sum / targets is the mean.
// `bf16_autocast`: the forward under CUDA bf16 autocast (a bf16 run's interval evaluations; the
// final full evaluation stays fp32 so that the published loss does not carry bf16 rounding).
struct EvalTotals {
  double loss_sum = 0;
  std::int64_t targets = 0;
};
EvalTotals evaluate_loss_totals(model::Gpt2& model, const data::TokenSplit& split, std::int64_t seq_len,
                                std::int64_t max_windows, std::int64_t batch, const torch::Device& device,
                                int rank, int world, bool bf16_autocast = false);

}  // namespace lnfree::train
