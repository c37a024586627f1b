#include "train/adamw.h"

#include <gtest/gtest.h>

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
