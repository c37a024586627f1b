#include "model/layer_norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <vector>

#include "model/gpt2.h"

namespace lm = lnfree::model;

namespace {

torch::Tensor reference_ln64(const torch::Tensor& x, const lm::LayerNorm& ln, double divisor = -1) {
  auto x64 = x.to(torch::kDouble);
  auto mu = x64.mean(-1, true);
  auto var = (x64 - mu).pow(2).mean(-1, true);
  auto denom = divisor > 0 ? torch::full_like(var, divisor) : (var + 1e-5).sqrt();
  return (x64 - mu) / denom * ln->weight.to(torch::kDouble) + ln->bias.to(torch::kDouble);
}

double max_rel_err(const torch::Tensor& got, const torch::Tensor& expected) {
  return ((got.to(torch::kDouble) - expected).abs() / (expected.abs() + 1)).max().item<double>();
}

lm::LayerNorm random_ln(bool has_value_path = false) {
  lm::LayerNorm ln(16, 1e-5, has_value_path);
  torch::NoGradGuard no_grad;
  ln->weight.normal_();
  ln->bias.normal_();
  return ln;
}

double value(const torch::Tensor& t) { return t.item<double>(); }

}  // namespace

TEST(LayerNorm, RealModeEqualsTheFormulaInFloat64) {
  torch::manual_seed(3);
  auto ln = random_ln(true);
  auto x = torch::randn({3, 5, 16}) * 4 + 1;
  for (auto path : {lm::LnPath::kMain, lm::LnPath::kValue}) {
    double err = max_rel_err(ln->forward_path(x, path, {}), reference_ln64(x, ln));
    std::printf("real LayerNorm vs float64 formula: max rel err %.3g\n", err);
    EXPECT_LT(err, 1e-5);
  }
}

TEST(LayerNorm, FakeModeDividesByTheFrozenSigma) {
  torch::manual_seed(4);
  auto ln = random_ln();
  ln->set_sigma(2.5, 7.0);
  ln->remove(lm::LnPath::kMain);
  auto x = torch::randn({2, 6, 16}) * 3;
  double err = max_rel_err(ln(x), reference_ln64(x, ln, 2.5));
  std::printf("fake LayerNorm vs (x - mean)/2.5*g + b: max rel err %.3g\n", err);
  EXPECT_LT(err, 1e-6);
}

TEST(LayerNorm, EmaFollowsTheMeanPerTokenStdAndFreezesAtRemoval) {
  torch::manual_seed(5);
  auto ln = random_ln();
  ln->configure(0.9, lm::QkSigma::kShared, false, false);
  ln->set_sigma(1.0, 1.0);
  auto x = torch::randn({4, 8, 16}) * 3;
  auto x64 = x.to(torch::kDouble);
  double t = value(((x64 - x64.mean(-1, true)).pow(2).mean(-1) + 1e-5).sqrt().mean());
  ln->update_statistics(x);
  ln->commit_statistics();
  double expected = 0.9 * 1.0 + 0.1 * t;
  std::printf("EMA: got %.8f expected %.8f\n", value(ln->running_sigma), expected);
  EXPECT_NEAR(value(ln->running_sigma), expected, 1e-6);
  EXPECT_NEAR(value(ln->sigma(lm::LnPath::kMain)), expected, 1e-6);  // real: tracks
  ln->remove(lm::LnPath::kMain);
  ln->update_statistics(x * 10);
  ln->commit_statistics();
  EXPECT_NEAR(value(ln->sigma(lm::LnPath::kMain)), expected, 1e-6);  // fake: frozen
  EXPECT_GT(value(ln->running_sigma), expected * 1.5);               // the estimate still moves
}

TEST(LayerNorm, MomentumZeroUsesTheCurrentBatchOnly) {
  auto ln = random_ln();
  ln->configure(0.0, lm::QkSigma::kShared, false, false);
  auto x = torch::randn({2, 3, 16}) * 5;
  ln->update_statistics(x);
  ln->commit_statistics();
  EXPECT_NEAR(value(ln->running_sigma), value(lm::per_token_std(x).mean()), 1e-6);
}

