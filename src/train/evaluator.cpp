#include "train/evaluator.h"

#include <cstddef>
#include <vector>

#include "model/torch_compat.h"
#include "util/error.h"

namespace lnfree::train {

double evaluate_loss(model::Gpt2& model, const data::TokenSplit& split, std::int64_t seq_len,
                     std::int64_t max_windows, std::int64_t batch, const torch::Device& device) {
  const auto totals =
      evaluate_loss_totals(model, split, seq_len, max_windows, batch, device, /*rank=*/0, /*world=*/1);
  return totals.loss_sum / static_cast<double>(totals.targets);
}

EvalTotals evaluate_loss_totals(model::Gpt2& model, const data::TokenSplit& split, std::int64_t seq_len,
                                std::int64_t max_windows, std::int64_t batch, const torch::Device& device,
                                int rank, int world, bool bf16_autocast) {
  // EvalWindows shares the split through a non-owning pointer: the caller keeps it alive.
  std::shared_ptr<const data::TokenSplit> view(&split, [](const data::TokenSplit*) {});
  data::EvalWindows windows(view, seq_len, max_windows, rank, world);
  if (windows.total_windows() == 0)
    fail("{}: fewer than {} tokens: no evaluation window", split.description(), seq_len + 1);
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  std::vector<std::int64_t> buffer(static_cast<std::size_t>(batch * (seq_len + 1)));
  torch::Tensor total = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
  std::int64_t targets = 0;
  model::CudaBf16Autocast autocast(bf16_autocast);  // one scope for the whole pass
  while (std::int64_t n = windows.next_batch(batch, buffer.data())) {
    auto rows = torch::from_blob(buffer.data(), {n, seq_len + 1}, torch::kLong).to(device);
    total += model->loss(rows).to(torch::kDouble) * static_cast<double>(n * seq_len);
    targets += n * seq_len;
  }
  model->train(was_training);
  return {total.item<double>(), targets};
}

}  // namespace lnfree::train
