#include "eval/token_eval.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <utility>

#include "util/error.h"

namespace lnfree::eval {
namespace {

// The q-quantile of `values` (nearest rank on the sorted order; values is reordered).
double quantile(std::vector<float>& values, double q) {
  if (values.empty()) return 0;
  const auto k = static_cast<std::size_t>(std::min<double>(
      static_cast<double>(values.size() - 1), std::ceil(q * static_cast<double>(values.size())) - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return values[k];
}

// Keeps the `keep` largest by value, largest first.
void keep_top(std::vector<Outlier>& list, Outlier candidate, std::int64_t keep) {
  list.push_back(std::move(candidate));
  std::stable_sort(list.begin(), list.end(),
                   [](const Outlier& a, const Outlier& b) { return a.value > b.value; });
  if (static_cast<std::int64_t>(list.size()) > keep) list.resize(static_cast<std::size_t>(keep));
}

std::vector<std::int32_t> unseen_tokens(const std::int64_t* row, std::int64_t n,
                                        const std::vector<bool>& seen) {
  std::vector<std::int32_t> out;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto id = row[i];
    if ((static_cast<std::size_t>(id) >= seen.size() || !seen[static_cast<std::size_t>(id)]) &&
        std::find(out.begin(), out.end(), id) == out.end())
      out.push_back(static_cast<std::int32_t>(id));
  }
  return out;
}

Outlier make_outlier(const std::int64_t* row, std::int64_t window, std::int64_t position, double value,
                     const TokenEvalOptions& o, std::int64_t row_length) {
  Outlier out;
  out.window = window;
  out.position = position;
  out.value = value;
  out.token = static_cast<std::int32_t>(row[position]);
  for (std::int64_t i = std::max<std::int64_t>(0, position - o.context); i < position; ++i)
    out.context.push_back(static_cast<std::int32_t>(row[i]));
  if (o.seen) out.unseen = unseen_tokens(row, row_length, *o.seen);
  return out;
}

}  // namespace

TokenEvalReport evaluate_tokens(model::LanguageModel& model, const data::TokenSplit& split,
                                const TokenEvalOptions& o) {
  if (o.seq_len < 1 || o.batch < 1) fail("evaluation: --seq-len and --batch must be positive");
  if (o.seq_len > model.shape().n_positions)
    fail("{}: --seq-len {} exceeds the model's n_positions = {}", split.description(), o.seq_len,
         model.shape().n_positions);
  if (o.drop_unseen && !o.seen) fail("evaluation: dropping unseen tokens needs the fine-tuning token set");
  std::shared_ptr<const data::TokenSplit> view(&split, [](const data::TokenSplit*) {});
  data::EvalWindows windows(view, o.seq_len, o.max_windows, /*rank=*/0, /*world=*/1);
  if (windows.total_windows() == 0)
    fail("{}: fewer than {} tokens: no evaluation window", split.description(), o.seq_len + 1);
  const std::int64_t L = o.seq_len + 1;
  const torch::Device device = model.device();
  TokenEvalReport report;
  std::vector<float> losses;
  double loss_sum = 0, norm_sum = 0;
  std::int64_t norm_count = 0;
  std::vector<std::int64_t> buffer(static_cast<std::size_t>(o.batch * L)), kept;
  std::int64_t next_window = 0;
  while (std::int64_t n = windows.next_batch(o.batch, buffer.data())) {
    // The unseen filter drops whole windows before the forward pass.
    kept.clear();
    std::vector<std::int64_t> indices;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t* row = buffer.data() + i * L;
      const std::int64_t index = next_window + i;
      if (o.drop_unseen && !unseen_tokens(row, L, *o.seen).empty()) {
        report.dropped.push_back(index);
        continue;
      }
      kept.insert(kept.end(), row, row + L);
      indices.push_back(index);
    }
    next_window += n;
    const auto m = static_cast<std::int64_t>(indices.size());
    if (m == 0) continue;
    auto rows = torch::from_blob(kept.data(), {m, L}, torch::kLong).to(device);
    using torch::indexing::Slice;
    auto inputs = rows.index({Slice(), Slice(0, o.seq_len)});
    auto targets = rows.index({Slice(), Slice(1, L)});
    torch::NoGradGuard no_grad;
    auto r = model.residual(inputs);
    auto logits = model.logits_from_residual(r).to(torch::kFloat);
    auto ce = torch::nn::functional::cross_entropy(
                  logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
                  torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
                  .view({m, o.seq_len})
                  .to(torch::kCPU, torch::kFloat)
                  .contiguous();
    auto norms = r.to(torch::kFloat).norm(2, -1).to(torch::kCPU).contiguous();  // [m, T]
    const float* ce_data = ce.data_ptr<float>();
    const float* norm_data = norms.data_ptr<float>();
    for (std::int64_t i = 0; i < m; ++i) {
      const std::int64_t* row = kept.data() + i * L;
      std::int64_t worst = 0, widest = 0;
      for (std::int64_t t = 0; t < o.seq_len; ++t) {
        const float value = ce_data[i * o.seq_len + t];
        losses.push_back(value);
        loss_sum += value;
        if (value > ce_data[i * o.seq_len + worst]) worst = t;
        const float norm = norm_data[i * o.seq_len + t];
        norm_sum += norm;
        if (norm > norm_data[i * o.seq_len + widest]) widest = t;
      }
      norm_count += o.seq_len;
      report.max_residual_norm =
          std::max<double>(report.max_residual_norm, norm_data[i * o.seq_len + widest]);
      // Loss at t predicts token t + 1; the residual at t reads token t.
      keep_top(report.top_loss,
               make_outlier(row, indices[i], worst + 1, ce_data[i * o.seq_len + worst], o, L), o.outliers);
      keep_top(report.top_norm,
               make_outlier(row, indices[i], widest, norm_data[i * o.seq_len + widest], o, L), o.outliers);
    }
    report.windows += m;
  }
  report.windows_dropped = static_cast<std::int64_t>(report.dropped.size());
  if (report.windows == 0)
    fail("{}: every one of its {} windows holds a token never seen in fine-tuning: nothing left to evaluate",
         split.description(), report.windows_dropped);
  report.targets = static_cast<std::int64_t>(losses.size());
  report.mean = loss_sum / static_cast<double>(report.targets);
  report.mean_residual_norm = norm_sum / static_cast<double>(norm_count);
  report.max = *std::max_element(losses.begin(), losses.end());
  report.median = quantile(losses, 0.5);
  report.p95 = quantile(losses, 0.95);
  report.p999 = quantile(losses, 0.999);
  return report;
}

}  // namespace lnfree::eval
