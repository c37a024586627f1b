#include "model/aux_loss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>

namespace lm = lnfree::model;

TEST(AuxLoss, HandComputedCase) {
  // d = 2: a token [a, -a] has per-token std sqrt(a^2 + 1e-5).
  auto residual = torch::tensor({{{5.0f, -5.0f}, {1.0f, -1.0f}, {3.0f, -3.0f}, {8.0f, -8.0f}}});
  auto ids = torch::tensor({{7, 8, 9, 50256}}, torch::kLong);
  auto s = [](double a) { return std::sqrt(a * a + 1e-5); };
  // Position 0 and the EOT position are excluded from the target, not from the mean.
  double target = (s(1) + s(3)) / 2;
  double expected = (std::pow(s(5) - target, 2) + std::pow(s(1) - target, 2) + std::pow(s(3) - target, 2) +
                     std::pow(s(8) - target, 2)) /
                    4;
  double got = lm::aux_sigma_loss(residual, ids).item<double>();
  std::printf("aux loss %.8f, hand-computed %.8f\n", got, expected);
  EXPECT_NEAR(got, expected, 1e-5 * expected);
}

TEST(AuxLoss, TargetIsOneWhenNoPositionQualifiesAndCarriesNoGradient) {
  auto residual = torch::tensor({{{2.0f, -2.0f}, {4.0f, -4.0f}}}).requires_grad_(true);
  auto ids = torch::tensor({{1, 50256}}, torch::kLong);
  auto loss = lm::aux_sigma_loss(residual, ids);
  auto s = [](double a) { return std::sqrt(a * a + 1e-5); };
  EXPECT_NEAR(loss.item<double>(), (std::pow(s(2) - 1, 2) + std::pow(s(4) - 1, 2)) / 2, 1e-5);
  loss.backward();
  // d/dx of (sigma - target)^2 with a constant target: 2 (sigma - target) * dsigma/dx / N.
  double expected_grad = 2 * (s(2) - 1) * (2.0 / s(2)) / 2 / 2;  // dsigma/dx0 = x0 / (d sigma)
  EXPECT_NEAR(residual.grad()[0][0][0].item<double>(), expected_grad, 1e-5);
}

// The target must be a constant (spec §4: "with no gradient"). With position 0 and an EOT token far
// above the typical norm (as in GPT-2), mean(sigma - target) over all positions is far from 0, so a
// target that carried gradient would add -2 mean(sigma - target) * d target / d x to the gradient.
// The reference here is the float64 gradient of (sigma - c)^2 with c a number computed beforehand.
TEST(AuxLoss, GradientTreatsTheTargetAsAConstant) {
  torch::manual_seed(11);
  auto base = torch::randn({2, 6, 8});
  auto scale = torch::ones({2, 6, 1});
  scale.select(1, 0).fill_(30.0);  // position 0: huge norm
  scale[0][3][0] = 20.0;           // an EOT token: huge norm
  scale[1][4][0] = 0.2;            // an ordinary token with a small norm
  auto x = (base * scale).detach();
  auto ids = torch::randint(0, 100, {2, 6}, torch::kLong);
  ids[0][3] = 50256;

  auto residual = x.clone().requires_grad_(true);
  lm::aux_sigma_loss(residual, ids).backward();

  auto x64 = x.to(torch::kDouble).requires_grad_(true);
  auto sigma = ((x64 - x64.mean(-1, true)).pow(2).mean(-1) + 1e-5).sqrt();
  double sum = 0;
  int count = 0;
  for (int b = 0; b < 2; ++b)
    for (int t = 1; t < 6; ++t)
      if (ids[b][t].item<int64_t>() != 50256) sum += sigma[b][t].item<double>(), ++count;
  const double constant_target = sum / count;
  (sigma - constant_target).pow(2).mean().backward();

  const double err =
      ((residual.grad().to(torch::kDouble) - x64.grad()).abs().max() / x64.grad().abs().max()).item<double>();
  std::printf("aux-loss gradient vs float64 gradient with a constant target: max rel err %.3g\n", err);
  EXPECT_LT(err, 1e-4);
}

// The trainer pools the target over a whole optimizer step (train/aux_target.h): the statistics of
// the step's micro-batches, summed, give the target of the whole step at once, and the loss against
// that target, averaged over equal micro-batches, is the whole step's loss. Reference: float64 over
// the whole step.
TEST(AuxLoss, PooledStatisticsGiveTheWholeStepsTarget) {
  torch::manual_seed(12);
  auto x = torch::randn({6, 5, 8}) * torch::rand({6, 5, 1}) * 4;
  auto ids = torch::randint(0, 100, {6, 5}, torch::kLong);
  ids[1][2] = 50256;
  ids[4][1] = 50256;
  auto x64 = x.to(torch::kDouble);
  auto sigma = ((x64 - x64.mean(-1, true)).pow(2).mean(-1) + 1e-5).sqrt();
  auto mask = ids.ne(50256);
  mask.select(1, 0).fill_(false);
  const double target = (sigma * mask).sum().item<double>() / mask.sum().item<double>();
  const double loss = (sigma - target).pow(2).mean().item<double>();

  auto pooled = torch::zeros({2}, torch::kDouble);
  for (int k = 0; k < 3; ++k)  // micro-batches of 2 sequences
    pooled += lm::aux_target_statistics(lm::aux_sigma(x.narrow(0, 2 * k, 2)), ids.narrow(0, 2 * k, 2));
  auto got_target = lm::aux_target_from_statistics(pooled);
  double got_loss = 0;
  for (int k = 0; k < 3; ++k)
    got_loss +=
        lm::aux_sigma_loss_against(lm::aux_sigma(x.narrow(0, 2 * k, 2)), got_target).item<double>() / 3;
  std::printf("pooled target %.8f vs float64 %.8f; loss %.8f vs %.8f\n", got_target.item<double>(), target,
              got_loss, loss);
  EXPECT_NEAR(got_target.item<double>(), target, 1e-6 * target);
  EXPECT_NEAR(got_loss, loss, 1e-5 * loss);
  // A micro-batch's own target (the reference's) differs: that is what pooling removes.
  const double own = lm::aux_target_from_statistics(
                         lm::aux_target_statistics(lm::aux_sigma(x.narrow(0, 0, 2)), ids.narrow(0, 0, 2)))
                         .item<double>();
  EXPECT_GT(std::abs(own - target), 1e-3 * target);
}
