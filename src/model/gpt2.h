// GPT-2 exactly as Hugging Face's GPT2LMHeadModel computes it: learned positions, pre-LN blocks,
// tanh-approximate GELU, causal attention, unembedding tied to the token embedding. The shape's
// parts vary (model/gpt2_shape.h, docs/normalization.md): the normaliser (LayerNorm, RMSNorm,
// CRMSNorm on a stream of width n_embd - 1), writes to the residual stream centred inside the
// forward (RMSNorm kept equivalent to Pre-LN while training), an untied unembedding (lm_head).
//
// Parameter names equal HF's without the "transformer." prefix ("wte.weight",
// "h.3.attn.c_attn.weight", "ln_f.bias", ...), and linear weights keep HF's Conv1D orientation
// [in, out] (y = x W + b), so checkpoints map one to one and nothing is transposed at load time.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/gpt2_shape.h"
#include "model/layer_norm.h"

namespace lnfree::model {

// HF's Conv1D: weight [in, out], bias [out]. With centre_output (a residual writer of a
// centre_writes model) it computes with W - mean_out(W) and b - mean(b), so that every output is
// zero-mean while the parameters stay raw (Jiang et al.'s LinearZeroMeanOutput): the gradients,
// AdamW and weight decay then see the Pre-LN model's parameters.
class Conv1DImpl : public torch::nn::Module {
 public:
  Conv1DImpl(int64_t in, int64_t out, bool centre_output = false);
  torch::Tensor forward(const torch::Tensor& x);
  // The weight and bias the forward uses (centred when centre_output).
  torch::Tensor effective_weight() const;
  torch::Tensor effective_bias() const;
  bool centres_output() const { return centre_output_; }
  torch::Tensor weight;
  torch::Tensor bias;

 private:
  bool centre_output_;
};
TORCH_MODULE(Conv1D);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const Gpt2Shape& shape);
  // Queries and keys read `x_qk`, values read `x_v` (both [B, T, d]).
  torch::Tensor forward(const torch::Tensor& x_qk, const torch::Tensor& x_v);
  // The heads' outputs before c_proj, z [B, H, T, hd] (forward = c_proj of z merged).
  torch::Tensor head_outputs(const torch::Tensor& x_qk, const torch::Tensor& x_v);
  Conv1D c_attn{nullptr}, c_proj{nullptr};

 private:
  int64_t n_head_, n_embd_;
  double dropout_;
  torch::Tensor causal_mask_;  // [n_positions, n_positions], true above the diagonal; not a buffer
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const Gpt2Shape& shape);
  torch::Tensor forward(const torch::Tensor& x);
  Conv1D c_fc{nullptr}, c_proj{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(Mlp);

// What a block computed, for attribution (language_model.h): the heads' outputs z [B, H, T, hd]
// and the MLP's output [B, T, d], both as added to the residual stream (before dropout).
struct BlockTrace {
  torch::Tensor heads, mlp_out;
};

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const Gpt2Shape& shape);
  torch::Tensor forward(const torch::Tensor& x, const LnContext& context = {}, BlockTrace* trace = nullptr);
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(Block);

class Gpt2Impl : public torch::nn::Module {
 public:
  explicit Gpt2Impl(const Gpt2Shape& shape);
  // ids: [B, T] int64 with T <= n_positions. Returns logits [B, T, vocab].
  torch::Tensor forward(const torch::Tensor& ids);
  // The final residual stream before ln_f: [B, T, d]. With `traces`, one BlockTrace per block.
  torch::Tensor residual(const torch::Tensor& ids, std::vector<BlockTrace>* traces = nullptr);
  // ln_f and the unembedding applied to a final residual (forward = this after residual).
  torch::Tensor logits_from_residual(const torch::Tensor& residual);
  // The token embedding sum of ids [B, T] as added to the residual stream (centred when the shape
  // centres writes), before dropout.
  torch::Tensor embed(const torch::Tensor& ids);
  // The unembedding [V, d']: wte's weight, or lm_head's when untied; its bias [V] (CRMSNorm) or an
  // undefined tensor.
  torch::Tensor unembedding_weight() const;
  torch::Tensor unembedding_bias() const;
  // Mean next-token cross-entropy of `windows` [B, T+1]: inputs [:, :T], targets [:, 1:].
  torch::Tensor loss(const torch::Tensor& windows);

  // GPT-2's initialisation (HF _init_weights): N(0, 0.02) for weights and embeddings, zero biases,
  // unit LN weights, and c_proj weights scaled by 1/sqrt(2 n_layer). Uses torch's global generator.
  void reset_parameters();

  const Gpt2Shape& shape() const { return shape_; }

  // Every LayerNorm with its name ("h.0.ln_1", "h.0.ln_2", ..., "ln_f"), in block order.
  std::vector<std::pair<std::string, LayerNorm>> layer_norms() const;
  // True when every LN path is fake: the model is then an affine map at each former LN.
  bool all_layer_norms_fake() const;

  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  LayerNorm ln_f{nullptr};
  torch::nn::Linear lm_head{nullptr};  // only when the shape's head is untied: weight [V, d'] (+ bias)
  std::vector<Block> blocks;  // the same modules as `h`, typed

 private:
  Gpt2Shape shape_;
};
TORCH_MODULE(Gpt2);

}  // namespace lnfree::model
