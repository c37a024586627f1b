#include "io/export.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <system_error>

#include "io/hf_gpt2.h"
#include "io/safetensors.h"
#include "util/error.h"
#include "util/files.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace lnfree::io {
namespace {

using model::LnPath;
using torch::indexing::Slice;

void refuse_special_sigmas(model::Gpt2& model, const std::string& out) {
  for (const auto& [name, ln] : model->layer_norms()) {
    const auto flags = ln->flags();
    if (flags.bos_special || flags.eot_special)
      fail(
          "{}: cannot export: LayerNorm '{}' still divides position 0 / EOT tokens by its own sigma (the "
          "schedule's bos/eot events never ran); neither export form can express that",
          out, name);
  }
}

// gamma * sqrt(epsilon) / sigma, computed in double and rounded once.
torch::Tensor eps_trick_weight(const torch::Tensor& gamma, const torch::Tensor& sigma, double epsilon) {
  const double s = sigma.item<double>();
  return (gamma.detach().to(torch::kDouble) * (std::sqrt(epsilon) / s)).to(torch::kFloat);
}

struct NamedTensor {
  std::string name;
  torch::Tensor tensor;
};

std::vector<NamedTensor> folded_tensors(const model::FoldedGpt2& f) {
  std::vector<NamedTensor> out{{"wte.weight", f.wte}, {"wpe.weight", f.wpe}};
  for (std::size_t i = 0; i < f.blocks.size(); ++i) {
    const auto& b = f.blocks[i];
    const std::string p = fmt::format("h.{}.", i);
    out.push_back({p + "attn.c_attn.weight", b.c_attn_weight});
    out.push_back({p + "attn.c_attn.bias", b.c_attn_bias});
    out.push_back({p + "attn.c_proj.weight", b.attn_proj_weight});
    out.push_back({p + "attn.c_proj.bias", b.attn_proj_bias});
    out.push_back({p + "mlp.c_fc.weight", b.c_fc_weight});
    out.push_back({p + "mlp.c_fc.bias", b.c_fc_bias});
    out.push_back({p + "mlp.c_proj.weight", b.mlp_proj_weight});
    out.push_back({p + "mlp.c_proj.bias", b.mlp_proj_bias});
  }
  out.push_back({"unembed.weight", f.unembed_weight});
  out.push_back({"unembed.bias", f.unembed_bias});
  return out;
}

}  // namespace

double eps_trick_epsilon(model::NormKind norm) {
  return norm == model::NormKind::kLayerNorm ? kEpsTrickEpsilon : kRmsEpsTrickEpsilon;
}

ExportFormat parse_export_format(const std::string& name) {
  if (name == "hf") return ExportFormat::kHf;
  if (name == "folded") return ExportFormat::kFolded;
  fail("--format: expected 'hf' or 'folded', got '{}'", name);
}

std::vector<std::string> real_layer_norm_paths(model::Gpt2& model) {
  std::vector<std::string> real;
  for (const auto& [name, ln] : model->layer_norms()) {
    if (ln->has_value_path()) {
      if (!ln->is_fake(LnPath::kMain)) real.push_back(name + " (Q/K)");
      if (!ln->is_fake(LnPath::kValue)) real.push_back(name + " (V)");
    } else if (!ln->is_fake(LnPath::kMain)) {
      real.push_back(name);
    }
  }
  return real;
}

bool partly_removed(model::Gpt2& model) {
  const auto real = real_layer_norm_paths(model).size();
  const auto paths = model->layer_norms().size() + model->blocks.size();  // ln_1 has two paths
  return real > 0 && real < paths;
}

