// What evaluation, generation and attribution need from a trained model, whatever its form: an
// lnfree Gpt2 (real or fake LayerNorms, from a checkpoint or a Hugging Face folder) or the folded,
// LayerNorm-free export (fold.h). Every call runs in eval mode without autograd.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/gpt2_shape.h"

namespace lnfree::model {

class Gpt2;
struct FoldedGpt2;

// The final residual at one position written as a sum of named parts (residual stream
// decomposition): "embed" (token + position), then per layer l "L<l>H<h>" for each attention
// head's write z_h W_O,h, "L<l>.attn_bias" (b_O) and "L<l>.mlp". parts: [n_parts, B, d].
struct ResidualParts {
  std::vector<std::string> names;
  torch::Tensor parts;
  torch::Tensor residual;  // [B, d]: the final residual at that position, computed by residual()
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  virtual const Gpt2Shape& shape() const = 0;
  // "lnfree GPT-2 (every LayerNorm removed)", "folded LN-free GPT-2", ...
  virtual std::string kind() const = 0;
  virtual void to(const torch::Device& device) = 0;
  virtual torch::Device device() const = 0;

  // ids [B, T] -> the final residual [B, T, d] (before ln_f or the unembedding).
  virtual torch::Tensor residual(const torch::Tensor& ids) = 0;
  // residual [..., d] -> logits [..., V].
  virtual torch::Tensor logits_from_residual(const torch::Tensor& residual) = 0;
  torch::Tensor logits(const torch::Tensor& ids) { return logits_from_residual(residual(ids)); }

  // Direct logit attribution support (spec §8.1), rows n = 0..N-1:
  // the logit of token targets[n] read from residual x[n] ([N, d] -> [N]);
  virtual torch::Tensor target_logit(const torch::Tensor& x, const torch::Tensor& targets) = 0;
  // the attribution of part c[n] to that logit with the final normalisation frozen at the full
  // residual r[n] ("cached" scale; no bias terms): [N, d], [N, d] -> [N].
  virtual torch::Tensor direct_logit(const torch::Tensor& c, const torch::Tensor& r,
                                     const torch::Tensor& targets) = 0;
  // The parts of the final residual at `position` for ids [B, T].
  virtual ResidualParts residual_parts(const torch::Tensor& ids, std::int64_t position) = 0;
};

std::unique_ptr<LanguageModel> as_language_model(Gpt2 model);
std::unique_ptr<LanguageModel> as_language_model(FoldedGpt2 model);

// Shared by the implementations: head h's write at `position`, z_h W_O[h*hd:(h+1)*hd, :], for
// attention outputs z [B, H, T, hd] and c_proj's weight [d, d] ([in, out]): [H, B, d].
torch::Tensor head_writes(const torch::Tensor& z, const torch::Tensor& proj_weight, std::int64_t position);

}  // namespace lnfree::model
