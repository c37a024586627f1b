// The shape of a GPT-2 model: everything needed to build one, with no LibTorch dependency so that
// configs, `lnfree info` and the study planner can use it cheaply. Shapes come from configs/
// (TOML) or a Hugging Face config.json; numbers never live in code.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/enum_names.h"

namespace lnfree::model {

// The normaliser at every norm site (docs/normalization.md):
//   layernorm  (x - mean x) / sqrt(var x + eps) * gamma + beta           (GPT-2)
//   rmsnorm    x / sqrt(mean x^2 + eps) * gamma + beta                     (Pre-RMSNorm; beta kept)
//   crmsnorm   x' / sqrt((sum x'^2 + (sum x')^2) / (d' + 1) + eps) * gamma + beta on a residual
//              stream of width d' = n_embd - 1 (Pre-CRMSNorm, Jiang et al.): inference only.
enum class NormKind { kLayerNorm, kRmsNorm, kCrmsNorm };
inline constexpr std::array<std::string_view, 3> kNormKindNames = {"layernorm", "rmsnorm", "crmsnorm"};
constexpr const auto& names_of(NormKind) { return kNormKindNames; }

// config.json marks of what transformers' GPT-2 does not compute (io/hf_gpt2.h): the normaliser
// (absent: layernorm), and whether the writers are centred inside the forward.
inline constexpr const char* kNormJsonKey = "lnfree_norm";
inline constexpr const char* kCentreWritesJsonKey = "lnfree_centre_writes";
// model_type of a GPT-2-layout folder that transformers' GPT2LMHeadModel would misread (an RMSNorm
// model whose residual stream is not zero-mean, a CRMSNorm model): lnfree reads it, transformers
// refuses it.
inline constexpr const char* kLnfreeGpt2ModelType = "lnfree-gpt2";

struct Gpt2Shape {
  std::int64_t n_layer = 0;
  std::int64_t n_embd = 0;
  std::int64_t n_head = 0;
  std::int64_t n_positions = 0;
  std::int64_t vocab_size = 0;
  double layer_norm_epsilon = 1e-5;
  double dropout = 0.0;  // embedding, attention and residual dropout (HF: embd/attn/resid_pdrop)
  NormKind norm = NormKind::kLayerNorm;
  // RMSNorm trained from a Pre-LN model (run.norm, docs/normalization.md): every write to the
  // residual stream is centred inside the forward (the embedding sum, both c_proj outputs through
  // centred weights), so that the model stays the Pre-LN function while AdamW updates raw weights.
  bool centre_writes = false;
  // False: the unembedding is its own matrix (lm_head.weight), as after a Pre-RMSNorm conversion.
  bool tie_word_embeddings = true;
  // Id of <|endoftext|> (EOT special sigma, aux-loss target). 50256 in GPT-2's vocabulary; set by
  // the trainer when a smaller vocabulary is in use (data/vocab_remap.h). Not part of configs.
  std::int64_t eot_token = 50256;

  std::int64_t head_dim() const { return n_embd / n_head; }
  // Width of the residual stream: n_embd, or n_embd - 1 for CRMSNorm (attention and MLP inner
  // widths stay n_embd).
  std::int64_t residual_width() const { return n_embd - (norm == NormKind::kCrmsNorm ? 1 : 0); }
  // Throws lnfree::Error naming `origin` and the field when a value is impossible.
  void validate(const std::string& origin) const;
};

struct ParameterCounts {
  std::int64_t total = 0;          // every trainable parameter (a tied unembedding counted once)
  std::int64_t embedding = 0;      // token + position embeddings (+ an untied unembedding)
  std::int64_t non_embedding = 0;  // total - embedding (Kaplan et al.'s N)
};
ParameterCounts count_parameters(const Gpt2Shape& shape);

// Training FLOPs per token at full context (forward + backward = 3x forward):
//   6 * (12 L d^2 + V d) for the weight matmuls incl. the unembedding,
//   + 12 L T d for attention scores and the weighted sum of values (no causal discount).
double training_flops_per_token(const Gpt2Shape& shape);

// Reads the [model] table of a TOML file. Unknown keys and missing dimensions are errors.
Gpt2Shape shape_from_toml_file(const std::string& path);
// The shape file's part of docs/config.md (`lnfree config --doc`), from its field list.
std::string shape_file_markdown();
// Reads a Hugging Face config.json (n_layer n_embd n_head n_positions vocab_size
// layer_norm_epsilon tie_word_embeddings lnfree_norm lnfree_centre_writes; dropout from resid_pdrop
// when present is ignored: lnfree's default is 0).
// eos_token_id, when present and inside the vocabulary, is the EOT id (a remapped vocabulary's).
Gpt2Shape shape_from_hf_config(const std::string& path);
// The same fields from a parsed object; `origin` names it in errors.
Gpt2Shape shape_from_hf_json(const nlohmann::json& config, const std::string& origin);
// The shape in config.json's field names (n_layer n_embd n_head n_positions vocab_size
// layer_norm_epsilon eos_token_id tie_word_embeddings, and lnfree_norm / lnfree_centre_writes when
// they are not GPT-2's): what checkpoints record so that they describe themselves.
nlohmann::json shape_to_hf_json(const Gpt2Shape& shape);
// Resolves a model name such as "gpt2-xl" to configs/models/<name>.toml.
std::string named_shape_path(const std::string& name);

}  // namespace lnfree::model
