#include "interp/dla.h"

#include <algorithm>
#include <cstddef>
#include <memory>

#include "util/error.h"

namespace lnfree::interp {

DlaReport direct_logit_attribution(model::LanguageModel& model, const data::TokenSplit& split,
                                   const DlaOptions& o) {
  if (o.seq_len < 1 || o.seq_len > model.shape().n_positions)
    fail("interp dla: --seq-len must be in [1, {}] (the model's n_positions), got {}",
         model.shape().n_positions, o.seq_len);
  std::shared_ptr<const data::TokenSplit> view(&split, [](const data::TokenSplit*) {});
  data::EvalWindows windows(view, o.seq_len, o.windows, 0, 1);
  if (windows.total_windows() == 0)
    fail("{}: fewer than {} tokens: no window", split.description(), o.seq_len + 1);
  const std::int64_t L = o.seq_len + 1;
  std::vector<std::int64_t> buffer(static_cast<std::size_t>(o.batch * L));
  DlaReport report;
  std::vector<std::string> names;
  torch::Tensor abs_diff, abs_de;  // [C] sums, double
  double max_part_error = 0, max_residual = 0;
  torch::NoGradGuard no_grad;
  while (std::int64_t n = windows.next_batch(o.batch, buffer.data())) {
    auto rows = torch::from_blob(buffer.data(), {n, L}, torch::kLong).to(model.device());
    using torch::indexing::Slice;
    auto inputs = rows.index({Slice(), Slice(0, o.seq_len)});
    auto targets = rows.select(1, o.seq_len);
    auto decomposition = model.residual_parts(inputs, o.seq_len - 1);
    const auto& parts = decomposition.parts;  // [C, n, d]
    const auto& r = decomposition.residual;   // [n, d]
    if (names.empty()) {
      names = decomposition.names;
      abs_diff = torch::zeros({parts.size(0)}, torch::kDouble);
      abs_de = torch::zeros({parts.size(0)}, torch::kDouble);
    }
    max_part_error = std::max(max_part_error, (parts.sum(0) - r).abs().max().item<double>());
    max_residual = std::max(max_residual, r.abs().max().item<double>());
    const int64_t C = parts.size(0);
    auto r_all = r.unsqueeze(0).expand_as(parts).reshape({C * n, -1});
    auto t_all = targets.unsqueeze(0).expand({C, n}).reshape({-1});
    auto c_all = parts.reshape({C * n, -1});
    auto dla = model.direct_logit(c_all, r_all, t_all);
    auto de = model.target_logit(r_all, t_all) - model.target_logit(r_all - c_all, t_all);
    abs_diff += (dla - de).abs().view({C, n}).to(torch::kCPU, torch::kDouble).sum(1);
    abs_de += de.abs().view({C, n}).to(torch::kCPU, torch::kDouble).sum(1);
    report.samples += n;
  }
  report.decomposition_error = max_part_error / std::max(max_residual, 1e-30);
  double head_diff = 0, head_de = 0, head_nmae_sum = 0, all_diff = 0, all_de = 0;
  std::int64_t heads = 0;
  for (std::size_t c = 0; c < names.size(); ++c) {
    const double diff = abs_diff[static_cast<int64_t>(c)].item<double>();
    const double de = abs_de[static_cast<int64_t>(c)].item<double>();
    const double samples = static_cast<double>(report.samples);
    ComponentError e{names[c], de > 0 ? diff / de : 0.0, de / samples, diff / samples};
    report.components.push_back(e);
    all_diff += diff;
    all_de += de;
    // Head parts are "L<l>H<h>".
    if (names[c].find('H') != std::string::npos && names[c].find('.') == std::string::npos) {
      head_diff += diff;
      head_de += de;
      head_nmae_sum += e.nmae;
      ++heads;
    }
  }
  report.heads_pooled = head_de > 0 ? head_diff / head_de : 0;
  report.heads_mean = heads > 0 ? head_nmae_sum / static_cast<double>(heads) : 0;
  report.all_pooled = all_de > 0 ? all_diff / all_de : 0;
  return report;
}

}  // namespace lnfree::interp
