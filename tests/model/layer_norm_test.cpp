#include "model/layer_norm.h"

#include <gtest/gtest.h>

namespace lm = lnfree::model;

TEST(LayerNorm, RealModeEqualsTheFormulaInFloat64) {
  torch::manual_seed(3);
  lm::LayerNorm ln(16, 1e-5);
  {
    torch::NoGradGuard no_grad;
    ln->weight.normal_();
    ln->bias.normal_();
  }
  auto x = torch::randn({3, 5, 16}) * 4 + 1;
  auto x64 = x.to(torch::kDouble);
  auto mu = x64.mean(-1, true);
  auto var = (x64 - mu).pow(2).mean(-1, true);
  auto expected = (x64 - mu) / (var + 1e-5).sqrt() * ln->weight.to(torch::kDouble) + ln->bias.to(torch::kDouble);
  for (auto path : {lm::LnPath::kMain, lm::LnPath::kValue}) {
    auto got = ln->forward_path(x, path).to(torch::kDouble);
    double err = ((got - expected).abs() / (expected.abs() + 1)).max().item<double>();
    std::printf("LayerNorm vs float64 formula: max rel err %.3g\n", err);
    EXPECT_LT(err, 1e-5);
  }
}
