#include "io/hf_gpt2.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>
#include <vector>

#include "model/norm_conversion.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace lnfree::io {
namespace {

constexpr const char* kPrefix = "transformer.";
constexpr const char* kLmHead = "lm_head.weight";

std::string strip_prefix(const std::string& name) {
  const std::size_t n = std::strlen(kPrefix);
  return name.compare(0, n, kPrefix) == 0 ? name.substr(n) : name;
}

// HF registers its causal mask as "h.<i>.attn.bias" (and older versions "h.<i>.attn.masked_bias");
// they are constants, not parameters, and model::Gpt2 builds its own mask.
bool is_attention_mask_buffer(const std::string& name, std::int64_t n_layer) {
  if (name.compare(0, 2, "h.") != 0) return false;
  const std::size_t digits_end = name.find('.', 2);
  if (digits_end == std::string::npos || digits_end == 2 || digits_end > 11) return false;
  std::int64_t layer = 0;
  for (std::size_t i = 2; i < digits_end; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return false;
    layer = layer * 10 + (name[i] - '0');
  }
  if (layer >= n_layer || std::to_string(layer) != name.substr(2, digits_end - 2)) return false;
  const std::string rest = name.substr(digits_end);
  return rest == ".attn.bias" || rest == ".attn.masked_bias";
}

std::string quoted_list(const std::vector<std::string>& names) {
  const std::size_t shown = std::min<std::size_t>(names.size(), 5);
  std::string text;
  for (std::size_t i = 0; i < shown; ++i) text += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > shown) text += fmt::format(" and {} more", names.size() - shown);
  return text;
}

std::vector<std::int64_t> shape_of(const torch::Tensor& t) { return t.sizes().vec(); }

// Reads a float tensor of the file into a new CPU F32 tensor.
torch::Tensor read_f32(const SafetensorsReader& reader, const std::string& name) {
  auto out = torch::empty(reader.shape(name), torch::kFloat32);
  reader.read_as_f32(name, out.data_ptr<float>(), static_cast<std::size_t>(out.numel()));
  return out;
}

void require_float(const SafetensorsReader& reader, const std::string& name) {
  if (!is_float_dtype(reader.dtype(name)))
    fail("{}: tensor '{}': dtype {}, expected a float type (F32, F16, BF16 or F64)", reader.path(), name,
         dtype_name(reader.dtype(name)));
}

}  // namespace

bool transformers_computes(const model::Gpt2& model) {
  const auto& shape = model->shape();
  if (shape.norm == model::NormKind::kLayerNorm) return true;
  if (shape.norm == model::NormKind::kCrmsNorm) return false;
  // LayerNorm equals RMSNorm (eps included) on a zero-mean stream: centred in the forward, which a
  // LayerNorm does itself, or centred in the weights (a Pre-RMSNorm conversion).
  return shape.centre_writes || model::residual_writes_are_centred(*model);
}

void check_hf_gpt2_config(const std::string& path) {
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", path, e.what());
  }
  if (!config.is_object()) fail("{}: expected a JSON object (GPT2Config)", path);
  auto expect = [&](const char* field, const std::vector<nlohmann::json>& allowed, const char* why) {
    if (!config.contains(field) || config[field].is_null()) return;
    std::string expected;
    for (const auto& value : allowed) {
      if (config[field] == value) return;
      expected += (expected.empty() ? "" : " or ") + value.dump();
    }
    fail("{}: field '{}': expected {}, got {} ({})", path, field, expected, config[field].dump(), why);
  };
  expect("model_type", {"gpt2", model::kLnfreeGpt2ModelType},
         "lnfree implements GPT-2, and writes \"lnfree-gpt2\" for GPT-2 layouts transformers would misread");
  expect("activation_function", {"gelu_new", "gelu_pytorch_tanh"},
         "lnfree's MLP uses the tanh-approximate GELU");
  expect("scale_attn_weights", {true}, "lnfree scales attention scores by 1/sqrt(head_dim)");
  expect("scale_attn_by_inverse_layer_idx", {false}, "not implemented by lnfree");
  expect("add_cross_attention", {false}, "not implemented by lnfree");
  if (config.contains("n_inner") && !config["n_inner"].is_null() && config.contains("n_embd") &&
      config["n_embd"].is_number_integer() && config["n_inner"] != 4 * config["n_embd"].get<std::int64_t>())
    fail("{}: field 'n_inner': expected null or 4 * n_embd = {}, got {} (lnfree's MLP is 4 n_embd wide)",
         path, 4 * config["n_embd"].get<std::int64_t>(), config["n_inner"].dump());
}

