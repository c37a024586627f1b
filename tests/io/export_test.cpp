// The two export forms against the fake-LN model they come from: the eps-trick HF folder read back
// by lnfree's HF loader (real LayerNorms, epsilon 1e12) and the folded folder read back by
// load_folded, both in shared and separate Q/K sigma mode (separate makes ln_1's Q/K and V sigmas
// differ, which the HF form moves into c_attn). Plus every refusal.
#include "io/export.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "io/checkpoint_state.h"
#include "io/folded_format.h"
#include "io/hf_gpt2.h"
#include "io/io_test_support.h"
#include "io/safetensors.h"
#include "util/error.h"

namespace lm = lnfree::model;
namespace li = lnfree::io;
using li::testing::TempDir;

namespace {

lm::Gpt2Shape small_shape() {
  lm::Gpt2Shape s;
  s.n_layer = 2, s.n_embd = 32, s.n_head = 4, s.n_positions = 16, s.vocab_size = 97;
  return s;
}

// Trained-looking statistics, then the paths removed in the paper's order; `stop_before_lnf`
// leaves ln_f real.
lm::Gpt2 removed_model(lm::QkSigma mode, bool stop_before_lnf = false) {
  torch::manual_seed(8);
  lm::Gpt2 model(small_shape());
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.normal_(0.0, 0.3);
  model->train();
  int i = 0;
  for (auto& [name, ln] : model->layer_norms()) {
    ln->configure(0.5, mode, false, false);
    ln->set_sigma(1.0 + 0.3 * i++, 9.0);
  }
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
  if (!stop_before_lnf) model->ln_f->remove(lm::LnPath::kMain);
  model->eval();
  return model;
}

double relative_error(const torch::Tensor& got, const torch::Tensor& expected) {
  return ((got - expected).abs().max() / expected.abs().max()).item<double>();
}

}  // namespace

TEST(Export, HfEpsTrickAndFoldedReproduceTheFakeLayerNormModel) {
  for (auto mode : {lm::QkSigma::kShared, lm::QkSigma::kSeparate}) {
    TempDir dir;
    auto model = removed_model(mode);
    const double s_qk = model->blocks[0]->ln_1->sigma(lm::LnPath::kMain).item<double>();
    const double s_v = model->blocks[0]->ln_1->sigma(lm::LnPath::kValue).item<double>();
    if (mode == lm::QkSigma::kSeparate)
      ASSERT_NE(s_qk, s_v) << "the separate case must exercise the Q/K fold";
    torch::NoGradGuard no_grad;
    auto ids = torch::randint(0, 97, {3, 16}, torch::kLong);
    auto expected = model(ids);

    auto hf = li::export_model(model, li::ExportFormat::kHf, dir.file("hf"), false, {{"source", "test"}});
    EXPECT_FALSE(hf.plain);
    auto loaded = li::load_hf_gpt2(dir.file("hf"));
    EXPECT_EQ(loaded->ln_f->eps, li::kEpsTrickEpsilon);
    EXPECT_FALSE(loaded->ln_f->is_fake(lm::LnPath::kMain));  // a plain, real LayerNorm
    loaded->eval();
    const double hf_err = relative_error(loaded(ids), expected);

    li::export_model(model, li::ExportFormat::kFolded, dir.file("folded"), false, {{"source", "test"}});
    ASSERT_TRUE(li::is_folded_folder(dir.file("folded")));
    auto folded = li::load_folded(dir.file("folded"));
    const double folded_err = relative_error(folded.forward(ids), expected);
    li::SafetensorsReader reader(dir.file("folded/model.safetensors"));
    for (const auto& name : reader.names()) EXPECT_EQ(name.find("ln_"), std::string::npos) << name;

    std::printf(
        "%s sigma (ln_1 Q/K %.6g, V %.6g): max |logit error| / max |logit|: hf eps trick %.3g, folded %.3g\n",
        mode == lm::QkSigma::kShared ? "shared" : "separate", s_qk, s_v, hf_err, folded_err);
    EXPECT_LT(hf_err, 1e-5);
    EXPECT_LT(folded_err, 1e-5);
  }
}

TEST(Export, RefusesPartialRemovalNamingTheRealPathsUnlessAllowed) {
  TempDir dir;
  auto model = removed_model(lm::QkSigma::kShared, /*stop_before_lnf=*/true);
  try {
    li::export_model(model, li::ExportFormat::kHf, dir.file("hf"), false, {});
    FAIL() << "expected a refusal";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find("ln_f"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--allow-partial"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("hf")));
  auto result = li::export_model(model, li::ExportFormat::kFolded, dir.file("folded"), true, {});
  ASSERT_EQ(result.frozen, std::vector<std::string>{"ln_f"});
  EXPECT_TRUE(li::is_folded_folder(dir.file("folded")));
}

TEST(Export, RefusesAnExistingTargetAndSpecialSigmas) {
  TempDir dir;
  auto model = removed_model(lm::QkSigma::kShared);
  std::filesystem::create_directories(dir.file("taken"));
  EXPECT_THROW(li::export_model(model, li::ExportFormat::kHf, dir.file("taken"), false, {}), lnfree::Error);
  model->blocks[0]->ln_2->configure(0.5, lm::QkSigma::kShared, false, /*bos_special=*/true);
  try {
    li::export_model(model, li::ExportFormat::kFolded, dir.file("folded"), false, {});
    FAIL() << "expected a refusal";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find("h.0.ln_2"), std::string::npos) << e.what();
  }
}

TEST(Export, ARealLayerNormModelExportsAsAPlainHfFolder) {
  TempDir dir;
  torch::manual_seed(3);
  lm::Gpt2 model(small_shape());
  auto result = li::export_model(model, li::ExportFormat::kHf, dir.file("hf"), false, {});
  EXPECT_TRUE(result.plain);
  EXPECT_EQ(li::load_hf_gpt2(dir.file("hf"))->ln_f->eps, 1e-5);
  EXPECT_THROW(li::export_model(model, li::ExportFormat::kFolded, dir.file("folded"), false, {}),
               lnfree::Error);
}

TEST(CheckpointModel, RefusesAFolderWithoutDone) {
  TempDir dir;
  li::testing::write_bytes(dir.file("state.json"),
                           "{\"format\": \"lnfree-checkpoint\", \"format_version\": 1}");
  try {
    li::read_checkpoint_state(dir.path().string());
    FAIL() << "expected a refusal";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find("incomplete checkpoint"), std::string::npos) << e.what();
  }
}