TEST(LayerNorm, SharedSigmaKeepsTrackingUntilTheVRemoval) {
  for (auto mode : {lm::QkSigma::kShared, lm::QkSigma::kSeparate}) {
    auto ln = random_ln(/*has_value_path=*/true);
    ln->configure(0.0, mode, false, false);
    ln->update_statistics(torch::randn({2, 4, 16}));
    ln->commit_statistics();
    double at_qk_removal = value(ln->running_sigma);
    ln->remove(lm::LnPath::kMain);
    ln->update_statistics(torch::randn({2, 4, 16}) * 8);
    ln->commit_statistics();
    double at_v_removal = value(ln->running_sigma);
    ln->remove(lm::LnPath::kValue);
    ln->update_statistics(torch::randn({2, 4, 16}) * 100);
    ln->commit_statistics();
    double qk = value(ln->sigma(lm::LnPath::kMain)), v = value(ln->sigma(lm::LnPath::kValue));
    std::printf("%s: qk sigma %.4f, v sigma %.4f (at qk removal %.4f, at v removal %.4f)\n",
                mode == lm::QkSigma::kShared ? "shared" : "separate", qk, v, at_qk_removal, at_v_removal);
    EXPECT_NEAR(v, at_v_removal, 1e-5);
    EXPECT_NEAR(qk, mode == lm::QkSigma::kShared ? at_v_removal : at_qk_removal, 1e-5);
  }
}

TEST(LayerNorm, QkFakeWhileVRealUsesFrozenAndDynamicSigmas) {
  torch::manual_seed(6);
  auto ln = random_ln(true);
  ln->configure(0.9, lm::QkSigma::kSeparate, false, false);
  ln->set_sigma(3.0, 3.0);
  ln->remove(lm::LnPath::kMain);
  auto x = torch::randn({2, 5, 16}) * 2;
  EXPECT_LT(max_rel_err(ln->forward_path(x, lm::LnPath::kMain, {}), reference_ln64(x, ln, 3.0)), 1e-6);
  EXPECT_LT(max_rel_err(ln->forward_path(x, lm::LnPath::kValue, {}), reference_ln64(x, ln)), 1e-5);
}

TEST(LayerNorm, PositionZeroAndEotSpecialSigmas) {
  torch::manual_seed(7);
  auto ln = random_ln(true);
  ln->configure(0.9, lm::QkSigma::kSeparate, /*eot_special=*/true, /*bos_special=*/true);
  ln->set_sigma(2.0, 50.0);
  ln->remove(lm::LnPath::kMain);
  ln->remove(lm::LnPath::kValue);
  auto x = torch::randn({1, 4, 16});
  lm::LnContext context{torch::tensor({{false, false, true, false}})};
  auto v = ln->forward_path(x, lm::LnPath::kValue, context);
  auto qk = ln->forward_path(x, lm::LnPath::kMain, context);
  auto avg = reference_ln64(x, ln, 2.0), pos0 = reference_ln64(x, ln, 50.0);
  using torch::indexing::Slice;
  auto row = [](const torch::Tensor& t, int i) { return t.index({Slice(), Slice(i, i + 1)}); };
  EXPECT_LT(max_rel_err(row(v, 0), row(pos0, 0)), 1e-6);  // position 0: BOS sigma
  EXPECT_LT(max_rel_err(row(v, 2), row(pos0, 2)), 1e-6);  // EOT row in the V path
  EXPECT_LT(max_rel_err(row(v, 1), row(avg, 1)), 1e-6);
  EXPECT_LT(max_rel_err(row(qk, 2), row(avg, 2)), 1e-6);  // EOT does not apply to Q/K
  ln->disable_eot_special();
  EXPECT_LT(max_rel_err(row(ln->forward_path(x, lm::LnPath::kValue, context), 2), row(avg, 2)), 1e-6);
  ln->disable_bos_special();
  EXPECT_LT(max_rel_err(row(ln->forward_path(x, lm::LnPath::kValue, context), 0), row(avg, 0)), 1e-6);
}

TEST(LayerNorm, StatisticsReachTheDivisorsOnlyAtCommit) {
  torch::manual_seed(8);
  auto ln = random_ln(true);
  ln->configure(0.5, lm::QkSigma::kShared, false, false);
  ln->set_sigma(1.0, 1.0);
  ln->update_statistics(torch::randn({2, 4, 16}) * 6);
  ln->update_statistics(torch::randn({2, 4, 16}) * 7);
  EXPECT_EQ(ln->pending_statistics().size(0), 2);
  EXPECT_EQ(value(ln->running_sigma), 1.0);  // recorded, not applied: a step's forwards share one sigma
  EXPECT_EQ(value(ln->sigma(lm::LnPath::kMain)), 1.0);
  ln->commit_statistics();
  EXPECT_EQ(ln->pending_statistics().size(0), 0);
  EXPECT_GT(value(ln->running_sigma), 2.0);
  EXPECT_EQ(value(ln->sigma(lm::LnPath::kValue)), value(ln->running_sigma));
}

