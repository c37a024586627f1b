#include "model/layer_norm.h"

#include <cstddef>
#include <cstdint>

namespace lnfree::model {

namespace {
constexpr double kStatEps = 1e-5;  // the statistic's eps (spec §1.4), independent of the LN's eps
}

torch::Tensor per_token_std(const torch::Tensor& x, double eps) {
  auto xf = x.to(torch::kFloat);
  return (xf.var(-1, /*unbiased=*/false) + eps).sqrt();
}

LayerNormImpl::LayerNormImpl(int64_t dim, double eps_, bool has_value_path)
    : eps(eps_), has_value_path_(has_value_path) {
  weight = register_parameter("weight", torch::ones({dim}));
  bias = register_parameter("bias", torch::zeros({dim}));
  running_sigma = register_buffer("running_sigma", torch::ones({}));
  running_sigma_pos0 = register_buffer("running_sigma_pos0", torch::ones({}));
  sigma_main = register_buffer("sigma_main", torch::ones({}));
  sigma_value = register_buffer("sigma_value", torch::ones({}));
  sigma_pos0 = register_buffer("sigma_pos0", torch::ones({}));
  sigma_value_pos0 = register_buffer("sigma_value_pos0", torch::ones({}));
}

void LayerNormImpl::configure(double momentum, QkSigma qk_sigma, bool eot_special, bool bos_special) {
  TORCH_CHECK(momentum >= 0 && momentum < 1, "LN momentum must be in [0, 1), got ", momentum);
  momentum_ = momentum;
  qk_sigma_ = qk_sigma;
  eot_special_ = eot_special;
  bos_special_ = bos_special;
}

void LayerNormImpl::set_sigma(double average, double position0) {
  torch::NoGradGuard no_grad;
  sigma_initialised_ = true;
  running_sigma.fill_(average);
  sigma_main.fill_(average);
  sigma_value.fill_(average);
  running_sigma_pos0.fill_(position0);
  sigma_pos0.fill_(position0);
  sigma_value_pos0.fill_(position0);
}

void LayerNormImpl::set_flags(const Flags& f) {
  fake_main_ = f.fake_main;
  fake_value_ = f.fake_value;
  eot_special_ = f.eot_special;
  bos_special_ = f.bos_special;
  sigma_initialised_ = f.sigma_initialised;
}

void LayerNormImpl::update_statistics(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  auto stds = per_token_std(x.detach(), kStatEps);  // [B, T]
  pending_.push_back(torch::stack({stds.mean(), stds.select(-1, 0).mean()}));
}

torch::Tensor LayerNormImpl::pending_statistics() const {
  if (pending_.empty()) return torch::empty({0, 2}, running_sigma.options());
  return torch::stack(pending_);
}

void LayerNormImpl::commit_statistics(const torch::Tensor& statistics) {
  std::shared_ptr<LayerNormImpl> self(std::shared_ptr<LayerNormImpl>{}, this);  // non-owning
  model::commit_statistics({self}, statistics.unsqueeze(0));
}

void commit_statistics(const std::vector<std::shared_ptr<LayerNormImpl>>& lns,
                       const torch::Tensor& statistics) {
  TORCH_CHECK(statistics.dim() == 3 && statistics.size(0) == static_cast<int64_t>(lns.size()) &&
                  statistics.size(2) == 2,
              "commit_statistics: expected [", lns.size(), ", n, 2] statistics, got ", statistics.sizes());
  torch::NoGradGuard no_grad;
  for (auto& ln : lns) ln->pending_.clear();
  const int64_t rows = statistics.size(1);
  if (lns.empty() || rows == 0) return;
  // EMA over the rows, all LNs at once: running <- m * running + (1 - m) * row. An LN without a
  // statistic yet takes its first row as it is (m = 0 for that step).
  std::vector<torch::Tensor> running_list;
  std::vector<double> first_m, later_m;
  for (auto& ln : lns) {
    running_list.push_back(torch::stack({ln->running_sigma, ln->running_sigma_pos0}));
    first_m.push_back(ln->sigma_initialised_ ? ln->momentum_ : 0.0);
    later_m.push_back(ln->momentum_);
  }
  auto options = statistics.options().dtype(torch::kFloat);
  auto running = torch::stack(running_list);  // [n_ln, 2]
  // The retentions reach the device from pinned memory without blocking the host (two tiny copies
  // per step would otherwise synchronise with everything queued before them).
  const bool cuda = options.device().is_cuda();
  const auto upload = [&](const std::vector<double>& m) {
    auto host = torch::tensor(m, torch::kDouble).to(torch::kFloat);
    if (cuda) host = host.pin_memory();
    return host.to(options.device(), /*non_blocking=*/true).unsqueeze(1);  // [n_ln, 1]
  };
  auto m_first = upload(first_m);
  auto m_later = upload(later_m);
  auto stats = statistics.to(options);
  for (int64_t j = 0; j < rows; ++j) {
    const auto& m = j == 0 ? m_first : m_later;
    running = running * m + stats.select(1, j) * (1 - m);
  }
  for (std::size_t i = 0; i < lns.size(); ++i) {
    auto& ln = *lns[i];
    ln.sigma_initialised_ = true;
    ln.running_sigma.copy_(running[static_cast<int64_t>(i)][0]);
    ln.running_sigma_pos0.copy_(running[static_cast<int64_t>(i)][1]);
    // While a path is real its divisors (average and position 0) track the running values, so
    // that removal freezes them. With a shared sigma, ln_1's Q/K divisors keep tracking until the V
    // path is removed too; with separate sigmas each path's pair freezes at that path's removal.
    const bool value_real = ln.has_value_path_ && !ln.fake_value_;
    if (!ln.fake_main_ || (ln.qk_sigma_ == QkSigma::kShared && value_real)) {
      ln.sigma_main.copy_(ln.running_sigma);
      ln.sigma_pos0.copy_(ln.running_sigma_pos0);
    }
    if (value_real) {
      ln.sigma_value.copy_(ln.running_sigma);
      ln.sigma_value_pos0.copy_(ln.running_sigma_pos0);
    }
  }
}

void LayerNormImpl::remove(LnPath path) {
  if (path == LnPath::kMain) {
    fake_main_ = true;
  } else {
    TORCH_CHECK(has_value_path_, "only ln_1 has a separate V path");
    fake_value_ = true;
  }
}

void LayerNormImpl::disable_eot_special() { eot_special_ = false; }

// Position 0 then uses the path's average divisor; EOT rows of the V path keep the position-0
// divisor until the eot event (the reference's "bos" event leaves its EOT buffer as it is, §1.6).
void LayerNormImpl::disable_bos_special() { bos_special_ = false; }

torch::Tensor LayerNormImpl::sigma(LnPath path) const {
  return path == LnPath::kMain ? sigma_main : sigma_value;
}

torch::Tensor LayerNormImpl::fake(const torch::Tensor& x, const torch::Tensor& divisor, LnPath path,
                                  const LnContext& context) const {
  // sigma and the centring stay in fp32 (spec §1.9); the result returns to x's dtype.
  auto xf = x.to(torch::kFloat);
  auto centred = xf - xf.mean(-1, true);
  torch::Tensor scale = divisor;
  if (bos_special_ || (eot_special_ && path == LnPath::kValue && context.eot_mask.defined())) {
    // Per-position divisor [B, T, 1]: position 0 and (V path) EOT rows use the position-0 sigma.
    auto special = torch::zeros({x.size(0), x.size(1)}, x.options().dtype(torch::kBool));
    if (bos_special_) special.select(1, 0).fill_(true);
    if (eot_special_ && path == LnPath::kValue && context.eot_mask.defined()) special |= context.eot_mask;
    scale =
        torch::where(special, path == LnPath::kValue ? sigma_value_pos0 : sigma_pos0, divisor).unsqueeze(-1);
  }
  return (centred / scale * weight + bias).to(x.scalar_type());
}

torch::Tensor LayerNormImpl::forward_path(const torch::Tensor& x, LnPath path, const LnContext& context) {
  if (observer && path == LnPath::kMain) observer(x);
  if (!is_fake(path)) return torch::layer_norm(x, {x.size(-1)}, weight, bias, eps);
  return fake(x, sigma(path), path, context);
}

}  // namespace lnfree::model
