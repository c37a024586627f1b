#include "train/adamw.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <utility>
#include <vector>

namespace lt = lnfree::train;

// Our AdamW against LibTorch's own torch::optim::AdamW (an independent implementation of the same
// update) over several steps with changing learning rates, with and without weight decay.
TEST(AdamW, MatchesTorchOptimAdamW) {
  torch::manual_seed(11);
  auto w_ours = torch::randn({5, 4}).requires_grad_(true);
  auto b_ours = torch::randn({4}).requires_grad_(true);
  auto w_ref = w_ours.detach().clone().requires_grad_(true);
  auto b_ref = b_ours.detach().clone().requires_grad_(true);
  lt::AdamW ours({{"w", w_ours, true, {}, {}}, {"b", b_ours, false, {}, {}}}, {0.9, 0.95, 1e-8, 0.1});
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{w_ref},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(1.0).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1)));
  groups.emplace_back(std::vector<torch::Tensor>{b_ref},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(1.0).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.0)));
  torch::optim::AdamW reference(groups, torch::optim::AdamWOptions(1.0));
  double worst = 0;
  for (int step = 0; step < 6; ++step) {
    const double lr = 1e-2 * (step + 1);
    auto x = torch::randn({3, 5});
    for (auto [w, b] : {std::pair{w_ours, b_ours}, std::pair{w_ref, b_ref}}) {
      auto loss = (torch::matmul(x, w) + b).pow(2).sum();
      loss.backward();
    }
    ours.step(lr);
    ours.zero_grad();
    for (auto& group : reference.param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    reference.step();
    reference.zero_grad();
    worst = std::max(
        {worst, (w_ours - w_ref).abs().max().item<double>(), (b_ours - b_ref).abs().max().item<double>()});
  }
  std::printf("AdamW vs torch::optim::AdamW after 6 steps: max abs diff %.3g\n", worst);
  EXPECT_LT(worst, 1e-6);
}

TEST(AdamW, ClippingScalesToTheMaxNormAndReportsTheNorm) {
  auto a = torch::zeros({2}).requires_grad_(true);
  auto b = torch::zeros({1}).requires_grad_(true);
  (a * torch::tensor({3.0f, 0.0f})).sum().backward();
  (b * torch::tensor({4.0f})).sum().backward();
  std::vector<lt::AdamW::Param> params{{"a", a, true, {}, {}}, {"b", b, true, {}, {}}};
  auto norm = lt::clip_gradients(params, 1.0);
  EXPECT_NEAR(norm.item<double>(), 5.0, 1e-6);
  EXPECT_NEAR(a.grad()[0].item<double>(), 3.0 / 5.0, 1e-5);
  EXPECT_NEAR(b.grad()[0].item<double>(), 4.0 / 5.0, 1e-5);
}

// The multi-tensor (foreach) update does the per-tensor arithmetic term for term: on the CPU its
// result equals a plain per-parameter loop bit for bit, so runs and checkpoints from before it
// are unchanged. Parameters without a gradient are left alone.
TEST(AdamW, ForeachUpdateEqualsThePerTensorLoopBitwise) {
  torch::manual_seed(5);
  const lt::AdamWOptions o{0.9, 0.95, 1e-8, 0.1};
  std::vector<torch::Tensor> ours, loop;
  for (auto shape : {std::vector<int64_t>{7, 3}, {3}, {2, 2, 2}, {5}}) {
    ours.push_back(torch::randn(shape).requires_grad_(true));
    loop.push_back(ours.back().detach().clone());
  }
  lt::AdamW opt({{"a", ours[0], true, {}, {}},
                 {"b", ours[1], false, {}, {}},
                 {"c", ours[2], true, {}, {}},
                 {"unused", ours[3], true, {}, {}}},
                o);
  std::vector<torch::Tensor> m, v;
  for (auto& t : loop) m.push_back(torch::zeros_like(t)), v.push_back(torch::zeros_like(t));
  for (int step = 1; step <= 4; ++step) {
    const double lr = 3e-3 * step;
    std::vector<torch::Tensor> grads;
    for (int i = 0; i < 3; ++i) grads.push_back(torch::randn_like(loop[i]));
    for (int i = 0; i < 3; ++i) ours[i].mutable_grad() = grads[i].clone();
    opt.step(lr);
    const double bias1 = 1 - std::pow(o.beta1, step), bias2 = 1 - std::pow(o.beta2, step);
    for (int i = 0; i < 3; ++i) {
      if (i != 1) loop[i].mul_(1.0 - lr * o.weight_decay);
      m[i].mul_(o.beta1).add_(grads[i], 1.0 - o.beta1);
      v[i].mul_(o.beta2).addcmul_(grads[i], grads[i], 1.0 - o.beta2);
      loop[i].addcdiv_(m[i], (v[i].sqrt() / std::sqrt(bias2)).add_(o.eps), -lr / bias1);
    }
  }
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(torch::equal(ours[i].detach(), loop[i])) << "parameter " << i;
}
