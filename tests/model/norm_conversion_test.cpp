// RMSNorm and CRMSNorm as normalisers, and the exact Pre-LN -> Pre-RMSNorm / Pre-CRMSNorm rewrites
// (model/norm_conversion.h), checked in-process against float64 formulas and the original model.
// The independent numpy reference checks the files `lnfree convert` writes (tests/io/test_convert.py).
#include "model/norm_conversion.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "error_of.h"
#include "model/fold.h"
#include "util/error.h"

namespace lm = lnfree::model;
using lnfree::test_support::error_of;

namespace {

lm::Gpt2Shape tiny_shape(lm::NormKind norm = lm::NormKind::kLayerNorm) {
  lm::Gpt2Shape s;
  s.n_layer = 2, s.n_embd = 24, s.n_head = 3, s.n_positions = 16, s.vocab_size = 61;
  s.norm = norm;
  return s;
}

// Weights far from GPT-2's small init (norm gains around 1, biases non-zero, writes with a mean
// component), so that every part of the forward shows in the logits.
lm::Gpt2 random_model(const lm::Gpt2Shape& shape, int seed) {
  torch::manual_seed(seed);
  lm::Gpt2 model(shape);
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    const bool norm = p.key().find("ln_") != std::string::npos && p.key().find(".weight") != std::string::npos;
    p.value().normal_(norm ? 1.0 : 0.1, 0.3);
  }
  model->eval();
  return model;
}

double relative_error(const torch::Tensor& got, const torch::Tensor& expected) {
  return ((got.to(torch::kDouble) - expected.to(torch::kDouble)).abs().max() / expected.abs().max()).item<double>();
}

torch::Tensor ids_for(const lm::Gpt2Shape& s, int seed) {
  torch::manual_seed(seed);
  return torch::randint(0, s.vocab_size, {3, s.n_positions}, torch::kLong);
}

}  // namespace

TEST(RmsNorm, RealFakeAndStatisticFollowTheirFormulas) {
  torch::manual_seed(1);
  auto x = torch::randn({2, 5, 7}, torch::kDouble) * 3 + 0.5;
  lm::LayerNorm ln(7, 1e-5, false, lm::NormKind::kRmsNorm);
  {
    torch::NoGradGuard no_grad;
    ln->weight.normal_(1.0, 0.3);
    ln->bias.normal_(0.0, 0.3);
  }
  auto g = ln->weight.to(torch::kDouble), b = ln->bias.to(torch::kDouble);
  auto r = (x.square().mean(-1, true) + 1e-5).sqrt();
  EXPECT_LT(relative_error(ln(x.to(torch::kFloat)), x / r * g + b), 1e-6);
  EXPECT_LT(relative_error(ln->per_token_statistic(x.to(torch::kFloat)), r.squeeze(-1)), 1e-6);
  ln->set_sigma(2.5, 2.5);
  ln->remove(lm::LnPath::kMain);
  EXPECT_LT(relative_error(ln(x.to(torch::kFloat)), x / 2.5 * g + b), 1e-6);  // no centring
}

TEST(CrmsNorm, EqualsRmsNormOfTheZeroMeanVectorItCompresses) {
  torch::manual_seed(2);
  auto full = torch::randn({4, 9}, torch::kDouble);
  full = full - full.mean(-1, true);
  auto rms = full / (full.square().mean(-1, true) + 1e-5).sqrt();
  lm::LayerNorm crms(8, 1e-5, false, lm::NormKind::kCrmsNorm);
  auto got = crms(full.narrow(1, 0, 8).to(torch::kFloat));
  EXPECT_LT(relative_error(got, rms.narrow(1, 0, 8)), 1e-6);
}

TEST(NormConversion, PreRmsNormAndPreCrmsNormGiveTheOriginalLogits) {
  for (int seed : {3, 4, 5}) {
    auto shape = tiny_shape();
    auto model = random_model(shape, seed);
    auto ids = ids_for(shape, seed);
    torch::NoGradGuard no_grad;
    auto expected = model(ids);
    auto rms = lm::to_pre_rmsnorm(*model);
    rms->eval();
    auto crms = lm::to_pre_crmsnorm(*model);
    crms->eval();
    EXPECT_EQ(rms->shape().norm, lm::NormKind::kRmsNorm);
    EXPECT_FALSE(rms->shape().tie_word_embeddings);
    EXPECT_TRUE(lm::residual_writes_are_centred(*rms));
    EXPECT_FALSE(lm::residual_writes_are_centred(*model));
    EXPECT_EQ(crms->wte->weight.size(1), shape.n_embd - 1);
    const double e_rms = relative_error(rms(ids), expected), e_crms = relative_error(crms(ids), expected);
    std::printf("seed %d: pre-rmsnorm %.3g, pre-crmsnorm %.3g (max |logit| %.3g)\n", seed, e_rms, e_crms,
                expected.abs().max().item<double>());
    EXPECT_LT(e_rms, 1e-5);
    EXPECT_LT(e_crms, 1e-5);
    // From the Pre-RMSNorm conversion too (its writes are centred): the same Pre-CRMSNorm model.
    auto crms2 = lm::to_pre_crmsnorm(*rms);
    crms2->eval();
    EXPECT_LT(relative_error(crms2(ids), expected), 1e-5);
  }
}