// The trainer's path: the rows of one optimizer step (several micro-batches, gathered from several
// ranks) committed for all LNs at once are one EMA step with the statistic of all of the step's
// tokens, the same as one forward over the whole step would give.
TEST(LayerNorm, GroupCommitPoolsTheStepIntoOneEmaStep) {
  torch::manual_seed(9);
  std::vector<lm::LayerNorm> lns{random_ln(true), random_ln(false)};
  std::vector<std::shared_ptr<lm::LayerNormImpl>> impls;
  for (auto& ln : lns) {
    ln->configure(0.9, lm::QkSigma::kShared, false, false);
    impls.push_back(ln.ptr());
  }
  // Two steps of 4 micro-batches of 2 sequences each.
  std::vector<std::vector<torch::Tensor>> steps(2);
  for (int k = 0; k < 2; ++k)
    for (int i = 0; i < 4; ++i) steps[k].push_back(torch::randn({2, 4, 16}) * (1 + i + 3 * k));
  // Reference in float64: the whole step's tokens as one batch; the first step initialises.
  std::vector<double> expected(lns.size()), expected_pos0(lns.size());
  for (std::size_t l = 0; l < lns.size(); ++l) {
    for (int k = 0; k < 2; ++k) {
      auto x64 = torch::cat(steps[k]).to(torch::kDouble) * static_cast<double>(l + 1);  // [8, 4, 16]
      auto stds = ((x64 - x64.mean(-1, true)).pow(2).mean(-1) + 1e-5).sqrt();
      double t = value(stds.mean()), t0 = value(stds.select(1, 0).mean());
      expected[l] = k == 0 ? t : 0.9 * expected[l] + 0.1 * t;
      expected_pos0[l] = k == 0 ? t0 : 0.9 * expected_pos0[l] + 0.1 * t0;
    }
  }
  for (int k = 0; k < 2; ++k) {
    std::vector<torch::Tensor> rows;
    for (std::size_t l = 0; l < lns.size(); ++l) {
      for (const auto& x : steps[k]) lns[l]->update_statistics(x * static_cast<double>(l + 1));
      rows.push_back(lns[l]->pending_statistics());
    }
    lm::commit_statistics(impls, torch::stack(rows));
  }
  for (std::size_t l = 0; l < lns.size(); ++l) {
    double got = value(lns[l]->running_sigma), got0 = value(lns[l]->running_sigma_pos0);
    std::printf("LN %zu: committed %.8f (position 0 %.8f), float64 EMA over whole steps %.8f (%.8f)\n", l,
                got, got0, expected[l], expected_pos0[l]);
    EXPECT_NEAR(got, expected[l], 1e-6 * expected[l]);
    EXPECT_NEAR(got0, expected_pos0[l], 1e-6 * expected_pos0[l]);
    EXPECT_EQ(lns[l]->pending_statistics().size(0), 0);
  }
}

// Separate sigmas: each path's position-0 divisor freezes with its own average divisor, so after
// the Q/K removal the Q/K path's position-0 sigma stays while the V path's keeps tracking.
TEST(LayerNorm, SeparateSigmaKeepsThePositionZeroSigmaPerPath) {
  torch::manual_seed(12);
  for (auto mode : {lm::QkSigma::kShared, lm::QkSigma::kSeparate}) {
    auto ln = random_ln(true);
    ln->configure(0.0, mode, /*eot_special=*/false, /*bos_special=*/true);
    auto x = torch::randn({2, 4, 16});
    x.select(1, 0).mul_(10);  // position 0: its own, larger std
    ln->update_statistics(x);
    ln->commit_statistics();
    const double pos0_at_qk_removal = value(ln->running_sigma_pos0);
    ln->remove(lm::LnPath::kMain);
    ln->update_statistics(x * 3);
    ln->commit_statistics();
    const double pos0_at_v_removal = value(ln->running_sigma_pos0);
    ln->remove(lm::LnPath::kValue);
    ln->update_statistics(x * 50);
    ln->commit_statistics();
    std::printf("%s: Q/K pos0 sigma %.4f, V pos0 sigma %.4f (at Q/K removal %.4f, at V removal %.4f)\n",
                mode == lm::QkSigma::kShared ? "shared" : "separate", value(ln->sigma_pos0),
                value(ln->sigma_value_pos0), pos0_at_qk_removal, pos0_at_v_removal);
    EXPECT_NEAR(value(ln->sigma_value_pos0), pos0_at_v_removal, 1e-5 * pos0_at_v_removal);
    EXPECT_NEAR(value(ln->sigma_pos0), mode == lm::QkSigma::kShared ? pos0_at_v_removal : pos0_at_qk_removal,
                1e-5 * pos0_at_v_removal);
    // Fake mode divides position 0 of each path by that path's own position-0 sigma.
    auto probe = torch::randn({1, 3, 16});
    using torch::indexing::Slice;
    auto first = [](const torch::Tensor& t) { return t.index({Slice(), Slice(0, 1)}); };
    EXPECT_LT(max_rel_err(first(ln->forward_path(probe, lm::LnPath::kMain, {})),
                          first(reference_ln64(probe, ln, value(ln->sigma_pos0)))),
              1e-6);
    EXPECT_LT(max_rel_err(first(ln->forward_path(probe, lm::LnPath::kValue, {})),
                          first(reference_ln64(probe, ln, value(ln->sigma_value_pos0)))),
              1e-6);
  }
}

