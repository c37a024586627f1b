#include "model/layer_norm.h"

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
  const double m = sigma_initialised_ ? momentum_ : 0.0;
  sigma_initialised_ = true;
  running_sigma.mul_(m).add_(stds.mean(), 1.0 - m);
  running_sigma_pos0.mul_(m).add_(stds.select(-1, 0).mean(), 1.0 - m);
  // While a path is real its divisor tracks the running value, so that removal freezes it. With a
  // shared sigma, ln_1's Q/K divisor keeps tracking until the V path is removed too.
  const bool value_real = has_value_path_ && !fake_value_;
  if (!fake_main_ || (qk_sigma_ == QkSigma::kShared && value_real)) sigma_main.copy_(running_sigma);
  if (value_real) sigma_value.copy_(running_sigma);
  if (!fake_main_ || value_real) sigma_pos0.copy_(running_sigma_pos0);
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

void LayerNormImpl::disable_bos_special() {
  bos_special_ = false;
  torch::NoGradGuard no_grad;
  sigma_pos0.copy_(sigma_main);
}

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
    scale = torch::where(special, sigma_pos0, divisor).unsqueeze(-1);
  }
  return (centred / scale * weight + bias).to(x.scalar_type());
}

torch::Tensor LayerNormImpl::forward_path(const torch::Tensor& x, LnPath path, const LnContext& context) {
  if (observer && path == LnPath::kMain) observer(x);
  if (!is_fake(path)) return torch::layer_norm(x, {x.size(-1)}, weight, bias, eps);
  return fake(x, sigma(path), path, context);
}

}  // namespace lnfree::model
