#include "model/aux_loss.h"

#include <gtest/gtest.h>

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
