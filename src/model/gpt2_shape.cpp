#include "model/gpt2_shape.h"

#include <toml++/toml.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>

#include "config/fields.h"
#include "util/error.h"
#include "util/files.h"
#include "util/json_file.h"
#include "util/paths.h"

namespace lnfree::model {

void Gpt2Shape::validate(const std::string& origin) const {
  auto positive = [&](const char* field, std::int64_t value) {
    if (value <= 0) fail("{}: field '{}': expected a positive integer, got {}", origin, field, value);
  };
  positive("n_layer", n_layer);
  positive("n_embd", n_embd);
  positive("n_head", n_head);
  positive("n_positions", n_positions);
  positive("vocab_size", vocab_size);
  if (n_embd % n_head != 0)
    fail("{}: field 'n_head': expected a divisor of n_embd={}, got {}", origin, n_embd, n_head);
  if (!(layer_norm_epsilon > 0))
    fail("{}: field 'layer_norm_epsilon': expected > 0, got {}", origin, layer_norm_epsilon);
  if (!(dropout >= 0 && dropout < 1))
    fail("{}: field 'dropout': expected 0 <= p < 1, got {}", origin, dropout);
  if (centre_writes && norm != NormKind::kRmsNorm)
    fail("{}: field '{}': centred writes belong to an RMSNorm model, this one is {}", origin,
         kCentreWritesJsonKey, config::enum_name(norm));
  if (centre_writes && dropout > 0)
    fail(
        "{}: field 'dropout': expected 0 for an RMSNorm model that stays equivalent to its Pre-LN original "
        "(dropout on a residual write makes a centred write non-centred), got {}",
        origin, dropout);
  if (norm == NormKind::kCrmsNorm && tie_word_embeddings)
    fail("{}: field 'tie_word_embeddings': a CRMSNorm model has its own unembedding, expected false", origin);
  if (norm == NormKind::kCrmsNorm && n_embd < 2)
    fail("{}: field 'n_embd': a CRMSNorm model needs n_embd >= 2, got {}", origin, n_embd);
}

ParameterCounts count_parameters(const Gpt2Shape& s) {
  const std::int64_t d = s.n_embd, w = s.residual_width();
  // Per block: ln_1, ln_2 (2w each), c_attn (w*3d + 3d), attn c_proj (d*w + w),
  // c_fc (w*4d + 4d), mlp c_proj (4d*w + w); w = d but for CRMSNorm.
  const std::int64_t per_block =
      2 * (2 * w) + (3 * w * d + 3 * d) + (d * w + w) + (4 * w * d + 4 * d) + (4 * d * w + w);
  ParameterCounts counts;
  counts.embedding = s.vocab_size * w + s.n_positions * w;
  if (!s.tie_word_embeddings)  // lm_head (with a vocabulary bias for CRMSNorm)
    counts.embedding += s.vocab_size * w + (s.norm == NormKind::kCrmsNorm ? s.vocab_size : 0);
  counts.non_embedding = s.n_layer * per_block + 2 * w;  // + ln_f
  counts.total = counts.embedding + counts.non_embedding;
  return counts;
}

double training_flops_per_token(const Gpt2Shape& s) {
  const double L = static_cast<double>(s.n_layer), d = static_cast<double>(s.n_embd);
  const double V = static_cast<double>(s.vocab_size), T = static_cast<double>(s.n_positions);
  return 6.0 * (12.0 * L * d * d + V * d) + 12.0 * L * T * d;
}

namespace {

using config::kRequired;

// The [model] table of a shape file (configs/models/*.toml), declared once (config/field_list.h).
struct ShapeTable {
  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("n_layer", s.n_layer, "transformer blocks L", kRequired);
    visit("n_embd", s.n_embd, "residual stream width d", kRequired);
    visit("n_head", s.n_head, "attention heads; must divide `n_embd`", kRequired);
    visit("n_positions", s.n_positions, "context length: the most tokens a sequence may have", kRequired);
    visit("vocab_size", s.vocab_size, "token embeddings (50257 for GPT-2's vocabulary)", kRequired);
    visit("layer_norm_epsilon", s.layer_norm_epsilon, "ε of every LayerNorm (or RMSNorm), > 0");
    visit("norm", s.norm,
          "the normaliser of every norm site: `\"layernorm\"` (GPT-2) or `\"rmsnorm\"` (x / √(mean x² + ε) · γ "
          "+ β, Llama-style when trained from scratch; docs/normalization.md). `\"crmsnorm\"` models come "
          "only from `lnfree convert`");
    visit("dropout", s.dropout,
          "embedding, attention and residual dropout, in [0, 1); a run's `model.dropout` replaces it");
  }
};

}  // namespace

