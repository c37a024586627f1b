// Hugging Face GPT-2 checkpoints <-> model::Gpt2.
//
// A HF GPT-2 folder holds config.json (GPT2Config) and model.safetensors. Tensor names are those of
// GPT2LMHeadModel's state dict: "transformer.wte.weight", "transformer.h.0.attn.c_attn.weight",
// ... (files saved from a bare GPT2Model have no "transformer." prefix; both load). model::Gpt2's
// parameter names equal these names without the prefix, and HF's Conv1D weights are stored
// [in, out] (y = x W + b) exactly as model::Conv1D keeps them, so every tensor copies one to one:
// c_attn.weight is [n_embd, 3 n_embd] with Q, K, V side by side along the output dimension, c_fc is
// [n_embd, 4 n_embd], mlp.c_proj is [4 n_embd, n_embd]. Nothing is transposed. docs/checkpoints.md
// has the full rules.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "io/safetensors.h"
#include "model/gpt2.h"

namespace lnfree::io {

struct HfGpt2Paths {
  std::string config;   // config.json
  std::string weights;  // model.safetensors
};
// `dir_or_file` is a HF folder, or a file inside one: a *.safetensors file is the weights (with
// config.json beside it), any other file is taken as the config (with model.safetensors beside it).
HfGpt2Paths resolve_hf_gpt2_paths(const std::string& dir_or_file);

// Refuses GPT2Config settings that change what the network computes and that model::Gpt2 does not
// implement: model_type other than gpt2, an activation other than the tanh GELU ("gelu_new",
// "gelu_pytorch_tanh"), unscaled or layer-scaled attention, cross-attention, an MLP width other
// than 4 n_embd; model_type may be "gpt2" or "lnfree-gpt2" (model/gpt2_shape.h). Absent keys take HF's defaults, which are what model::Gpt2 computes.
void check_hf_gpt2_config(const std::string& config_path);

// Builds the model that config.json describes and loads its weights in F32 (F16, BF16 and F64
// tensors are converted). Refuses configs that check_hf_gpt2_config refuses, and every missing,
// unexpected or mis-shaped tensor.
model::Gpt2 load_hf_gpt2(const std::string& dir_or_file);

// Copies the weights of a HF-layout safetensors file into `model` (any device, any float dtype).
// Every parameter must be present exactly once with the model's shape; "h.<i>.attn.bias" and
// "h.<i>.attn.masked_bias" (HF's causal-mask buffers) are skipped; "lm_head.weight" is the untied
// head's parameter, and with a tied head it is accepted only when it equals wte.weight.
// Throws lnfree::Error naming the file and the tensor; on error the model may be partly loaded.
void load_weights_into(model::Gpt2& model, const std::string& safetensors_path);

// Whether transformers' GPT2LMHeadModel computes `model` (its LayerNorm equals an RMSNorm on a
// zero-mean stream): model_type "gpt2" if so, "lnfree-gpt2" (which transformers refuses) if not.
bool transformers_computes(const model::Gpt2& model);

// Writes `dir`/config.json (GPT2Config) and `dir`/model.safetensors as `save_pretrained` does:
// "transformer."-prefixed names, lm_head.weight only when the head is untied (tie_word_embeddings
// false), metadata {"format": "pt"}; the normaliser's marks (lnfree_norm, lnfree_centre_writes) and
// model_type "lnfree-gpt2" where transformers would misread the model. `dtype` is F32,
// F16 or BF16 (rounded to nearest even). Creates `dir` when needed; each file is written atomically.
// `extra_config` keys are added to config.json (transformers keeps unknown keys as attributes).
void save_hf_gpt2(const model::Gpt2& model, const std::string& dir, Dtype dtype = Dtype::kF32,
                  const nlohmann::json& extra_config = nlohmann::json::object());

}  // namespace lnfree::io
