#include "train/checkpoint.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "log/run_folder.h"
#include "util/files.h"

namespace fs = std::filesystem;
namespace lm = lnfree::model;
namespace lt = lnfree::train;

namespace {
lm::Gpt2Shape tiny() {
  lm::Gpt2Shape s;
  s.n_layer = 2, s.n_embd = 16, s.n_head = 2, s.n_positions = 8, s.vocab_size = 31;
  return s;
}
std::vector<lt::AdamW::Param> params_of(lm::Gpt2& model) {
  std::vector<lt::AdamW::Param> out;
  for (auto& p : model->named_parameters()) out.push_back({p.key(), p.value(), true, {}, {}});
  return out;
}
}  // namespace

TEST(Checkpoint, RoundTripRestoresWeightsMomentsLnStateAndRng) {
  const auto dir = fs::temp_directory_path() / "lnfree_ckpt_test";
  fs::remove_all(dir);
  torch::manual_seed(1);
  lm::Gpt2 model(tiny());
  lt::AdamW opt(params_of(model), {});
  model->train();
  // Every LN gets distinct values in every buffer: special sigmas on, statistics committed over
  // two steps with one path removed in between (so running, frozen and position-0 values differ).
  for (auto& [name, ln] : model->layer_norms())
    ln->configure(0.7, lm::QkSigma::kSeparate, ln->has_value_path(), /*bos_special=*/true);
  auto ids = torch::randint(0, 31, {2, 9}, torch::kLong);
  for (int step = 0; step < 2; ++step) {
    model->loss(ids).backward();
    opt.step(1e-2);
    for (auto& [name, ln] : model->layer_norms()) ln->commit_statistics();
    if (step == 0) {
      model->blocks[1]->ln_2->remove(lm::LnPath::kMain);
      model->blocks[0]->ln_1->remove(lm::LnPath::kMain);
    }
  }
  model->blocks[0]->ln_1->disable_eot_special();
  lt::save_checkpoint(dir.string(), model, opt, {7, 700, "abc", {{"k", 1}}}, 2);
  auto expected_random = torch::rand({4});  // drawn after the save

  torch::manual_seed(99);
  lm::Gpt2 other(tiny());
  lt::AdamW other_opt(params_of(other), {});
  auto folder = lnfree::run_folder::latest_checkpoint(dir.string());
  ASSERT_TRUE(folder.has_value());
  auto state = lt::load_checkpoint(*folder, other, other_opt);
  EXPECT_EQ(state.step, 7);
  EXPECT_EQ(state.tokens, 700);
  EXPECT_EQ(state.config_hash, "abc");
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected_random));  // RNG restored
  for (size_t i = 0; i < opt.params().size(); ++i) {
    EXPECT_TRUE(torch::equal(opt.params()[i].value, other_opt.params()[i].value)) << opt.params()[i].name;
    EXPECT_TRUE(torch::equal(opt.params()[i].exp_avg, other_opt.params()[i].exp_avg)) << opt.params()[i].name;
    EXPECT_TRUE(torch::equal(opt.params()[i].exp_avg_sq, other_opt.params()[i].exp_avg_sq))
        << opt.params()[i].name;
    EXPECT_GT(opt.params()[i].exp_avg.abs().sum().item<double>(), 0) << opt.params()[i].name;
  }
  EXPECT_EQ(other_opt.steps_taken(), 2);
  EXPECT_TRUE(other->blocks[1]->ln_2->is_fake(lm::LnPath::kMain));
  EXPECT_TRUE(other->blocks[0]->ln_1->is_fake(lm::LnPath::kMain));
  EXPECT_FALSE(other->blocks[0]->ln_1->is_fake(lm::LnPath::kValue));
  auto other_lns = other->layer_norms();
  auto lns = model->layer_norms();
  ASSERT_EQ(lns.size(), other_lns.size());
  for (size_t i = 0; i < lns.size(); ++i) {
    const auto& [name, ln] = lns[i];
    const auto& restored = other_lns[i].second;
    const auto f = ln->flags(), g = restored->flags();
    EXPECT_EQ(f.fake_main, g.fake_main) << name;
    EXPECT_EQ(f.fake_value, g.fake_value) << name;
    EXPECT_EQ(f.eot_special, g.eot_special) << name;
    EXPECT_EQ(f.bos_special, g.bos_special) << name;
    EXPECT_EQ(f.sigma_initialised, g.sigma_initialised) << name;
    auto buffers = ln->named_buffers(false);
    auto restored_buffers = restored->named_buffers(false);
    ASSERT_EQ(buffers.size(), 6u);  // running, running pos0, main, value, pos0, value pos0
    for (const auto& buffer : buffers) {
      // Real statistics, not the constructor's 1.0 compared with itself (the V-path buffers are
      // used by ln_1 only).
      const bool value_buffer = buffer.key().find("value") != std::string::npos;
      if (ln->has_value_path() || !value_buffer)
        EXPECT_NE(buffer.value().item<float>(), 1.0f) << name << "." << buffer.key();
      EXPECT_TRUE(torch::equal(buffer.value(), restored_buffers[buffer.key()]))
          << name << "." << buffer.key();
    }
  }
  // The frozen Q/K divisor of h.0.ln_1 differs from its still-tracking V divisor.
  EXPECT_NE(model->blocks[0]->ln_1->sigma_main.item<float>(),
            model->blocks[0]->ln_1->sigma_value.item<float>());
  fs::remove_all(dir);
}

TEST(Checkpoint, KeepsTheNewestCompleteOnesAndIgnoresIncompleteFolders) {
  const auto dir = fs::temp_directory_path() / "lnfree_ckpt_keep";
  fs::remove_all(dir);
  lm::Gpt2 model(tiny());
  lt::AdamW opt(params_of(model), {});
  for (int step : {1, 2, 3}) lt::save_checkpoint(dir.string(), model, opt, {step, 0, "", nullptr}, 2);
  EXPECT_FALSE(fs::exists(dir / "step-000001"));
  EXPECT_TRUE(fs::exists(dir / "step-000002/DONE"));
  fs::create_directories(dir / "step-000009");  // no DONE: a crash mid-write
  EXPECT_EQ(lnfree::run_folder::latest_checkpoint(dir.string()).value(), (dir / "step-000003").string());
  fs::remove_all(dir);
}