// The reference's "bos" event leaves the EOT divisor of the V path as it is (spec §1.6): only the
// "eot" event ends it.
TEST(LayerNorm, TheBosEventLeavesTheEotDivisorAlone) {
  torch::manual_seed(13);
  auto ln = random_ln(true);
  ln->configure(0.9, lm::QkSigma::kSeparate, /*eot_special=*/true, /*bos_special=*/true);
  ln->set_sigma(2.0, 50.0);
  ln->remove(lm::LnPath::kMain);
  ln->remove(lm::LnPath::kValue);
  auto x = torch::randn({1, 4, 16});
  lm::LnContext context{torch::tensor({{false, false, true, false}})};
  ln->disable_bos_special();
  using torch::indexing::Slice;
  auto row = [](const torch::Tensor& t, int i) { return t.index({Slice(), Slice(i, i + 1)}); };
  auto v = ln->forward_path(x, lm::LnPath::kValue, context);
  EXPECT_LT(max_rel_err(row(v, 2), row(reference_ln64(x, ln, 50.0), 2)), 1e-6);  // EOT: still pos0 sigma
  EXPECT_LT(max_rel_err(row(v, 0), row(reference_ln64(x, ln, 2.0), 0)), 1e-6);   // position 0: average
  EXPECT_EQ(value(ln->sigma_value_pos0), 50.0);
}

namespace {
lm::Gpt2 small_model() {
  lm::Gpt2Shape s;
  s.n_layer = 2, s.n_embd = 16, s.n_head = 2, s.n_positions = 8, s.vocab_size = 23;
  torch::manual_seed(14);
  return lm::Gpt2(s);
}
}  // namespace

// One statistic row per LN per training forward, ln_1 included (the reference recorded three for
// ln_1: its Q/K, V and EOT-variant V calls, spec §1.5 item 3).
TEST(LayerNorm, EveryLayerNormRecordsOneRowPerTrainingForward) {
  auto model = small_model();
  model->train();
  auto ids = torch::randint(0, 23, {2, 8}, torch::kLong);
  for (int forwards = 1; forwards <= 2; ++forwards) {
    model(ids);
    for (const auto& [name, ln] : model->layer_norms())
      EXPECT_EQ(ln->pending_statistics().size(0), forwards) << name << " after " << forwards << " forwards";
  }
}

// Evaluation forwards leave sigma alone (the reference updated it in eval too, spec §1.5 item 5).
TEST(LayerNorm, EvaluationForwardsLeaveSigmaAlone) {
  auto model = small_model();
  auto ids = torch::randint(0, 23, {2, 8}, torch::kLong);
  model->train();
  model(ids);
  for (auto& [name, ln] : model->layer_norms()) ln->commit_statistics();
  std::vector<double> before;
  for (const auto& [name, ln] : model->layer_norms())
    for (const auto& buffer : ln->named_buffers(false)) before.push_back(value(buffer.value()));
  model->eval();
  {
    torch::NoGradGuard no_grad;
    model(ids * 0 + 3);  // other inputs, other statistics
  }
  std::size_t i = 0;
  for (auto [name, ln] : model->layer_norms()) {
    EXPECT_EQ(ln->pending_statistics().size(0), 0) << name;
    ln->commit_statistics();
    for (const auto& buffer : ln->named_buffers(false))
      EXPECT_EQ(value(buffer.value()), before[i++]) << name << "." << buffer.key();
  }
}