TEST(NormConversion, CentringATiedMatrixIsRefusedBecauseItChangesTheLogits) {
  auto shape = tiny_shape();
  auto model = random_model(shape, 6);
  auto ids = ids_for(shape, 6);
  torch::NoGradGuard no_grad;
  auto expected = model(ids);
  const auto message = error_of([&] { lm::centre_residual_writes(*model); });
  EXPECT_NE(message.find("tied"), std::string::npos) << message;
  EXPECT_NE(message.find("untie"), std::string::npos) << message;
  EXPECT_LT(relative_error(model(ids), expected), 1e-7);  // refused before touching anything
  // What it would do: centre wte (and the other writes) with the head still tied.
  auto centred = lm::to_pre_rmsnorm(*model);
  centred->lm_head->weight.copy_(centred->wte->weight);
  const double change = relative_error(centred(ids), expected);
  std::printf("a centred tied wte changes the logits by %.3g of max |logit|\n", change);
  EXPECT_GT(change, 1e-2);
}

TEST(NormConversion, RemovalStateCarriesOverAndFakeRmsEqualsFakeLn) {
  auto shape = tiny_shape();
  auto model = random_model(shape, 7);
  auto ids = ids_for(shape, 7);
  model->train();
  for (auto& [name, ln] : model->layer_norms()) ln->configure(0.5, lm::QkSigma::kSeparate, false, false);
  model(ids);
  for (auto& [name, ln] : model->layer_norms()) {
    ln->commit_statistics();
    ln->remove(lm::LnPath::kMain);
    if (ln->has_value_path()) ln->remove(lm::LnPath::kValue);
  }
  model->eval();
  torch::NoGradGuard no_grad;
  auto expected = model(ids);
  auto rms = lm::to_pre_rmsnorm(*model);
  rms->eval();
  EXPECT_TRUE(rms->all_layer_norms_fake());
  EXPECT_LT(relative_error(rms(ids), expected), 1e-5);
  // FakeRMSNorm folds without centring; the fold equals the fake model.
  EXPECT_LT(relative_error(lm::fold_layer_norms(*rms).forward(ids), expected), 1e-5);
  EXPECT_NE(error_of([&] { lm::to_pre_crmsnorm(*model); }).find("fake"), std::string::npos);
}

TEST(CentredWrites, RmsNormModelWithCentredWritesIsThePreLnModelInValueAndGradient) {
  auto shape = tiny_shape();
  auto ln_model = random_model(shape, 8);
  auto centred_shape = shape;
  centred_shape.norm = lm::NormKind::kRmsNorm;
  centred_shape.centre_writes = true;
  lm::Gpt2 rms_model(centred_shape);
  {
    torch::NoGradGuard no_grad;
    auto source = ln_model->named_parameters();
    for (auto& p : rms_model->named_parameters()) p.value().copy_(source[p.key()]);  // the same raw weights
  }
  rms_model->eval();
  auto windows = ids_for(shape, 8);  // [B, T]: inputs T - 1, targets shifted by one
  auto l_ln = ln_model->loss(windows);
  auto l_rms = rms_model->loss(windows);
  l_ln.backward();
  l_rms.backward();
  EXPECT_LT(std::abs(l_ln.item<double>() - l_rms.item<double>()) / l_ln.item<double>(), 1e-6);
  auto grads = ln_model->named_parameters();
  double worst = 0;
  for (auto& p : rms_model->named_parameters()) {
    const auto& g = grads[p.key()].grad();
    worst = std::max(worst, relative_error(p.value().grad(), g));
  }
  std::printf("centred-writes RMSNorm vs Pre-LN: loss %.9g vs %.9g, worst gradient error %.3g\n",
              l_rms.item<double>(), l_ln.item<double>(), worst);
  EXPECT_LT(worst, 1e-4);
}
