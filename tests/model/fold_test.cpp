#include "model/fold.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "util/error.h"

namespace lm = lnfree::model;

namespace {

lm::Gpt2 all_fake_model(lm::QkSigma mode) {
  lm::Gpt2Shape s;
  s.n_layer = 3, s.n_embd = 32, s.n_head = 4, s.n_positions = 16, s.vocab_size = 97;
  torch::manual_seed(8);
  lm::Gpt2 model(s);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.normal_(0.0, 0.3);
  model->train();
  int i = 0;
  for (auto& [name, ln] : model->layer_norms()) {
    ln->configure(0.5, mode, false, false);
    ln->set_sigma(1.0 + 0.3 * i++, 9.0);
  }
  // A few training forwards so the sigmas are real statistics, removing paths in the paper's order.
  auto ids = torch::randint(0, 97, {2, 16}, torch::kLong);
  auto forward_and_commit = [&] {
    model(ids);
    for (auto& [name, ln] : model->layer_norms()) ln->commit_statistics();
  };
  for (auto& b : model->blocks) b->ln_2->remove(lm::LnPath::kMain);
  forward_and_commit();
  for (auto& b : model->blocks) b->ln_1->remove(lm::LnPath::kMain);
  forward_and_commit();
  for (auto& b : model->blocks) b->ln_1->remove(lm::LnPath::kValue);
  model->ln_f->remove(lm::LnPath::kMain);
  model->eval();
  return model;
}

}  // namespace

TEST(Fold, AllFakeModelEqualsItsFoldedAffineForm) {
  for (auto mode : {lm::QkSigma::kShared, lm::QkSigma::kSeparate}) {
    auto model = all_fake_model(mode);
    torch::NoGradGuard no_grad;
    auto ids = torch::randint(0, 97, {3, 16}, torch::kLong);
    auto expected = model(ids);
    auto folded = lm::fold_layer_norms(*model);
    auto got = folded.forward(ids);
    double err = ((got - expected).abs().max() / expected.abs().max()).item<double>();
    std::printf("folded vs fake-LN logits (%s sigma): max abs err / max |logit| = %.3g (logit scale %.3g)\n",
                mode == lm::QkSigma::kShared ? "shared" : "separate", err,
                expected.abs().max().item<double>());
    EXPECT_LT(err, 1e-5);
  }
}

TEST(Fold, RefusesAModelWithARealPath) {
  lm::Gpt2Shape s;
  s.n_layer = 1, s.n_embd = 8, s.n_head = 2, s.n_positions = 4, s.vocab_size = 11;
  lm::Gpt2 model(s);
  EXPECT_THROW(lm::fold_layer_norms(*model), lnfree::Error);
}
