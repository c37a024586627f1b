// The "affine map" form of an LN-free model (spec §6.2): once every LN path is fake, each former
// LN is y = (x - mean x) * (gamma / sigma) + beta, which folds exactly into the weights that read
// it. With the centring matrix C = I - 11^T/d and g = gamma/sigma:
//   reader y W + b   ->   W_eff = C diag(g) W,   b_eff = beta W + b
//   unembedding      ->   W_U = C diag(g_f) W_E^T (untied, [d, V]),   b_U = beta_f W_E^T
// ln_1's Q/K columns use the Q/K sigma and its V columns the V sigma. The folded forward runs no
// normalisation and no centring at all. A former RMSNorm folds without the centring: W_eff =
// diag(g) W (seed-normalization §2.1); a model that centres its writes in the forward has them
// centred in the folded weights instead, and an untied head (lm_head) replaces W_E.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/gpt2.h"

namespace lnfree::model {

struct FoldedGpt2 {
  struct Block {
    torch::Tensor c_attn_weight, c_attn_bias, attn_proj_weight, attn_proj_bias;
    torch::Tensor c_fc_weight, c_fc_bias, mlp_proj_weight, mlp_proj_bias;
  };
  torch::Tensor wte, wpe;
  std::vector<Block> blocks;
  torch::Tensor unembed_weight, unembed_bias;  // [d, V], [V]
  int64_t n_head = 0;
  Gpt2Shape shape;  // of the model it was folded from (layer_norm_epsilon is unused)

  // Logits [B, T, V] for ids [B, T]; no LayerNorm operation runs.
  torch::Tensor forward(const torch::Tensor& ids) const;
  // The final residual [B, T, d] (forward = residual W_U + b_U); with `traces`, one per block.
  torch::Tensor residual(const torch::Tensor& ids, std::vector<BlockTrace>* traces = nullptr) const;
  void to(const torch::Device& device);
};

// Throws lnfree::Error unless every LN path is fake and no special (position-0 / EOT) sigma is on.
FoldedGpt2 fold_layer_norms(Gpt2Impl& model);

}  // namespace lnfree::model