model::Gpt2 eps_trick_model(model::Gpt2& model) {
  refuse_special_sigmas(model, "eps-trick export");
  if (!model->all_layer_norms_fake()) fail("eps-trick export: the model has real LayerNorm paths");
  torch::NoGradGuard no_grad;
  auto shape = model->shape();
  const double epsilon = eps_trick_epsilon(shape.norm);
  shape.layer_norm_epsilon = epsilon;
  shape.dropout = 0;
  model::Gpt2 out(shape);
  auto source = model->named_parameters();
  for (auto& p : out->named_parameters()) p.value().copy_(source[p.key()].detach().to(torch::kCPU));
  const int64_t d = shape.n_embd;
  for (std::size_t i = 0; i < model->blocks.size(); ++i) {
    auto& src = model->blocks[i];
    auto& dst = out->blocks[i];
    // ln_1 divides by the V sigma; the Q/K columns of c_attn absorb sigma_v / sigma_qk:
    // (y_v - beta) r + beta = y_qk with r = sigma_v / sigma_qk, so Q = y_v (r W) + ((1 - r) beta W + b).
    const double s_qk = src->ln_1->sigma(LnPath::kMain).item<double>();
    const double s_v = src->ln_1->sigma(LnPath::kValue).item<double>();
    dst->ln_1->weight.copy_(eps_trick_weight(src->ln_1->weight, src->ln_1->sigma(LnPath::kValue), epsilon));
    if (s_qk != s_v) {
      const double r = s_v / s_qk;
      auto w_qk = src->attn->c_attn->weight.detach()
                      .to(torch::kCPU, torch::kDouble)
                      .index({Slice(), Slice(0, 2 * d)});
      auto beta = src->ln_1->bias.detach().to(torch::kCPU, torch::kDouble);
      auto b_qk = src->attn->c_attn->bias.detach().to(torch::kCPU, torch::kDouble).index({Slice(0, 2 * d)});
      dst->attn->c_attn->weight.index({Slice(), Slice(0, 2 * d)}).copy_((w_qk * r).to(torch::kFloat));
      dst->attn->c_attn->bias.index({Slice(0, 2 * d)})
          .copy_((b_qk + (1 - r) * torch::matmul(beta, w_qk)).to(torch::kFloat));
    }
    dst->ln_2->weight.copy_(eps_trick_weight(src->ln_2->weight, src->ln_2->sigma(LnPath::kMain), epsilon));
  }
  out->ln_f->weight.copy_(eps_trick_weight(model->ln_f->weight, model->ln_f->sigma(LnPath::kMain), epsilon));
  return out;
}

ExportResult export_model(model::Gpt2& model, ExportFormat format, const std::string& out, bool allow_partial,
                          const nlohmann::json& provenance) {
  if (fs::exists(out)) fail("{}: already exists (an export never overwrites; choose a new --out)", out);
  refuse_special_sigmas(model, out);
  if (model->shape().norm == model::NormKind::kCrmsNorm)
    fail(
        "{}: cannot export a Pre-CRMSNorm model: it is an lnfree inference format (stream n_embd - 1 wide, "
        "no transformers class); export the model it was converted from",
        out);
  if (format == ExportFormat::kHf && !transformers_computes(model))
    fail(
        "{}: cannot export as hf: this RMSNorm model's residual stream is not zero-mean, and transformers' "
        "GPT-2 computes LayerNorm, which centres it (a different function); use --format folded",
        out);
  ExportResult result{out, {}, false};
  const auto real = real_layer_norm_paths(model);
  if (!real.empty() && (format == ExportFormat::kFolded || partly_removed(model))) {
    if (!allow_partial) {
      std::string names;
      for (const auto& r : real) names += (names.empty() ? "" : ", ") + r;
      fail(
          "{}: cannot export as an LN-free model: {} LayerNorm path(s) are still real: {} (finish the "
          "removal, or pass --allow-partial to freeze them at their current sigma)",
          out, real.size(), names);
    }
    for (auto& [name, ln] : model->layer_norms()) {
      if (!ln->is_fake(LnPath::kMain)) ln->remove(LnPath::kMain);
      if (ln->has_value_path() && !ln->is_fake(LnPath::kValue)) ln->remove(LnPath::kValue);
    }
    result.frozen = real;
    spdlog::warn(
        "{}: --allow-partial: froze {} real LayerNorm path(s) at their current sigma; the export is "
        "LN-free but not the function the run trained",
        out, real.size());
  }
  result.plain = !real.empty() && result.frozen.empty();

  nlohmann::json info = provenance;
  info["frozen_real_paths"] = result.frozen;
  write_folder_atomically(out, [&](const std::string& tmp) {
    if (format == ExportFormat::kFolded) {
      info["export"] = "folded";
      save_folded(model::fold_layer_norms(*model), tmp, info);
    } else if (result.plain) {
      info["export"] = "hf";
      save_hf_gpt2(model, tmp, Dtype::kF32, {{"lnfree", info}});
    } else {
      info["export"] = "hf-eps-trick";
      info["eps_trick_epsilon"] = eps_trick_epsilon(model->shape().norm);
      save_hf_gpt2(eps_trick_model(model), tmp, Dtype::kF32, {{"lnfree", info}});
    }
  });
  return result;
}