HfGpt2Paths resolve_hf_gpt2_paths(const std::string& dir_or_file) {
  const fs::path path(dir_or_file);
  if (fs::is_directory(path)) return {(path / "config.json").string(), (path / "model.safetensors").string()};
  if (!fs::exists(path))
    fail("{}: no such file or folder (expected a Hugging Face GPT-2 folder)", dir_or_file);
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (path.extension() == ".safetensors") return {(dir / "config.json").string(), path.string()};
  return {path.string(), (dir / "model.safetensors").string()};
}

model::Gpt2 load_hf_gpt2(const std::string& dir_or_file) {
  const HfGpt2Paths paths = resolve_hf_gpt2_paths(dir_or_file);
  if (!fs::exists(paths.config))
    fail("{}: not a Hugging Face GPT-2 folder: missing {}", dir_or_file, paths.config);
  if (!fs::exists(paths.weights)) {
    const fs::path dir = fs::path(paths.weights).parent_path();
    if (fs::exists(dir / "model.safetensors.index.json"))
      fail(
          "{}: sharded checkpoints (model.safetensors.index.json) are not supported: merge the shards into "
          "one "
          "model.safetensors",
          dir_or_file);
    fail("{}: missing {} (lnfree reads safetensors weights only, not pytorch_model.bin)", dir_or_file,
         paths.weights);
  }
  check_hf_gpt2_config(paths.config);
  model::Gpt2 model(model::shape_from_hf_config(paths.config));
  load_weights_into(model, paths.weights);
  const auto& s = model->shape();
  spdlog::info("loaded {}: GPT-2 with {} layers, n_embd {}, {} heads, context {}, vocabulary {}",
               paths.weights, s.n_layer, s.n_embd, s.n_head, s.n_positions, s.vocab_size);
  return model;
}

void load_weights_into(model::Gpt2& model, const std::string& safetensors_path) {
  const SafetensorsReader reader(safetensors_path);
  const std::string& path = reader.path();
  auto params = model->named_parameters();

  // Map every tensor of the file to a parameter, or set it aside, or call it unexpected.
  std::map<std::string, std::string> file_name_of;  // parameter name -> tensor name in the file
  std::vector<std::string> unexpected;
  bool has_lm_head = false;
  const bool tied = model->shape().tie_word_embeddings;
  for (const auto& name : reader.names()) {
    if (name == kLmHead && tied) {
      has_lm_head = true;
      continue;
    }
    const std::string parameter = strip_prefix(name);
    if (is_attention_mask_buffer(parameter, model->shape().n_layer)) continue;
    if (!params.contains(parameter)) {
      unexpected.push_back(name);
      continue;
    }
    auto [it, inserted] = file_name_of.emplace(parameter, name);
    if (!inserted)
      fail("{}: tensors '{}' and '{}' are both parameter '{}'", path, it->second, name, parameter);
  }
  if (!unexpected.empty())
    fail(
        "{}: unexpected tensor{} {}: not a parameter of a GPT-2 with {} layers (names are HF "
        "GPT2LMHeadModel's, "
        "with or without the 'transformer.' prefix)",
        path, unexpected.size() > 1 ? "s" : "", quoted_list(unexpected), model->shape().n_layer);
  std::vector<std::string> missing;
  for (const auto& item : params)
    if (file_name_of.count(item.key()) == 0)
      missing.push_back(item.key().rfind("lm_head.", 0) == 0 ? item.key() : std::string(kPrefix) + item.key());
  if (!missing.empty())
    fail("{}: missing tensor{} {} (with or without the 'transformer.' prefix)", path,
         missing.size() > 1 ? "s" : "", quoted_list(missing));
  for (const auto& [parameter, name] : file_name_of) {
    const auto expected = shape_of(params[parameter]);
    if (reader.shape(name) != expected)
      fail("{}: tensor '{}': expected shape {} for this model, got {}", path, name, format_shape(expected),
           format_shape(reader.shape(name)));
    require_float(reader, name);
  }

  torch::NoGradGuard no_grad;
  for (const auto& [parameter, name] : file_name_of) params[parameter].copy_(read_f32(reader, name));

  if (has_lm_head) {
    const std::string& wte_name = file_name_of.at("wte.weight");
    if (reader.shape(kLmHead) != reader.shape(wte_name))
      fail("{}: tensor '{}': expected shape {} (tied to '{}'), got {}", path, kLmHead,
           format_shape(reader.shape(wte_name)), wte_name, format_shape(reader.shape(kLmHead)));
    require_float(reader, kLmHead);
    const auto head = read_f32(reader, kLmHead);
    const auto wte = read_f32(reader, wte_name);
    if (!torch::equal(head, wte))
      fail(
          "{}: tensor '{}' differs from '{}' (max |difference| {}), but config.json ties the head "
          "(tie_word_embeddings absent or true); a folder with an untied head says tie_word_embeddings: false",
          path, kLmHead, wte_name, (head - wte).abs().max().item<float>());
  }
}

