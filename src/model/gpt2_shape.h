// The shape of a GPT-2 model: everything needed to build one, with no LibTorch dependency so that
// configs, `lnfree info` and the study planner can use it cheaply. Shapes come from configs/
// (TOML) or a Hugging Face config.json; numbers never live in code.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace lnfree::model {

struct Gpt2Shape {
  std::int64_t n_layer = 0;
  std::int64_t n_embd = 0;
  std::int64_t n_head = 0;
  std::int64_t n_positions = 0;
  std::int64_t vocab_size = 0;
  double layer_norm_epsilon = 1e-5;
  double dropout = 0.0;  // embedding, attention and residual dropout (HF: embd/attn/resid_pdrop)
  // Id of <|endoftext|> (EOT special sigma, aux-loss target). 50256 in GPT-2's vocabulary; set by
  // the trainer when a smaller vocabulary is in use (data/vocab_remap.h). Not part of configs.
  std::int64_t eot_token = 50256;

  std::int64_t head_dim() const { return n_embd / n_head; }
  // Throws lnfree::Error naming `origin` and the field when a value is impossible.
  void validate(const std::string& origin) const;
};

struct ParameterCounts {
  std::int64_t total = 0;          // every trainable parameter (the unembedding is tied: counted once)
  std::int64_t embedding = 0;      // token + position embeddings
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
// layer_norm_epsilon; dropout from resid_pdrop when present is ignored: lnfree's default is 0).
// eos_token_id, when present and inside the vocabulary, is the EOT id (a remapped vocabulary's).
Gpt2Shape shape_from_hf_config(const std::string& path);
// The same fields from a parsed object; `origin` names it in errors.
Gpt2Shape shape_from_hf_json(const nlohmann::json& config, const std::string& origin);
// The shape in config.json's field names (n_layer n_embd n_head n_positions vocab_size
// layer_norm_epsilon eos_token_id): what checkpoints record so that they describe themselves.
nlohmann::json shape_to_hf_json(const Gpt2Shape& shape);
// Resolves a model name such as "gpt2-xl" to configs/models/<name>.toml.
std::string named_shape_path(const std::string& name);

}  // namespace lnfree::model