Gpt2Shape shape_from_toml_file(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    fail("{}: invalid TOML at line {}: {}", path, e.source().begin.line, e.description());
  }
  const toml::table* table = root["model"].as_table();
  if (table == nullptr) fail("{}: missing table [model]", path);
  Gpt2Shape shape;
  config::read_table<ShapeTable>(shape, *table, {path, "model", config::FieldNaming::kInTable});
  if (shape.norm == NormKind::kCrmsNorm)
    fail("{}: field 'norm': expected \"layernorm\" or \"rmsnorm\" (a CRMSNorm model comes from `lnfree convert "
         "--to pre-crmsnorm`, not from a shape file)",
         path);
  shape.validate(path);
  return shape;
}

std::string shape_file_markdown() {
  return "## Model shapes (`configs/models/*.toml`)\n\n"
         "A shape file names a GPT-2 model's dimensions in a `[model]` table; `run.init` takes its path or "
         "its "
         "name (`gpt2` for `configs/models/gpt2.toml`). Hugging Face folders carry the same numbers in "
         "`config.json`.\n\n" +
         config::fields_markdown<ShapeTable>(Gpt2Shape{});
}

Gpt2Shape shape_from_hf_config(const std::string& path) {
  return shape_from_hf_json(read_json_file(path), path);
}

Gpt2Shape shape_from_hf_json(const nlohmann::json& config, const std::string& path) {
  if (!config.is_object()) fail("{}: expected a JSON object with the model's shape", path);
  auto integer = [&](const char* field) -> std::int64_t {
    if (!config.contains(field)) fail("{}: missing field '{}'", path, field);
    if (!config[field].is_number_integer()) fail("{}: field '{}': expected an integer", path, field);
    return config[field].get<std::int64_t>();
  };
  Gpt2Shape shape;
  shape.n_layer = integer("n_layer");
  shape.n_embd = integer("n_embd");
  shape.n_head = integer("n_head");
  shape.n_positions = integer("n_positions");
  shape.vocab_size = integer("vocab_size");
  if (config.contains("layer_norm_epsilon")) {
    if (!config["layer_norm_epsilon"].is_number())
      fail("{}: field 'layer_norm_epsilon': expected a number", path);
    shape.layer_norm_epsilon = config["layer_norm_epsilon"].get<double>();
  }
  if (config.contains(kNormJsonKey)) {
    const auto& value = config[kNormJsonKey];
    const auto kind = value.is_string() ? config::parse_enum<NormKind>(value.get<std::string>()) : std::nullopt;
    if (!kind)
      fail("{}: field '{}': expected one of {}, got {}", path, kNormJsonKey, config::enum_name_list<NormKind>(),
           value.dump());
    shape.norm = *kind;
    if (shape.norm == NormKind::kCrmsNorm && config.value("model_type", "") == "gpt2")
      fail("{}: field '{}': a CRMSNorm model is not a GPT2LMHeadModel; expected model_type \"{}\"", path,
           kNormJsonKey, kLnfreeGpt2ModelType);
  }
  auto flag = [&](const char* field, bool& out) {
    if (!config.contains(field) || config[field].is_null()) return;
    if (!config[field].is_boolean()) fail("{}: field '{}': expected true or false, got {}", path, field, config[field].dump());
    out = config[field].get<bool>();
  };
  flag(kCentreWritesJsonKey, shape.centre_writes);
  flag("tie_word_embeddings", shape.tie_word_embeddings);
  // GPT-2's own configs say 50256 whatever the vocabulary; only an id inside it is an EOT id.
  if (config.contains("eos_token_id") && config["eos_token_id"].is_number_integer()) {
    const auto eos = config["eos_token_id"].get<std::int64_t>();
    if (eos >= 0 && eos < shape.vocab_size) shape.eot_token = eos;
  }
  shape.validate(path);
  return shape;
}

nlohmann::json shape_to_hf_json(const Gpt2Shape& shape) {
  nlohmann::json out = {{"n_layer", shape.n_layer},
                        {"n_embd", shape.n_embd},
                        {"n_head", shape.n_head},
                        {"n_positions", shape.n_positions},
                        {"vocab_size", shape.vocab_size},
                        {"layer_norm_epsilon", shape.layer_norm_epsilon},
                        {"eos_token_id", shape.eot_token},
                        {"tie_word_embeddings", shape.tie_word_embeddings}};
  if (shape.norm != NormKind::kLayerNorm) out[kNormJsonKey] = config::enum_name(shape.norm);
  if (shape.centre_writes) out[kCentreWritesJsonKey] = true;
  return out;
}

std::string named_shape_path(const std::string& name) {
  std::string path = default_config_dir() + "/models/" + name + ".toml";
  if (!std::filesystem::exists(path))
    fail("unknown model name '{}': expected a file {} (or a path to a model folder or .toml)", name, path);
  return path;
}

}  // namespace lnfree::model
