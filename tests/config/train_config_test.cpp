#include "config/train_config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <vector>

#include <filesystem>
#include <initializer_list>
#include <string>

#include "config/sha256.h"
#include "error_of.h"
#include "util/error.h"
#include "util/files.h"

namespace lc = lnfree::config;

using lnfree::test_support::error_of;

namespace {

const std::string kConfigDir = std::string(LNFREE_SOURCE_DIR) + "/configs";

// A minimal valid remove-ln config; tests append or override.
const std::string kMinimal = R"(
[run]
mode = "remove-ln"
init = "gpt2"

[data]
train = "tokens/manifest.json"
micro_batch = 4
tokens_per_step = 8192
seq_len = 1024
steps = 40

[optim]
warmup = 5

[schedule.ln2]
start = 2
gap = 1

[schedule.ln1qk]
start = 14
gap = 1

[schedule.ln1v]
start = 26
gap = 0

[schedule.lnf]
start = 30
)";

// Expects `f` to throw an lnfree::Error whose message contains every fragment.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> fragments) {
  const std::string message = error_of(f);
  ASSERT_FALSE(message.empty()) << "expected an error containing '" << *fragments.begin() << "'";
  for (const auto& fragment : fragments) EXPECT_NE(message.find(fragment), std::string::npos) << message;
  std::printf("error: %s\n", message.c_str());
}

lc::TrainConfig parse(const std::string& text, std::initializer_list<std::string> overrides = {}) {
  return lc::parse_train_config(text, "test.toml", overrides);
}

}  // namespace