void save_hf_gpt2(const model::Gpt2& model, const std::string& dir, Dtype dtype,
                  const nlohmann::json& extra_config) {
  if (dtype != Dtype::kF32 && dtype != Dtype::kF16 && dtype != Dtype::kBF16)
    fail("{}: cannot save a GPT-2 as {} (expected F32, F16 or BF16)", dir, dtype_name(dtype));
  const auto& shape = model->shape();

  // HF's GPT-2 computes every LayerNorm for real with one epsilon (GPT2Config.layer_norm_epsilon);
  // a model that differs would be written as a different network. The modules' values are what
  // the model computes.
  const double eps = model->ln_f->eps;
  for (const auto& [name, ln] : model->layer_norms()) {
    if (ln->is_fake(model::LnPath::kMain) || (ln->has_value_path() && ln->is_fake(model::LnPath::kValue)))
      fail(
          "{}: cannot save as a Hugging Face GPT-2: LayerNorm '{}' has a removed (fake) path, which "
          "GPT2Config "
          "cannot express; export the LN-free model instead",
          dir, name);
    if (ln->eps != eps)
      fail(
          "{}: cannot save as a Hugging Face GPT-2: LayerNorm epsilons differ ('{}': {}, 'ln_f': {}), "
          "GPT2Config "
          "has one",
          dir, name, ln->eps, eps);
  }

  std::error_code error;
  fs::create_directories(dir, error);
  if (error) fail("{}: cannot create folder: {}", dir, error.message());

  std::vector<torch::Tensor> kept;                    // CPU F32 copies (or the parameters themselves)
  std::vector<std::vector<std::uint16_t>> converted;  // F16 / BF16 data
  std::vector<TensorToWrite> tensors;
  const auto params = model->named_parameters();
  kept.reserve(params.size());
  converted.reserve(params.size());
  for (const auto& item : params) {
    kept.push_back(item.value().detach().to(torch::kCPU, torch::kFloat32).contiguous());
    const torch::Tensor& t = kept.back();
    const float* values = t.data_ptr<float>();
    const std::size_t n = static_cast<std::size_t>(t.numel());
    ByteSpan bytes{reinterpret_cast<const std::uint8_t*>(values), n * sizeof(float)};
    if (dtype != Dtype::kF32) {
      auto& out = converted.emplace_back(n);
      for (std::size_t i = 0; i < n; ++i)
        out[i] = dtype == Dtype::kF16 ? f16_from_f32(values[i]) : bf16_from_f32(values[i]);
      bytes = {reinterpret_cast<const std::uint8_t*>(out.data()), n * sizeof(std::uint16_t)};
    }
    // lm_head (an untied unembedding) sits outside "transformer." in GPT2LMHeadModel.
    const bool head = item.key().rfind("lm_head.", 0) == 0;
    tensors.push_back({head ? item.key() : kPrefix + item.key(), dtype, shape_of(t), bytes});
  }
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});

  // GPT2Config.to_json_string() sorts keys; nlohmann::json's object is sorted too.
  const double dropout = shape.dropout;
  nlohmann::json config = {
      {"activation_function", "gelu_new"},
      {"architectures", nlohmann::json::array({"GPT2LMHeadModel"})},
      {"attn_pdrop", dropout},
      {"bos_token_id", shape.eot_token},
      {"embd_pdrop", dropout},
      {"eos_token_id", shape.eot_token},
      {"initializer_range", 0.02},
      {"layer_norm_epsilon", eps},
      {"model_type", transformers_computes(model) ? "gpt2" : model::kLnfreeGpt2ModelType},
      {"n_ctx", shape.n_positions},
      {"n_embd", shape.n_embd},
      {"n_head", shape.n_head},
      {"n_inner", nullptr},
      {"n_layer", shape.n_layer},
      {"n_positions", shape.n_positions},
      {"reorder_and_upcast_attn", false},
      {"resid_pdrop", dropout},
      {"scale_attn_by_inverse_layer_idx", false},
      {"scale_attn_weights", true},
      {"summary_activation", nullptr},
      {"summary_first_dropout", 0.1},
      {"summary_proj_to_labels", true},
      {"summary_type", "cls_index"},
      {"summary_use_proj", true},
      {"tie_word_embeddings", shape.tie_word_embeddings},
      {"torch_dtype", dtype == Dtype::kF32   ? "float32"
                      : dtype == Dtype::kF16 ? "float16"
                                             : "bfloat16"},
      {"use_cache", true},
      {"vocab_size", shape.vocab_size},
  };
  const auto shape_json = model::shape_to_hf_json(shape);
  for (const auto& [key, value] : shape_json.items())
    if (key == model::kNormJsonKey || key == model::kCentreWritesJsonKey) config[key] = value;
  for (const auto& [key, value] : extra_config.items()) config[key] = value;
  write_file_atomically((fs::path(dir) / "config.json").string(), config.dump(2) + "\n");
}

}  // namespace lnfree::io
