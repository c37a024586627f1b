#include "io/hf_gpt2.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "io/io_test_support.h"
#include "io/safetensors.h"
#include "util/error.h"
#include "util/files.h"

namespace lnfree::io {
namespace {

using testing::TempDir;
using Arrays = std::map<std::string, torch::Tensor>;  // HF name without prefix -> CPU F32 tensor

constexpr std::int64_t kLayers = 2, kEmbd = 32, kHeads = 2, kPositions = 16, kVocab = 97;

model::Gpt2Shape tiny_shape() {
  model::Gpt2Shape s;
  s.n_layer = kLayers;
  s.n_embd = kEmbd;
  s.n_head = kHeads;
  s.n_positions = kPositions;
  s.vocab_size = kVocab;
  return s;
}

// The parameters of a HF GPT-2 with the tiny shape, written out by hand in HF's layout (Conv1D
// weights [in, out]). Every tensor gets its own random values, LN weights near 1 and non-zero
// biases, so that any swap, transposition or skipped copy changes the numbers.
Arrays hf_arrays(std::uint64_t seed) {
  torch::manual_seed(seed);
  const std::int64_t d = kEmbd;
  Arrays a;
  auto normal = [](std::vector<std::int64_t> shape, double scale) { return torch::randn(shape) * scale; };
  a["wte.weight"] = normal({kVocab, d}, 0.5);
  a["wpe.weight"] = normal({kPositions, d}, 0.3);
  for (std::int64_t i = 0; i < kLayers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    a[p + "ln_1.weight"] = 1 + normal({d}, 0.1);
    a[p + "ln_1.bias"] = normal({d}, 0.1);
    a[p + "attn.c_attn.weight"] = normal({d, 3 * d}, 0.2);
    a[p + "attn.c_attn.bias"] = normal({3 * d}, 0.1);
    a[p + "attn.c_proj.weight"] = normal({d, d}, 0.2);
    a[p + "attn.c_proj.bias"] = normal({d}, 0.1);
    a[p + "ln_2.weight"] = 1 + normal({d}, 0.1);
    a[p + "ln_2.bias"] = normal({d}, 0.1);
    a[p + "mlp.c_fc.weight"] = normal({d, 4 * d}, 0.2);
    a[p + "mlp.c_fc.bias"] = normal({4 * d}, 0.1);
    a[p + "mlp.c_proj.weight"] = normal({4 * d, d}, 0.1);
    a[p + "mlp.c_proj.bias"] = normal({d}, 0.1);
  }
  a["ln_f.weight"] = 1 + normal({d}, 0.1);
  a["ln_f.bias"] = normal({d}, 0.1);
  return a;
}

// A config.json as transformers writes one for GPT-2, with fields lnfree does not read.
std::string hf_config_json(const std::string& activation = "gelu_new") {
  nlohmann::json config = {
      {"activation_function", activation},
      {"architectures", nlohmann::json::array({"GPT2LMHeadModel"})},
      {"attn_pdrop", 0.1},
      {"bos_token_id", 50256},
      {"embd_pdrop", 0.1},
      {"eos_token_id", 50256},
      {"initializer_range", 0.02},
      {"layer_norm_epsilon", 1e-5},
      {"model_type", "gpt2"},
      {"n_ctx", kPositions},
      {"n_embd", kEmbd},
      {"n_head", kHeads},
      {"n_inner", nullptr},
      {"n_layer", kLayers},
      {"n_positions", kPositions},
      {"resid_pdrop", 0.1},
      {"task_specific_params", {{"text-generation", {{"do_sample", true}, {"max_length", 50}}}}},
      {"transformers_version", "4.40.0"},
      {"vocab_size", kVocab}};
  return config.dump(2);
}

struct CheckpointOptions {
  Dtype dtype = Dtype::kF32;
  bool prefix = true;
  bool mask_buffers = true;  // h.<i>.attn.bias (BOOL tril) and h.<i>.attn.masked_bias (F32 scalar)
  bool lm_head = false;      // lm_head.weight = wte.weight
};

// Writes `arrays` (names without prefix) and config.json into `dir` the way HF checkpoints look,
// independently of save_hf_gpt2. `extra` tensors are written under their names as given.
void write_hf_checkpoint(const std::string& dir, const Arrays& arrays, const CheckpointOptions& options,
                         const Arrays& extra = {}) {
  std::vector<std::vector<std::uint8_t>> storage;
  std::vector<TensorToWrite> tensors;
  auto add = [&](const std::string& name, Dtype dtype, const torch::Tensor& t) {
    const auto values = t.contiguous();
    auto& bytes = storage.emplace_back(static_cast<std::size_t>(values.numel()) * dtype_size(dtype));
    if (dtype == Dtype::kF32) {
      std::memcpy(bytes.data(), values.data_ptr<float>(), bytes.size());
    } else if (dtype == Dtype::kF16 || dtype == Dtype::kBF16) {
      const float* src = values.data_ptr<float>();
      for (std::int64_t i = 0; i < values.numel(); ++i) {
        const std::uint16_t h = dtype == Dtype::kF16 ? f16_from_f32(src[i]) : bf16_from_f32(src[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
    } else if (dtype == Dtype::kBool || dtype == Dtype::kU8) {
      const auto as_bytes = values.to(torch::kUInt8);
      std::memcpy(bytes.data(), as_bytes.data_ptr<std::uint8_t>(), bytes.size());
    } else if (dtype == Dtype::kI32) {
      const auto as_ints = values.to(torch::kInt32);
      std::memcpy(bytes.data(), as_ints.data_ptr<std::int32_t>(), bytes.size());
    }
    tensors.push_back({name, dtype, values.sizes().vec(), {bytes.data(), bytes.size()}});
  };
  const std::string prefix = options.prefix ? "transformer." : "";
  for (const auto& [name, t] : arrays) add(prefix + name, options.dtype, t);
  if (options.mask_buffers) {
    for (std::int64_t i = 0; i < kLayers; ++i) {
      const std::string p = prefix + "h." + std::to_string(i) + ".attn.";
      add(p + "bias", Dtype::kBool,
          torch::ones({kPositions, kPositions}).tril().view({1, 1, kPositions, kPositions}));
      add(p + "masked_bias", Dtype::kF32, torch::scalar_tensor(-1e4, torch::kFloat32));
    }
  }
  if (options.lm_head) add("lm_head.weight", options.dtype, arrays.at("wte.weight"));
  for (const auto& [name, t] : extra)
    add(name, t.scalar_type() == torch::kInt32 ? Dtype::kI32 : options.dtype, t);
  std::filesystem::create_directories(dir);
  write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomically(dir + "/config.json", hf_config_json());
}

// Every parameter, reached through the model's typed members (not through parameter names), must
// equal the HF array of the same role.
void expect_parameters_equal(model::Gpt2& m, const Arrays& expected) {
  std::vector<std::pair<std::string, torch::Tensor>> placed = {{"wte.weight", m->wte->weight},
                                                               {"wpe.weight", m->wpe->weight},
                                                               {"ln_f.weight", m->ln_f->weight},
                                                               {"ln_f.bias", m->ln_f->bias}};
  for (std::int64_t i = 0; i < kLayers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    auto& b = m->blocks[static_cast<std::size_t>(i)];
    placed.insert(placed.end(), {{p + "ln_1.weight", b->ln_1->weight},
                                 {p + "ln_1.bias", b->ln_1->bias},
                                 {p + "attn.c_attn.weight", b->attn->c_attn->weight},
                                 {p + "attn.c_attn.bias", b->attn->c_attn->bias},
                                 {p + "attn.c_proj.weight", b->attn->c_proj->weight},
                                 {p + "attn.c_proj.bias", b->attn->c_proj->bias},
                                 {p + "ln_2.weight", b->ln_2->weight},
                                 {p + "ln_2.bias", b->ln_2->bias},
                                 {p + "mlp.c_fc.weight", b->mlp->c_fc->weight},
                                 {p + "mlp.c_fc.bias", b->mlp->c_fc->bias},
                                 {p + "mlp.c_proj.weight", b->mlp->c_proj->weight},
                                 {p + "mlp.c_proj.bias", b->mlp->c_proj->bias}});
  }
  ASSERT_EQ(placed.size(), expected.size());
  for (const auto& [name, param] : placed) {
    const auto& want = expected.at(name);
    ASSERT_EQ(param.sizes(), want.sizes()) << name;
    EXPECT_TRUE(torch::equal(param, want))
        << name << ": max |diff| " << (param - want).abs().max().item<float>();
  }
}

// GPT-2 written out from the raw HF arrays in float64, with y = x @ W + b for every Conv1D (W as
// stored, [in, out]): a transposed weight anywhere in the loader changes these logits.
torch::Tensor reference_logits(const Arrays& arrays, const torch::Tensor& ids, double eps) {
  auto w = [&](const std::string& name) { return arrays.at(name).to(torch::kDouble); };
  auto layer_norm = [&](const torch::Tensor& x, const std::string& p) {
    auto centred = x - x.mean(-1, true);
    auto var = (centred * centred).mean(-1, true);
    return centred / torch::sqrt(var + eps) * w(p + ".weight") + w(p + ".bias");
  };
  auto conv1d = [&](const torch::Tensor& x, const std::string& p) {
    return torch::matmul(x, w(p + ".weight")) + w(p + ".bias");
  };
  const std::int64_t T = ids.size(0), d = kEmbd, hd = kEmbd / kHeads;
  auto x = w("wte.weight").index_select(0, ids) + w("wpe.weight").slice(0, 0, T);
  const auto future = torch::ones({T, T}, torch::kBool).triu(1);
  for (std::int64_t i = 0; i < kLayers; ++i) {
    const std::string p = "h." + std::to_string(i);
    const auto qkv = conv1d(layer_norm(x, p + ".ln_1"), p + ".attn.c_attn");
    auto head_split = [&](std::int64_t part) {
      return qkv.slice(1, part * d, (part + 1) * d).reshape({T, kHeads, hd}).permute({1, 0, 2});
    };
    const auto q = head_split(0), k = head_split(1), v = head_split(2);
    auto scores = torch::matmul(q, k.transpose(1, 2)) / std::sqrt(static_cast<double>(hd));
    scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
    const auto y = torch::matmul(torch::softmax(scores, -1), v).permute({1, 0, 2}).reshape({T, d});
    x = x + conv1d(y, p + ".attn.c_proj");
    const auto h = conv1d(layer_norm(x, p + ".ln_2"), p + ".mlp.c_fc");
    const auto gelu =
        0.5 * h * (1 + torch::tanh(std::sqrt(2.0 / std::acos(-1.0)) * (h + 0.044715 * h * h * h)));
    x = x + conv1d(gelu, p + ".mlp.c_proj");
  }
  return torch::matmul(layer_norm(x, "ln_f"), w("wte.weight").t());
}

std::string load_error(const std::string& dir) {
  try {
    load_hf_gpt2(dir);
  } catch (const Error& e) {
    std::printf("  error: %s\n", e.what());
    return e.what();
  }
  ADD_FAILURE() << dir << " loaded";
  return "";
}

void expect_contains(const std::string& message, const std::vector<std::string>& fragments) {
  for (const auto& fragment : fragments)
    EXPECT_NE(message.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << message;
}

// ---------------------------------------------------------------- loading

TEST(HfGpt2Load, EveryParameterLandsInItsPlaceAndOrientation) {
  TempDir dir;
  const Arrays arrays = hf_arrays(1);
  CheckpointOptions options;
  options.lm_head = true;  // tied head present, as in older conversions
  write_hf_checkpoint(dir.path().string(), arrays, options);
  auto model = load_hf_gpt2(dir.path().string());
  EXPECT_EQ(model->shape().n_layer, kLayers);
  EXPECT_EQ(model->shape().vocab_size, kVocab);
  // Conv1D orientation [in, out]: c_attn maps n_embd to Q, K, V side by side.
  EXPECT_EQ(model->blocks[0]->attn->c_attn->weight.sizes(), torch::IntArrayRef({kEmbd, 3 * kEmbd}));
  EXPECT_EQ(model->blocks[0]->mlp->c_fc->weight.sizes(), torch::IntArrayRef({kEmbd, 4 * kEmbd}));
  EXPECT_EQ(model->blocks[0]->mlp->c_proj->weight.sizes(), torch::IntArrayRef({4 * kEmbd, kEmbd}));
  expect_parameters_equal(model, arrays);
}

TEST(HfGpt2Load, LogitsEqualAHandWrittenForwardOfTheRawArrays) {
  TempDir dir;
  const Arrays arrays = hf_arrays(2);
  write_hf_checkpoint(dir.path().string(), arrays, {});
  auto model = load_hf_gpt2(dir.path().string());
  model->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::tensor({5, 96, 0, 17, 17, 42, 3, 88, 61, 7, 29, 50}, torch::kLong);
  const auto ours = model->forward(ids.unsqueeze(0)).squeeze(0).to(torch::kDouble);
  const auto reference = reference_logits(arrays, ids, 1e-5);
  const double max_diff = (ours - reference).abs().max().item<double>();
  const double scale = reference.abs().max().item<double>();
  std::printf("  logits vs hand-written float64 forward: max |diff| %.3g (logits up to %.3g)\n", max_diff,
              scale);
  EXPECT_LT(max_diff, 1e-4 * scale);
  // The same forward with every weight transposed where it is square (attn.c_proj) is far off, so
  // this comparison does see orientation.
  Arrays transposed = arrays;
  for (std::int64_t i = 0; i < kLayers; ++i) {
    auto& w = transposed["h." + std::to_string(i) + ".attn.c_proj.weight"];
    w = w.t().contiguous();
  }
  const double transposed_diff = (ours - reference_logits(transposed, ids, 1e-5)).abs().max().item<double>();
  std::printf("  vs the forward with attn.c_proj transposed: max |diff| %.3g\n", transposed_diff);
  EXPECT_GT(transposed_diff, 1000 * max_diff);
}

void check_half_checkpoint(Dtype dtype, torch::ScalarType torch_type) {
  TempDir dir;
  const Arrays arrays = hf_arrays(3);
  CheckpointOptions options;
  options.dtype = dtype;
  write_hf_checkpoint(dir.path().string(), arrays, options);
  auto model = load_hf_gpt2(dir.path().string());
  EXPECT_EQ(model->wte->weight.scalar_type(), torch::kFloat32);
  // Expected values: torch's own rounding to the half type, widened back (exact).
  Arrays rounded;
  double max_rounding = 0;
  for (const auto& [name, t] : arrays) {
    rounded[name] = t.to(torch_type).to(torch::kFloat32);
    max_rounding = std::max(max_rounding, ((rounded[name] - t).abs() / t.abs()).max().item<double>());
  }
  std::printf("  %s checkpoint: max relative rounding of the weights %.3g\n", dtype_name(dtype),
              max_rounding);
  expect_parameters_equal(model, rounded);
}

TEST(HfGpt2Load, F16CheckpointLoadsAsF32) { check_half_checkpoint(Dtype::kF16, torch::kHalf); }

TEST(HfGpt2Load, BF16CheckpointLoadsAsF32) { check_half_checkpoint(Dtype::kBF16, torch::kBFloat16); }

TEST(HfGpt2Load, NamesWithoutTransformerPrefixLoad) {
  TempDir dir;
  const Arrays arrays = hf_arrays(4);
  CheckpointOptions options;
  options.prefix = false;
  write_hf_checkpoint(dir.path().string(), arrays, options);
  auto model = load_hf_gpt2(dir.path().string());
  expect_parameters_equal(model, arrays);
}

TEST(HfGpt2Load, AcceptsTheSafetensorsOrConfigFileInsteadOfTheFolder) {
  TempDir dir;
  const Arrays arrays = hf_arrays(5);
  write_hf_checkpoint(dir.path().string(), arrays, {});
  auto from_weights = load_hf_gpt2(dir.file("model.safetensors"));
  expect_parameters_equal(from_weights, arrays);
  auto from_config = load_hf_gpt2(dir.file("config.json"));
  expect_parameters_equal(from_config, arrays);
  const auto paths = resolve_hf_gpt2_paths(dir.file("config.json"));
  EXPECT_EQ(paths.weights, dir.file("model.safetensors"));
}

TEST(HfGpt2Load, MissingTensorIsNamed) {
  TempDir dir;
  Arrays arrays = hf_arrays(6);
  arrays.erase("h.1.mlp.c_fc.bias");
  write_hf_checkpoint(dir.path().string(), arrays, {});
  expect_contains(load_error(dir.path().string()),
                  {dir.file("model.safetensors"), "missing tensor 'transformer.h.1.mlp.c_fc.bias'"});
}

TEST(HfGpt2Load, UnexpectedTensorIsNamed) {
  TempDir dir;
  const Arrays arrays = hf_arrays(7);
  write_hf_checkpoint(dir.path().string(), arrays, {},
                      {{"transformer.h.2.ln_1.weight", torch::ones({kEmbd})}});
  expect_contains(load_error(dir.path().string()),
                  {dir.file("model.safetensors"), "unexpected tensor 'transformer.h.2.ln_1.weight'"});
}

TEST(HfGpt2Load, MaskBufferOfALayerBeyondTheModelIsUnexpected) {
  TempDir dir;
  write_hf_checkpoint(dir.path().string(), hf_arrays(8), {},
                      {{"transformer.h.7.attn.masked_bias", torch::scalar_tensor(1.0, torch::kFloat32)}});
  expect_contains(load_error(dir.path().string()), {"unexpected tensor 'transformer.h.7.attn.masked_bias'"});
}

TEST(HfGpt2Load, MisshapedTensorIsNamedWithBothShapes) {
  TempDir dir;
  Arrays arrays = hf_arrays(9);
  // A Conv1D weight stored the nn.Linear way ([out, in]) must not load.
  arrays["h.0.attn.c_attn.weight"] = arrays["h.0.attn.c_attn.weight"].t().contiguous();
  write_hf_checkpoint(dir.path().string(), arrays, {});
  expect_contains(load_error(dir.path().string()),
                  {dir.file("model.safetensors"), "'transformer.h.0.attn.c_attn.weight'",
                   "expected shape [32, 96]", "got [96, 32]"});
}

TEST(HfGpt2Load, NonFloatParameterIsNamed) {
  TempDir dir;
  Arrays arrays = hf_arrays(10);
  arrays.erase("ln_f.bias");
  write_hf_checkpoint(dir.path().string(), arrays, {},
                      {{"transformer.ln_f.bias", torch::zeros({kEmbd}, torch::kInt32)}});
  expect_contains(load_error(dir.path().string()), {"'transformer.ln_f.bias'", "dtype I32"});
}

TEST(HfGpt2Load, UntiedLmHeadIsRefused) {
  TempDir dir;
  Arrays arrays = hf_arrays(11);
  arrays["wte.weight"][3][4] = 1.0;
  auto head = arrays.at("wte.weight").clone();
  head[3][4] = 1.25;
  write_hf_checkpoint(dir.path().string(), arrays, {}, {{"lm_head.weight", head}});
  expect_contains(load_error(dir.path().string()), {"'lm_head.weight' differs from 'transformer.wte.weight'",
                                                    "max |difference| 0.25", "untied"});
}

TEST(HfGpt2Load, SameParameterUnderTwoNamesIsRefused) {
  TempDir dir;
  const Arrays arrays = hf_arrays(12);
  write_hf_checkpoint(dir.path().string(), arrays, {}, {{"wpe.weight", arrays.at("wpe.weight")}});
  expect_contains(load_error(dir.path().string()), {"'transformer.wpe.weight' and 'wpe.weight'"});
}

TEST(HfGpt2Load, ConfigWithAnotherActivationIsRefused) {
  TempDir dir;
  write_hf_checkpoint(dir.path().string(), hf_arrays(13), {});
  write_file_atomically(dir.file("config.json"), hf_config_json("relu"));
  expect_contains(load_error(dir.path().string()),
                  {dir.file("config.json"), "field 'activation_function'", "\"relu\""});
}

TEST(HfGpt2Load, FolderWithoutWeightsIsRefused) {
  TempDir dir;
  write_file_atomically(dir.file("config.json"), hf_config_json());
  expect_contains(load_error(dir.path().string()), {dir.file("model.safetensors"), "missing"});
}

// ---------------------------------------------------------------- saving

Arrays parameters_of(model::Gpt2& m) {
  Arrays out;
  for (const auto& item : m->named_parameters()) out[item.key()] = item.value().detach().clone();
  return out;
}

TEST(HfGpt2Save, SaveThenLoadIsBitExact) {
  TempDir dir;
  torch::manual_seed(21);
  model::Gpt2 model(tiny_shape());
  {
    // Non-trivial LN parameters and biases (the initialisation makes them 1 and 0).
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(torch::randn(p.sizes()) * 0.05);
  }
  const std::string out = dir.file("saved");
  save_hf_gpt2(model, out);

  SafetensorsReader reader(out + "/model.safetensors");
  EXPECT_EQ(reader.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(reader.size(), model->named_parameters().size());
  EXPECT_FALSE(reader.contains("lm_head.weight"));
  for (const auto& name : reader.names()) {
    EXPECT_EQ(name.rfind("transformer.", 0), 0u) << name;
    EXPECT_EQ(reader.dtype(name), Dtype::kF32) << name;
  }
  EXPECT_EQ(reader.shape("transformer.h.1.attn.c_attn.weight"),
            (std::vector<std::int64_t>{kEmbd, 3 * kEmbd}));

  const auto config = nlohmann::json::parse(read_file(out + "/config.json"));
  EXPECT_EQ(config["model_type"], "gpt2");
  EXPECT_EQ(config["architectures"], nlohmann::json::array({"GPT2LMHeadModel"}));
  EXPECT_EQ(config["activation_function"], "gelu_new");
  EXPECT_EQ(config["n_layer"], kLayers);
  EXPECT_EQ(config["n_embd"], kEmbd);
  EXPECT_EQ(config["n_head"], kHeads);
  EXPECT_EQ(config["n_positions"], kPositions);
  EXPECT_EQ(config["n_ctx"], kPositions);
  EXPECT_EQ(config["vocab_size"], kVocab);
  EXPECT_EQ(config["layer_norm_epsilon"], 1e-5);
  EXPECT_EQ(config["eos_token_id"], 50256);
  EXPECT_EQ(config["torch_dtype"], "float32");
  EXPECT_EQ(config["tie_word_embeddings"], true);

  auto loaded = load_hf_gpt2(out);
  expect_parameters_equal(loaded, parameters_of(model));
  model->eval();
  loaded->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::randint(0, kVocab, {2, kPositions}, torch::kLong);
  EXPECT_TRUE(torch::equal(model->forward(ids), loaded->forward(ids)));

  // Saving again over the folder replaces both files.
  save_hf_gpt2(loaded, out);
  EXPECT_TRUE(torch::equal(load_hf_gpt2(out)->wte->weight, model->wte->weight));
}

TEST(HfGpt2Save, F16AndBF16SavesRoundToNearestEven) {
  TempDir dir;
  torch::manual_seed(22);
  model::Gpt2 model(tiny_shape());
  const Arrays original = parameters_of(model);
  for (const auto& [dtype, torch_type, label] : {std::tuple{Dtype::kF16, torch::kHalf, "float16"},
                                                 std::tuple{Dtype::kBF16, torch::kBFloat16, "bfloat16"}}) {
    const std::string out = dir.file(label);
    save_hf_gpt2(model, out, dtype);
    EXPECT_EQ(nlohmann::json::parse(read_file(out + "/config.json"))["torch_dtype"], label);
    EXPECT_EQ(SafetensorsReader(out + "/model.safetensors").dtype("transformer.wte.weight"), dtype);
    auto loaded = load_hf_gpt2(out);
    Arrays rounded;
    for (const auto& [name, t] : original) rounded[name] = t.to(torch_type).to(torch::kFloat32);
    expect_parameters_equal(loaded, rounded);
  }
}

TEST(HfGpt2Save, RefusesLayerNormsWithDifferentEpsilons) {
  TempDir dir;
  model::Gpt2 model(tiny_shape());
  model->blocks[1]->ln_2->eps = 1e-3;
  try {
    save_hf_gpt2(model, dir.file("out"));
    FAIL() << "saved";
  } catch (const Error& e) {
    expect_contains(e.what(), {"epsilons differ", "'h.1.ln_2'"});
  }
}

TEST(HfGpt2Save, RefusesAModelWithARemovedLayerNormPath) {
  TempDir dir;
  model::Gpt2 model(tiny_shape());
  model->blocks[0]->ln_1->remove(model::LnPath::kValue);
  try {
    save_hf_gpt2(model, dir.file("out"));
    FAIL() << "saved";
  } catch (const Error& e) {
    std::printf("  error: %s\n", e.what());
    expect_contains(e.what(), {"'h.0.ln_1'", "fake"});
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("out/model.safetensors")));
}

TEST(HfGpt2Save, IndependentNumpyGpt2ReproducesOurLogits) {
  // A Python reader sharing no code with lnfree (struct + json + numpy) parses the saved folder
  // and runs GPT-2 in float64 from HF's names with x @ W for every Conv1D.
  TempDir dir;
  torch::manual_seed(23);
  model::Gpt2 model(tiny_shape());
  {
    // Large enough weights that every block changes the logits visibly.
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(torch::randn(p.sizes()) * 0.2);
  }
  const std::string out = dir.file("saved");
  save_hf_gpt2(model, out);
  const std::vector<std::int64_t> ids = {50, 3, 96, 0, 12, 12, 71, 8, 44, 19};
  std::string id_list;
  for (auto id : ids) id_list += (id_list.empty() ? "" : ",") + std::to_string(id);
  const auto result = testing::run_independent_reader("gpt2 " + out + " " + id_list);
  ASSERT_FALSE(result.is_null());
  EXPECT_EQ(result["metadata"], (nlohmann::json{{"format", "pt"}}));
  EXPECT_EQ(result["names"].size(), model->named_parameters().size());

  model->eval();
  torch::NoGradGuard no_grad;
  const auto ours = model->forward(torch::tensor(ids, torch::kLong).unsqueeze(0)).squeeze(0);
  const auto theirs_list = result["logits"].get<std::vector<std::vector<double>>>();
  ASSERT_EQ(theirs_list.size(), ids.size());
  double max_diff = 0, scale = 0;
  for (std::size_t t = 0; t < ids.size(); ++t) {
    ASSERT_EQ(theirs_list[t].size(), static_cast<std::size_t>(kVocab));
    for (std::int64_t v = 0; v < kVocab; ++v) {
      const double theirs = theirs_list[t][static_cast<std::size_t>(v)];
      max_diff = std::max(max_diff, std::abs(ours[static_cast<std::int64_t>(t)][v].item<double>() - theirs));
      scale = std::max(scale, std::abs(theirs));
    }
  }
  std::printf("  our logits vs the independent numpy GPT-2: max |diff| %.3g (logits up to %.3g)\n", max_diff,
              scale);
  EXPECT_LT(max_diff, 1e-4 * scale);
}

}  // namespace
}  // namespace lnfree::io
