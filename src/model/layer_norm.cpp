#include "model/layer_norm.h"

#include <cstddef>
#include <cstdint>

namespace lnfree::model {

namespace {
// The statistic's eps (spec §1.4), independent of the module's eps, for every normaliser: a
// run.norm = "rmsnorm" run then tracks exactly the Pre-LN run's sigma, and a model read back from an
// eps-trick export (eps 1e12 or 2^40) still tracks its activations' scale.
constexpr double kStatEps = 1e-5;
}

torch::Tensor per_token_std(const torch::Tensor& x, double eps) {
  auto xf = x.to(torch::kFloat);
  return (xf.var(-1, /*unbiased=*/false) + eps).sqrt();
}

namespace {

// What RMSNorm and CRMSNorm divide by, squared and without eps, over the last dim (kept): mean x^2,
// or for CRMSNorm that of the zero-mean vector x compresses (its dropped last coordinate is minus
// the sum of the others, Jiang et al.): (sum x^2 + (sum x)^2) / (dim + 1). xf is fp32.
torch::Tensor rms_mean_square(const torch::Tensor& xf, NormKind kind) {
  if (kind == NormKind::kRmsNorm) return xf.square().mean(-1, /*keepdim=*/true);
  const double d = static_cast<double>(xf.size(-1) + 1);
  return (xf.square().sum(-1, true) + xf.sum(-1, true).square()) / d;
}

}  // namespace

torch::Tensor per_token_divisor(const torch::Tensor& x, NormKind kind, double eps) {
  auto xf = x.to(torch::kFloat);
  if (kind == NormKind::kLayerNorm) return per_token_std(xf, eps);
  return (rms_mean_square(xf, kind) + eps).sqrt().squeeze(-1);
}

LayerNormImpl::LayerNormImpl(int64_t dim, double eps_, bool has_value_path, NormKind kind)
    : eps(eps_), has_value_path_(has_value_path), kind_(kind) {
  weight = register_parameter("weight", torch::ones({dim}));
  bias = register_parameter("bias", torch::zeros({dim}));
  running_sigma = register_buffer("running_sigma", torch::ones({}));
  running_sigma_pos0 = register_buffer("running_sigma_pos0", torch::ones({}));
  sigma_main = register_buffer("sigma_main", torch::ones({}));
  sigma_value = register_buffer("sigma_value", torch::ones({}));
  sigma_pos0 = register_buffer("sigma_pos0", torch::ones({}));
  sigma_value_pos0 = register_buffer("sigma_value_pos0", torch::ones({}));
}

void LayerNormImpl::configure(double retention, QkSigma qk_sigma, bool eot_special, bool bos_special) {
  TORCH_CHECK(retention >= 0 && retention < 1, "LN sigma retention must be in [0, 1), got ", retention);
  retention_ = retention;
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

torch::Tensor LayerNormImpl::per_token_statistic(const torch::Tensor& x) const {
  return per_token_divisor(x, kind_, kStatEps);
}

void LayerNormImpl::update_statistics(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  auto stds = per_token_statistic(x.detach());  // [B, T]
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
  // The step's statistic: the mean of its rows, pooled in float64 so that the split of the step
  // into micro-batches and ranks changes it only by the rounding of the rows themselves.
  auto options = statistics.options().dtype(torch::kFloat);
  auto pooled = statistics.to(torch::kDouble).mean(1).to(torch::kFloat);  // [n_ln, 2]
  // One EMA step, all LNs at once: running <- r * running + (1 - r) * pooled. An LN without a
  // statistic yet takes the pooled one as it is (r = 0).
  std::vector<torch::Tensor> running_list;
  std::vector<double> retention;
  for (auto& ln : lns) {
    running_list.push_back(torch::stack({ln->running_sigma, ln->running_sigma_pos0}));
    retention.push_back(ln->sigma_initialised_ ? ln->retention_ : 0.0);
  }
  auto running = torch::stack(running_list);  // [n_ln, 2]
  // The retentions reach the device from pinned memory without blocking the host (a tiny copy per
  // step would otherwise synchronise with everything queued before it).
  auto r = torch::tensor(retention, torch::kDouble).to(torch::kFloat);
  if (options.device().is_cuda()) r = r.pin_memory();
  r = r.to(options.device(), /*non_blocking=*/true).unsqueeze(1);  // [n_ln, 1]
  running = running * r + pooled * (1 - r);
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
  // sigma and the centring stay in fp32 (spec §1.9); the result returns to x's dtype. RMSNorm and
  // CRMSNorm do not centre.
  auto xf = x.to(torch::kFloat);
  auto centred = kind_ == NormKind::kLayerNorm ? xf - xf.mean(-1, true) : xf;
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
  if (is_fake(path)) return fake(x, sigma(path), path, context);
  if (kind_ == NormKind::kLayerNorm) return torch::layer_norm(x, {x.size(-1)}, weight, bias, eps);
  // RMSNorm and CRMSNorm in fp32 (as LayerNorm's kernel computes its statistics), back to x's dtype.
  // LibTorch has no fused RMSNorm kernel before 2.4: x * rsqrt(.) and one addcmul keep the op count
  // (and the autograd graph) small.
  auto xf = x.to(torch::kFloat);
  return torch::addcmul(bias, xf * (rms_mean_square(xf, kind_) + eps).rsqrt(), weight).to(x.scalar_type());
}

}  // namespace lnfree::model