TEST(Sha256, KnownVectors) {
  // FIPS 180-2 examples, plus lengths around the 55/56-byte padding boundary (checked with sha256sum).
  EXPECT_EQ(lc::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(lc::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(lc::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(lc::sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(lc::sha256_hex(std::string(55, 'x')),
            "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072");
  EXPECT_EQ(lc::sha256_hex(std::string(56, 'x')),
            "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e");
  EXPECT_EQ(lc::sha256_hex(std::string(64, 'x')),
            "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c");
}

TEST(TrainConfig, MinimalConfigGetsTheDeclaredDefaults) {
  auto c = parse(kMinimal);
  EXPECT_EQ(c.run.seed, 1337);
  EXPECT_EQ(c.run.device, lc::Device::kCpu);
  EXPECT_EQ(c.run.precision, lc::Precision::kFp32);
  EXPECT_EQ(c.data.train_split, "train");
  EXPECT_DOUBLE_EQ(c.optim.lr, 6e-4);
  EXPECT_DOUBLE_EQ(c.optim.min_lr, 3e-4);
  EXPECT_DOUBLE_EQ(c.optim.beta2, 0.999);
  EXPECT_DOUBLE_EQ(c.optim.eps, 1e-8);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 0.01);
  EXPECT_DOUBLE_EQ(c.optim.grad_clip, 1.0);
  EXPECT_DOUBLE_EQ(c.ln.momentum, 0.9);
  EXPECT_EQ(c.ln.qk_sigma, lc::QkSigma::kShared);
  EXPECT_FALSE(c.ln.eot_special);
  EXPECT_EQ(c.checkpoint.keep, 12);
  EXPECT_EQ(c.eval.batch, 4);
  ASSERT_TRUE(c.schedule[lc::RemovalKind::kLnf]);
  EXPECT_FALSE(c.schedule[lc::RemovalKind::kLnf]->gap);
  EXPECT_EQ(*c.schedule[lc::RemovalKind::kLn1V]->gap, 0);
  EXPECT_FALSE(c.schedule[lc::RemovalKind::kEot]);
  EXPECT_EQ(lc::cosine_length(c), 40);
}

TEST(TrainConfig, PaperConfigsHaveTheReferenceBatchGeometry) {
  // Spec §3.3 (bold rows and the non-aux controls): micro-batch x GA = sequences per step.
  struct Case {
    const char* file;
    std::int64_t micro, ga, steps, cosine;
    double aux;
  };
  const Case cases[] = {
      {"gpt2-small", 32, 16, 300, 300, 0.1},          {"gpt2-medium", 22, 23, 500, 500, 0.1},
      {"gpt2-large", 28, 18, 600, 1200, 0.03},        {"gpt2-xl", 18, 28, 800, 1200, 0.01},
      {"gpt2-small-vanilla", 40, 12, 300, 300, 0.0},  {"gpt2-medium-vanilla", 22, 23, 500, 500, 0.0},
      {"gpt2-large-vanilla", 28, 18, 600, 1200, 0.0}, {"gpt2-xl-vanilla", 18, 28, 800, 1200, 0.0}};
  for (const auto& k : cases) {
    auto c = lc::load_train_config(kConfigDir + "/" + k.file + ".toml");
    EXPECT_EQ(c.data.micro_batch, k.micro) << k.file;
    EXPECT_EQ(lc::gradient_accumulation_steps(c.data, 1, c.origin), k.ga) << k.file;
    EXPECT_EQ(c.data.tokens_per_step, k.micro * k.ga * 1024) << k.file;
    EXPECT_EQ(c.data.steps, k.steps) << k.file;
    EXPECT_EQ(lc::cosine_length(c), k.cosine) << k.file;
    EXPECT_DOUBLE_EQ(c.ln.aux_weight, k.aux) << k.file;
    EXPECT_EQ(c.optim.decay, lc::DecayRule::kPaper) << k.file;
    const bool vanilla = std::string(k.file).find("vanilla") != std::string::npos;
    EXPECT_EQ(c.run.mode, vanilla ? lc::RunMode::kFinetune : lc::RunMode::kRemoveLn) << k.file;
    EXPECT_EQ(c.schedule.empty(), vanilla) << k.file;
    EXPECT_FALSE(c.schedule[lc::RemovalKind::kBos]) << k.file;
  }
}

// Spec §5.3: evaluation every 100 steps at batch 4 over the whole OWT test split (max_windows = 0),
// which `prepare --val-fraction 0.0005` makes ~4.4M tokens (§5.2). The passes (every 100 steps,
// the last one after the last step) then score ~8.5% of the training tokens, ~3% of the compute;
// the configs' comments state that, and this keeps them true.
TEST(TrainConfig, PaperConfigsEvaluateAsTheReference) {
  constexpr double kOwtTestTokens = 4.4e6;  // spec §5.2: "about 4.4-4.5M tokens"
  const std::string owt = "data/tokens/openwebtext/manifest.json";
  for (const char* name : {"gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt2-small-vanilla",
                           "gpt2-medium-vanilla", "gpt2-large-vanilla", "gpt2-xl-vanilla"}) {
    const std::string path = kConfigDir + "/" + name + ".toml";
    const auto c = lc::load_train_config(path);
    EXPECT_EQ(c.data.train, owt) << name;
    EXPECT_EQ(c.eval.sets, std::vector<std::string>{owt + ":val"}) << name;
    EXPECT_EQ(c.eval.interval, 100) << name;
    EXPECT_EQ(c.eval.batch, 4) << name;
    EXPECT_EQ(c.eval.max_windows, 0) << name;  // the whole split, as the reference
    // The last interval pass falls on the last step and is already full: no final_sets repeat.
    EXPECT_EQ(c.data.steps % c.eval.interval, 0) << name;
    EXPECT_TRUE(c.eval.final_sets.empty()) << name;

    const std::int64_t passes = c.data.steps / c.eval.interval;
    const double train_tokens = static_cast<double>(c.data.steps * c.data.tokens_per_step);
    const double share = static_cast<double>(passes) * kOwtTestTokens / train_tokens;
    EXPECT_GT(share, 0.08) << name;
    EXPECT_LT(share, 0.10) << name;
    const std::string text = lnfree::read_file(path);
    for (const std::string& claim :
         {fmt::format("{} passes", passes),
          fmt::format("{:.1f}% of the {:.0f}M training tokens", 100 * share, train_tokens / 1e6),
          std::string("--val-fraction 0.0005")}) {
      EXPECT_NE(text.find(claim), std::string::npos) << name << ": comment lacks '" << claim << "'";
    }
  }
}

// Every optimisation and LN number of the paper's configs against spec §3.3 (the bold rows; the
// controls use the non-aux rows, identical but for small) and §5.1 (AdamW defaults, clip 1.0,
// weight decay 0.01, HF GPT-2 dropout 0.1), and the schedules' starts and gaps.
// One EMA step per optimizer step of S sequences with retention m^(S / momentum_sequences): the σ
// horizon is in sequences, whatever micro-batch a GPU forces (the paper's large config at
// micro-batch 9 used to keep 0.9119 per micro-batch, a horizon 3x shorter); a step of
// momentum_sequences sequences keeps m bit for bit.
TEST(TrainConfig, LnRetentionIsPerSequencesNotPerMicroBatch) {
  auto c = lc::load_train_config(kConfigDir + "/gpt2-large.toml");
  EXPECT_EQ(c.ln.momentum_sequences, 32);
  const double s = static_cast<double>(lc::sequences_per_step(c.data));
  EXPECT_DOUBLE_EQ(lc::ln_retention_per_step(c), std::pow(0.9, s / 32.0));
  c.data.micro_batch = 9;
  EXPECT_DOUBLE_EQ(lc::ln_retention_per_step(c), std::pow(0.9, s / 32.0));
  c.data.tokens_per_step = 32 * c.data.seq_len;
  EXPECT_EQ(lc::ln_retention_per_step(c), 0.9);
  auto smoke = lc::load_train_config(kConfigDir + "/smoke.toml");  // 8 sequences, 0.9 per 4
  EXPECT_DOUBLE_EQ(lc::ln_retention_per_step(smoke), 0.81);
}

TEST(TrainConfig, PaperConfigsHaveTheReferenceOptimisationAndLnNumbers) {
  struct Case {
    const char* file;
    std::int64_t warmup;
    double lr, min_lr, momentum;
    std::int64_t g2, gqk, gv, s2, sqk, sv, sf, seot;
  };
  const double m_large = std::pow(0.9, 28.0 / 32.0), m_xl = std::pow(0.9, 18.0 / 32.0);
  const Case cases[] = {
      {"gpt2-small", 25, 6e-4, 3e-4, 0.9, 2, 2, 3, 20, 44, 68, 104, 106},
      {"gpt2-medium", 10, 6e-4, 3e-4, 0.9, 2, 2, 3, 20, 68, 116, 188, 190},
      {"gpt2-large", 15, 3e-4, 4e-5, m_large, 4, 4, 6, 30, 174, 318, 534, 536},
      {"gpt2-xl", 20, 1e-4, 2e-5, m_xl, 4, 4, 6, 50, 242, 434, 722, 724},
      // The controls remove nothing, so their sigma momentum has no effect (not checked: -1).
      {"gpt2-small-vanilla", 20, 6e-4, 3e-4, -1, 0, 0, 0, -1, -1, -1, -1, -1},
      {"gpt2-medium-vanilla", 10, 6e-4, 3e-4, -1, 0, 0, 0, -1, -1, -1, -1, -1},
      {"gpt2-large-vanilla", 15, 3e-4, 4e-5, -1, 0, 0, 0, -1, -1, -1, -1, -1},
      {"gpt2-xl-vanilla", 20, 1e-4, 2e-5, -1, 0, 0, 0, -1, -1, -1, -1, -1}};
  for (const auto& k : cases) {
    auto c = lc::load_train_config(kConfigDir + "/" + k.file + ".toml");
    EXPECT_EQ(c.optim.warmup, k.warmup) << k.file;
    EXPECT_DOUBLE_EQ(c.optim.lr, k.lr) << k.file;
    EXPECT_DOUBLE_EQ(c.optim.min_lr, k.min_lr) << k.file;
    EXPECT_DOUBLE_EQ(c.optim.beta1, 0.9) << k.file;
    EXPECT_DOUBLE_EQ(c.optim.beta2, 0.999) << k.file;
    EXPECT_DOUBLE_EQ(c.optim.eps, 1e-8) << k.file;
    EXPECT_DOUBLE_EQ(c.optim.weight_decay, 0.01) << k.file;
    EXPECT_DOUBLE_EQ(c.optim.grad_clip, 1.0) << k.file;
    EXPECT_DOUBLE_EQ(c.model.dropout, 0.1) << k.file;
    // The reference's per-micro-batch retention, now "0.9 per momentum_sequences" applied once per
    // step: the same horizon in sequences as one EMA step per micro-batch of the reference's size.
    if (k.momentum > 0) {
      const double per_micro_batch =
          std::pow(lc::ln_retention_per_step(c), static_cast<double>(c.data.micro_batch) /
                                                     static_cast<double>(lc::sequences_per_step(c.data)));
      EXPECT_NEAR(per_micro_batch, k.momentum, 1e-12) << k.file;
    }
    EXPECT_EQ(c.ln.qk_sigma, lc::QkSigma::kShared) << k.file;
    EXPECT_FALSE(c.ln.eot_special) << k.file;
    EXPECT_FALSE(c.ln.bos_special) << k.file;
    if (k.s2 < 0) continue;  // the controls have no schedule (checked above)
    auto group = [&](lc::RemovalKind kind) {
      return c.schedule[kind].value_or(lc::RemovalGroupConfig{-1, -1});
    };
    EXPECT_EQ(group(lc::RemovalKind::kLn2), (lc::RemovalGroupConfig{k.s2, k.g2})) << k.file;
    EXPECT_EQ(group(lc::RemovalKind::kLn1Qk), (lc::RemovalGroupConfig{k.sqk, k.gqk})) << k.file;
    EXPECT_EQ(group(lc::RemovalKind::kLn1V), (lc::RemovalGroupConfig{k.sv, k.gv})) << k.file;
    EXPECT_EQ(group(lc::RemovalKind::kLnf), (lc::RemovalGroupConfig{k.sf, std::nullopt})) << k.file;
    EXPECT_EQ(group(lc::RemovalKind::kEot), (lc::RemovalGroupConfig{k.seot, 0})) << k.file;
  }
}

TEST(TrainConfig, GradientAccumulationDependsOnWorldSize) {
  auto c = parse(kMinimal);  // 8 sequences per step, micro-batch 4
  EXPECT_EQ(lc::sequences_per_step(c.data), 8);
  EXPECT_EQ(lc::gradient_accumulation_steps(c.data, 1, "t"), 2);
  EXPECT_EQ(lc::gradient_accumulation_steps(c.data, 2, "t"), 1);
  expect_error([&] { lc::gradient_accumulation_steps(c.data, 3, "t"); }, {"data.tokens_per_step", "3 ranks"});
  expect_error([&] { lc::gradient_accumulation_steps(c.data, 4, "t"); }, {"multiple of 16 sequences"});
}

TEST(TrainConfig, FileErrorsNameTheFileSectionAndKey) {
  expect_error([] { parse(kMinimal + "\n[bogus]\nx = 1\n"); },
               {"test.toml", "unknown section [bogus]", "known: run"});
  expect_error([] { parse(kMinimal + "\n[eval]\nintervall = 3\n"); },
               {"test.toml:", "[eval] unknown key 'intervall'", "known: interval sets max_windows batch"});
  expect_error([] { parse("[run]\nseed = 1.5\n"); },
               {"test.toml:2", "field 'run.seed'", "expected an integer", "float 1.5"});
  expect_error([] { parse("[optim]\nlr = \"fast\"\n"); },
               {"field 'optim.lr'", "expected a float", "string \"fast\""});
  expect_error([] { parse("[ln]\neot_special = 1\n"); },
               {"field 'ln.eot_special'", "expected a boolean", "integer 1"});
  expect_error([] { parse("[eval]\nsets = [\"a:val\", 3]\n"); },
               {"field 'eval.sets'", "list of strings", "index 1"});
  expect_error([] { parse("[eval]\nsets = \"a:val\"\n"); },
               {"field 'eval.sets'", "expected a list of strings"});
  expect_error([] { parse("run = 3\n"); }, {"'run' must be a table"});
  expect_error([] { parse("[run\n"); }, {"test.toml:1", "invalid TOML"});
  expect_error([] { parse(kMinimal + "\n[schedule.ln3]\nstart = 1\n"); },
               {"unknown schedule kind 'ln3'", "known: ln2 ln1qk ln1v lnf eot bos"});
  expect_error([] { parse(kMinimal + "\n[schedule.eot]\nstart = 1\nstep = 2\n"); },
               {"[schedule.eot] unknown key 'step'", "known: start gap"});
  expect_error([] { parse(kMinimal + "\n[schedule.eot]\ngap = 2\n"); },
               {"[schedule.eot] missing field 'start'"});
  expect_error([] { parse(kMinimal + "\n[schedule.eot]\nstart = 2.0\n"); },
               {"field 'schedule.eot.start'", "expected an integer"});
}

TEST(TrainConfig, LoadNamesTheFile) {
  const auto path = (std::filesystem::temp_directory_path() / "lnfree_config_test.toml").string();
  lnfree::write_file_atomically(path, kMinimal + "[log]\nevery = 2\n");
  expect_error([&] { lc::load_train_config(path); }, {path, "[log] unknown key 'every'"});
  std::filesystem::remove(path);
  expect_error([&] { lc::load_train_config(path); }, {path});
}

TEST(TrainConfig, ValidationErrorsNameTheFieldAndWhatWasExpected) {
  expect_error([] { parse(kMinimal, {"optim.min_lr=1e-3"}); },
               {"test.toml", "field 'optim.lr'", ">= optim.min_lr"});
  expect_error([] { parse(kMinimal, {"optim.min_lr=-1"}); }, {"field 'optim.min_lr'", ">= 0"});
  expect_error([] { parse(kMinimal, {"optim.warmup=40"}); }, {"field 'optim.warmup'", "data.steps = 40"});
  expect_error([] { parse(kMinimal, {"optim.cosine_steps=39"}); }, {"field 'optim.cosine_steps'"});
  expect_error([] { parse(kMinimal, {"data.tokens_per_step=8000"}); },
               {"field 'data.tokens_per_step'", "multiple of data.seq_len"});
  expect_error([] { parse(kMinimal, {"data.micro_batch=3"}); },
               {"field 'data.tokens_per_step'", "micro_batch = 3"});
  expect_error([] { parse(kMinimal, {"data.micro_batch=0"}); }, {"field 'data.micro_batch'", ">= 1"});
  expect_error([] { parse(kMinimal, {"data.train="}); }, {"field 'data.train'", "manifest"});
  expect_error([] { parse(kMinimal, {"run.mode=train"}); },
               {"field 'run.mode'", "pretrain | finetune | remove-ln", "\"train\""});
  expect_error([] { parse(kMinimal, {"run.device=tpu"}); }, {"field 'run.device'", "cpu | cuda"});
  expect_error([] { parse(kMinimal, {"ln.momentum=1"}); }, {"field 'ln.momentum'", "[0, 1)"});
  expect_error([] { parse(kMinimal, {"ln.qk_sigma=both"}); }, {"field 'ln.qk_sigma'", "shared | separate"});
  expect_error([] { parse(kMinimal, {"optim.decay=all"}); }, {"field 'optim.decay'", "matrices | paper"});
  expect_error([] { parse(kMinimal, {"optim.on_divergence=retry"}); },
               {"field 'optim.on_divergence'", "stop | rollback", "\"retry\""});
  expect_error([] { parse(kMinimal, {"optim.rollback_lr_factor=1"}); },
               {"field 'optim.rollback_lr_factor'", "(0, 1)"});
  expect_error([] { parse(kMinimal, {"optim.max_rollbacks=0"}); }, {"field 'optim.max_rollbacks'", ">= 1"});
  expect_error([] { parse(kMinimal, {"model.dropout=1.0"}); }, {"field 'model.dropout'"});
  expect_error([] { parse(kMinimal, {"checkpoint.keep=0"}); }, {"field 'checkpoint.keep'", ">= 1"});
  expect_error([] { parse(kMinimal, {"log.interval=0"}); }, {"field 'log.interval'"});
  expect_error([] { parse(kMinimal, {"eval.sets=manifest.json"}); },
               {"field 'eval.sets'", "MANIFEST.json:SPLIT"});
  // Mode-specific schedules.
  expect_error([] { parse(kMinimal, {"run.mode=finetune"}); },
               {"[schedule.ln2]", "no [schedule] in mode 'finetune'"});
  expect_error([] { parse(kMinimal, {"schedule.ln1v=none"}); },
               {"mode 'remove-ln' must remove every LayerNorm", "[schedule.ln1v]"});
  expect_error([] { parse(kMinimal, {"schedule.lnf.gap=0"}); },
               {"field 'schedule.lnf.gap'", "expected absent"});
  expect_error([] { parse(kMinimal, {"schedule.ln2.gap=-1"}); }, {"field 'schedule.ln2.gap'", ">= 0"});
  expect_error([] { parse(kMinimal, {"schedule.lnf.start=40"}); },
               {"field 'schedule.lnf.start'", "data.steps = 40"});
  // A special divisor needs the event that ends it, or the final model is not affine.
  expect_error([] { parse(kMinimal, {"ln.bos_special=true"}); },
               {"field 'ln.bos_special'", "[schedule.bos]"});
  expect_error(
      [] {
        parse(kMinimal, {"ln.eot_special=true", "schedule.eot=none"});
      },
      {"field 'ln.eot_special'", "[schedule.eot]"});
  EXPECT_NO_THROW(parse(kMinimal, {"ln.bos_special=true", "schedule.bos.start=5", "ln.eot_special=true",
                                   "schedule.eot.start=6"}));
  // A finetune config without a schedule is valid.
  EXPECT_NO_THROW(parse(kMinimal, {"run.mode=finetune", "schedule.ln2=none", "schedule.ln1qk=none",
                                   "schedule.ln1v=none", "schedule.lnf=none"}));
}

TEST(TrainConfig, OverridesAreTypeChecked) {
  auto c = parse(kMinimal, {"optim.lr=1e-3", "optim.lr=2e-3", "data.steps=5_0", "ln.eot_special=true",
                            "run.init=some dir/with spaces", "eval.sets=a.json:val, b.json:test",
                            "model.dropout=0", "schedule.ln2.gap=none", "schedule.eot.start=31",
                            "schedule.eot.gap=0", "run.mode=\"remove-ln\""});
  EXPECT_DOUBLE_EQ(c.optim.lr, 2e-3);  // the last override wins
  EXPECT_EQ(c.data.steps, 50);
  EXPECT_TRUE(c.ln.eot_special);
  EXPECT_EQ(c.run.init, "some dir/with spaces");
  EXPECT_EQ(c.eval.sets, (std::vector<std::string>{"a.json:val", "b.json:test"}));
  EXPECT_FALSE(c.schedule[lc::RemovalKind::kLn2]->gap);
  EXPECT_EQ(c.schedule[lc::RemovalKind::kEot]->start, 31);
  EXPECT_EQ(*c.schedule[lc::RemovalKind::kEot]->gap, 0);
  EXPECT_EQ(c.run.mode, lc::RunMode::kRemoveLn);
  EXPECT_EQ(parse(kMinimal, {"eval.sets=[\"x.json:val\"]"}).eval.sets,
            std::vector<std::string>{"x.json:val"});
  EXPECT_TRUE(parse(kMinimal, {"eval.sets="}).eval.sets.empty());

  expect_error([] { parse(kMinimal, {"optim.lr=fast"}); },
               {"test.toml: --set 'optim.lr=fast'", "field 'optim.lr'", "expected a float", "'fast'"});
  expect_error([] { parse(kMinimal, {"data.steps=1.5"}); },
               {"field 'data.steps'", "expected an integer", "float 1.5"});
  expect_error([] { parse(kMinimal, {"ln.bos_special=yes"}); },
               {"field 'ln.bos_special'", "expected a boolean"});
  expect_error([] { parse(kMinimal, {"eval.sets=[1, 2]"}); }, {"field 'eval.sets'", "list of strings"});
  expect_error([] { parse(kMinimal, {"optim.lrr=1"}); },
               {"--set 'optim.lrr=1'", "[optim] unknown key 'lrr'", "known: lr min_lr warmup"});
  expect_error([] { parse(kMinimal, {"optimizer.lr=1"}); },
               {"unknown section 'optimizer'", "known: run model"});
  expect_error([] { parse(kMinimal, {"optim.lr"}); }, {"--set 'optim.lr'", "expected section.key=value"});
  expect_error([] { parse(kMinimal, {"optim=1"}); }, {"expected optim.KEY=value"});
  expect_error([] { parse(kMinimal, {"optim.lr.x=1"}); }, {"expected optim.KEY=value"});
  expect_error([] { parse(kMinimal, {"schedule.bos.gap=1"}); },
               {"[schedule.bos] is absent", "schedule.bos.start first"});
  expect_error([] { parse(kMinimal, {"schedule.ln2=off"}); }, {"field 'schedule.ln2'", "expected 'none'"});
  expect_error([] { parse(kMinimal, {"schedule.ln2.begin=3"}); }, {"[schedule.ln2] unknown key 'begin'"});
  expect_error([] { parse(kMinimal, {"schedule.qk.start=3"}); }, {"unknown schedule kind 'qk'"});
}

TEST(TrainConfig, CanonicalTextRoundTripsWithTheSameHash) {
  std::vector<lc::TrainConfig> configs;
  for (const char* name : {"gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt2-small-vanilla",
                           "gpt2-medium-vanilla", "gpt2-large-vanilla", "gpt2-xl-vanilla"})
    configs.push_back(lc::load_train_config(kConfigDir + "/" + name + ".toml"));
  // Strings that need escapes, floats that need care (no '.', tiny, many digits).
  configs.push_back(
      parse(kMinimal, {"run.init=dir \"q\" \\ back\ttab\nnewline é", "optim.lr=3", "optim.eps=1e-300",
                       "ln.momentum=0.9119314545650217", "eval.sets=a:b,c\"d:e"}));
  for (const auto& c : configs) {
    const std::string text = lc::to_canonical_toml(c);
    const auto again = lc::parse_train_config(text, "canonical");
    EXPECT_EQ(lc::to_canonical_toml(again), text) << c.origin;
    EXPECT_EQ(lc::config_hash(again), lc::config_hash(c)) << c.origin;
    EXPECT_EQ(again.run.init, c.run.init);
    EXPECT_EQ(again.optim.eps, c.optim.eps);  // bit-exact floats
    EXPECT_EQ(again.ln.momentum, c.ln.momentum);
    EXPECT_EQ(again.eval.sets, c.eval.sets);
    EXPECT_EQ(again.schedule.groups, c.schedule.groups);
  }
  std::printf("canonical gpt2-small.toml, hash %s:\n%s", lc::config_hash(configs[0]).c_str(),
              lc::to_canonical_toml(configs[0]).c_str());
}

// Runs resume by reading back their saved canonical TOML and comparing its hash: the text of a given
// config must never change. This is the text (and hash) the string-typed parser wrote before the
// config engine and the enum fields, with every enum set away from its default.
TEST(TrainConfig, CanonicalTextIsPinnedByteForByte) {
  const auto c =
      parse(kMinimal, {"run.device=cuda", "run.precision=bf16", "optim.decay=paper",
                       "optim.on_divergence=rollback", "ln.qk_sigma=separate", "eval.sets=a.json:val"});
  const std::string expected = R"([run]
mode = "remove-ln"
seed = 1337
init = "gpt2"
device = "cuda"
threads = 0
precision = "bf16"
norm = "keep"

[model]
dropout = 0.0

[data]
train = "tokens/manifest.json"
train_split = "train"
seq_len = 1024
micro_batch = 4
tokens_per_step = 8192
steps = 40
vocab_remap = ""

[optim]
lr = 0.0006
min_lr = 0.0003
warmup = 5
cosine_steps = 0
beta1 = 0.9
beta2 = 0.999
eps = 1e-08
weight_decay = 0.01
decay = "paper"
grad_clip = 1.0
on_divergence = "rollback"
rollback_lr_factor = 0.5
max_rollbacks = 3

[ln]
momentum = 0.9
momentum_sequences = 32
sigma_init = ""
qk_sigma = "separate"
eot_special = false
bos_special = false
aux_weight = 0.0

[schedule.ln2]
start = 2
gap = 1

[schedule.ln1qk]
start = 14
gap = 1

[schedule.ln1v]
start = 26
gap = 0

[schedule.lnf]
start = 30

[eval]
interval = 100
sets = ["a.json:val"]
max_windows = 0
batch = 4
final_sets = []

[checkpoint]
interval = 100
keep = 12

[log]
interval = 1

[dist]
bucket_mb = 25
check_weights = false
timeout_s = 600
)";
  EXPECT_EQ(lc::to_canonical_toml(c), expected);
  EXPECT_EQ(lc::config_hash(c), "043a8f2330f63a10cbe862c187cf41c584cd8c06a50d59ca70bbdf487d0556d2");
}

TEST(TrainConfig, HashFollowsValuesNotFormatting) {
  const auto base = parse(kMinimal);
  // Same values written differently (comments, order, integer for float, explicit defaults).
  const auto reordered = parse(R"(
# comment
[schedule.lnf]
start = 30
[schedule.ln1v]
gap = 0
start = 26
[schedule.ln1qk]
start = 14
gap = 1
[schedule.ln2]
start = 2
gap = 1
[optim]
warmup = 5
lr = 0.0006
beta1 = 0.9
[data]
steps = 40
seq_len = 1024
tokens_per_step = 8_192
micro_batch = 4
train = "tokens/manifest.json"
[run]
init = "gpt2"
seed = 1337
mode = "remove-ln"
)");
  EXPECT_EQ(lc::config_hash(reordered), lc::config_hash(base));
  EXPECT_EQ(lc::config_hash(base).size(), 64u);
  EXPECT_NE(lc::config_hash(parse(kMinimal, {"run.seed=1338"})), lc::config_hash(base));
  EXPECT_NE(lc::config_hash(parse(kMinimal, {"schedule.eot.start=30"})), lc::config_hash(base));
  EXPECT_NE(lc::config_hash(parse(kMinimal, {"schedule.lnf.start=31"})), lc::config_hash(base));
}

// Found by tests/fuzz/train_config: a --set string value that is not UTF-8 was accepted verbatim,
// and the canonical TOML of the run (resolved config, read back on resume) then did not parse.
TEST(TrainConfig, OverridesMustBeUtf8) {
  expect_error([] { parse(kMinimal, {"run.init=runs/\xff\xfe/final"}); },
               {"test.toml: --set 'run.init=runs/...'", "not valid UTF-8 at byte 14"});
  expect_error([] { parse(kMinimal, {"eval.sets=a.json:val,\xc3"}); }, {"not valid UTF-8 at byte 21"});
  const auto c = parse(kMinimal, {"run.init=runs/caf\xc3\xa9"});
  EXPECT_EQ(lc::to_canonical_toml(lc::parse_train_config(lc::to_canonical_toml(c), "again.toml")),
            lc::to_canonical_toml(c));
}

TEST(TrainConfig, EvalSetSplitsAtTheLastColon) {
  auto set = lc::parse_eval_set("C:/data/x/manifest.json:val", "t");
  EXPECT_EQ(set.manifest, "C:/data/x/manifest.json");
  EXPECT_EQ(set.split, "val");
  expect_error([] { lc::parse_eval_set("manifest.json:", "t"); }, {"MANIFEST.json:SPLIT"});
  expect_error([] { lc::parse_eval_set(":val", "t"); }, {"MANIFEST.json:SPLIT"});
}