void write_folder_atomically(const std::string& out, const std::function<void(const std::string&)>& write) {
  if (fs::exists(out)) fail("{}: already exists (choose a new --out; nothing is overwritten)", out);
  const fs::path target(out);
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  fs::create_directories(parent);
  const fs::path tmp = parent / fmt::format(".{}.tmp-{}", target.filename().string(), ::getpid());
  fs::remove_all(tmp);
  try {
    write(tmp.string());
    fs::rename(tmp, target);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
}

void save_folded(const model::FoldedGpt2& folded, const std::string& dir, const nlohmann::json& provenance) {
  fs::create_directories(dir);
  std::vector<torch::Tensor> kept;
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, tensor] : folded_tensors(folded)) {
    kept.push_back(tensor.detach().to(torch::kCPU, torch::kFloat).contiguous());
    const auto& t = kept.back();
    tensors.push_back(
        {name,
         Dtype::kF32,
         t.sizes().vec(),
         {static_cast<const std::uint8_t*>(t.data_ptr()), static_cast<std::size_t>(t.nbytes())}});
  }
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", kFoldedModelType}});
  nlohmann::json config = model::shape_to_hf_json(folded.shape);
  // Nothing is normalised: the source's normaliser, its epsilon and how it centred its writes are
  // not this model's.
  for (const char* key : {"layer_norm_epsilon", model::kNormJsonKey, model::kCentreWritesJsonKey}) config.erase(key);
  config["model_type"] = kFoldedModelType;
  config["format_version"] = kFoldedFormatVersion;
  config["normalization"] = "none";
  config["tie_word_embeddings"] = false;
  config["activation_function"] = "gelu_new";
  config["lnfree"] = provenance;
  write_file_atomically((fs::path(dir) / "config.json").string(), config.dump(2) + "\n");
}

model::FoldedGpt2 load_folded(const std::string& dir) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  auto config = read_json_file(config_path);
  if (config.value("model_type", "") != kFoldedModelType ||
      config.value("format_version", 0) != kFoldedFormatVersion)
    fail("{}: field 'format_version': expected a {} folder of version {}", config_path, kFoldedModelType,
         kFoldedFormatVersion);
  model::FoldedGpt2 folded;
  folded.shape = model::shape_from_hf_json(config, config_path);
  folded.n_head = folded.shape.n_head;
  folded.blocks.resize(static_cast<std::size_t>(folded.shape.n_layer));
  const int64_t d = folded.shape.n_embd, V = folded.shape.vocab_size;
  SafetensorsReader reader((fs::path(dir) / "model.safetensors").string());
  auto read = [&](const std::string& name, std::vector<std::int64_t> shape) {
    if (!reader.contains(name)) fail("{}: missing tensor '{}'", reader.path(), name);
    if (reader.shape(name) != shape)
      fail("{}: tensor '{}': expected shape {}, got {}", reader.path(), name, format_shape(shape),
           format_shape(reader.shape(name)));
    auto values = reader.read_as_f32(name);
    return torch::from_blob(values.data(), shape, torch::kFloat).clone();
  };
  folded.wte = read("wte.weight", {V, d});
  folded.wpe = read("wpe.weight", {folded.shape.n_positions, d});
  for (std::size_t i = 0; i < folded.blocks.size(); ++i) {
    auto& b = folded.blocks[i];
    const std::string p = fmt::format("h.{}.", i);
    b.c_attn_weight = read(p + "attn.c_attn.weight", {d, 3 * d});
    b.c_attn_bias = read(p + "attn.c_attn.bias", {3 * d});
    b.attn_proj_weight = read(p + "attn.c_proj.weight", {d, d});
    b.attn_proj_bias = read(p + "attn.c_proj.bias", {d});
    b.c_fc_weight = read(p + "mlp.c_fc.weight", {d, 4 * d});
    b.c_fc_bias = read(p + "mlp.c_fc.bias", {4 * d});
    b.mlp_proj_weight = read(p + "mlp.c_proj.weight", {4 * d, d});
    b.mlp_proj_bias = read(p + "mlp.c_proj.bias", {d});
  }
  folded.unembed_weight = read("unembed.weight", {d, V});
  folded.unembed_bias = read("unembed.bias", {V});
  const auto expected = folded_tensors(folded).size();
  if (reader.size() != expected) {
    for (const auto& name : reader.names()) {
      bool known = false;
      for (const auto& [n, t] : folded_tensors(folded)) known = known || n == name;
      if (!known)
        fail("{}: unexpected tensor '{}' (a folded model has no LayerNorm or other extra tensors)",
             reader.path(), name);
    }
  }
  return folded;
}

}  // namespace lnfree::io
