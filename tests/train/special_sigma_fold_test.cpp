// A remove-ln run with the BOS and EOT special sigmas and their events ends with an affine model:
// every LN's flags are cleared, and its folded form (no LN operation left) gives the fake-LN
// model's logits.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "config/train_config.h"
#include "io/model_source.h"
#include "log/run_folder.h"
#include "model/fold.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
namespace lm = lnfree::model;
namespace lt = lnfree::train;

namespace {

const char* kConfig = R"(
[run]
mode = "remove-ln"
seed = 5
init = "configs/models/tiny-2x64.toml"
device = "cpu"
[data]
train = "data/tokens/brown/manifest.json"
seq_len = 32
micro_batch = 4
tokens_per_step = 256
steps = 14
[optim]
lr = 3e-3
min_lr = 1e-3
warmup = 2
[ln]
momentum = 0.5
qk_sigma = "{qk}"
bos_special = true
eot_special = true
[schedule.ln2]
start = 2
gap = 1
[schedule.ln1qk]
start = 4
gap = 1
[schedule.ln1v]
start = 6
gap = 1
[schedule.lnf]
start = 8
[schedule.bos]
start = 9
gap = 1
[schedule.eot]
start = 11
gap = 0
[eval]
interval = 0
[checkpoint]
interval = 0
keep = 1
[log]
interval = 7
)";

}  // namespace

TEST(SpecialSigma, ARunWithBosAndEotEventsFoldsToItsFakeLnModel) {
  for (const std::string qk : {"shared", "separate"}) {
    const auto out = fs::temp_directory_path() / ("lnfree-special-sigma-" + qk);
    fs::remove_all(out);
    std::string text = kConfig;
    text.replace(text.find("{qk}"), 4, qk);
    lt::TrainRequest request{lnfree::config::parse_train_config(text, "special-sigma.toml", {}),
                             out.string()};
    ASSERT_EQ(lt::run_training(request), lt::Outcome::kComplete);

    auto source = lnfree::io::resolve_model_source("configs/models/tiny-2x64.toml");
    lm::Gpt2 model(source.shape);
    std::vector<lt::AdamW::Param> params;
    for (auto& p : model->named_parameters()) params.push_back({p.key(), p.value(), true, {}, {}});
    lt::AdamW optimizer(params, {});
    auto folder = lnfree::run_folder::latest_checkpoint(out.string());
    ASSERT_TRUE(folder.has_value());
    lt::load_checkpoint(*folder, model, optimizer);
    for (const auto& [name, ln] : model->layer_norms()) {
      const auto flags = ln->flags();
      EXPECT_TRUE(ln->all_fake()) << name;
      EXPECT_FALSE(flags.bos_special) << name << ": the bos events must end it on every LN";
      EXPECT_FALSE(flags.eot_special) << name;
    }
    model->eval();
    torch::NoGradGuard no_grad;
    torch::manual_seed(3);
    auto ids = torch::randint(0, 50257, {2, 32}, torch::kLong);
    ids[0][5] = 50256;  // EOT rows take the V path's average divisor after the eot event
    auto expected = model(ids);
    auto folded = lm::fold_layer_norms(*model);
    auto got = folded.forward(ids);
    const double err = ((got - expected).abs().max() / expected.abs().max()).item<double>();
    std::printf("%s sigma: folded vs fake-LN logits after the bos/eot events: max err / max |logit| = %.3g\n",
                qk.c_str(), err);
    EXPECT_LT(err, 1e-5);
    fs::remove_all(out);
  }
}
