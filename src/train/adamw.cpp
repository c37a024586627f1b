#include "train/adamw.h"

#include <cmath>

namespace lnfree::train {

AdamW::AdamW(std::vector<Param> params, AdamWOptions options)
    : params_(std::move(params)), options_(options) {
  for (auto& p : params_) {
    p.exp_avg = torch::zeros_like(p.value, torch::MemoryFormat::Preserve).detach();
    p.exp_avg_sq = torch::zeros_like(p.value, torch::MemoryFormat::Preserve).detach();
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double bias1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double bias2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
  const double step_size = lr / bias1;
  const double bias2_sqrt = std::sqrt(bias2);
  for (auto& p : params_) {
    const auto& grad = p.value.grad();
    if (!grad.defined()) continue;
    if (p.decay && options_.weight_decay != 0) p.value.mul_(1.0 - lr * options_.weight_decay);
    p.exp_avg.mul_(options_.beta1).add_(grad, 1.0 - options_.beta1);
    p.exp_avg_sq.mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
    auto denom = (p.exp_avg_sq.sqrt() / bias2_sqrt).add_(options_.eps);
    p.value.addcdiv_(p.exp_avg, denom, -step_size);
  }
}

void AdamW::zero_grad() {
  for (auto& p : params_)
    if (p.value.grad().defined()) p.value.mutable_grad().zero_();
}

torch::Tensor clip_gradients(std::vector<AdamW::Param>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> squares;
  for (auto& p : params)
    if (p.value.grad().defined()) squares.push_back(p.value.grad().pow(2).sum());
  auto norm = torch::stack(squares).sum().sqrt();
  if (max_norm > 0) {
    auto coefficient = (max_norm / (norm + 1e-6)).clamp_max(1.0);
    for (auto& p : params)
      if (p.value.grad().defined()) p.value.mutable_grad().mul_(coefficient);
  }
  return norm;
}

}  // namespace lnfree::train
