// The one place where LibTorch versions differ for lnfree. Debian's CPU machines carry LibTorch
// 1.13 (no public scaled_dot_product_attention); GPU machines carry 2.x (SDPA with flash kernels).
#pragma once

#include <torch/torch.h>

#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
#define LNFREE_HAS_SDPA 1
#else
#define LNFREE_HAS_SDPA 0
#endif

namespace lnfree::model {

// Causal attention over [B, heads, T, head_dim] tensors with scale 1/sqrt(head_dim).
// `causal_mask` is a [T_max, T_max] bool tensor (true = masked) used only by the written-out path.
inline torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      double dropout_p, bool training, const torch::Tensor& causal_mask) {
#if LNFREE_HAS_SDPA
  (void)causal_mask;
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, training ? dropout_p : 0.0,
                                          /*is_causal=*/true);
#else
  const int64_t T = q.size(-2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)).mul_(scale);
  scores.masked_fill_(causal_mask.index({torch::indexing::Slice(0, T), torch::indexing::Slice(0, T)}),
                      -std::numeric_limits<float>::infinity());
  auto weights = torch::softmax(scores, -1);
  if (training && dropout_p > 0) weights = torch::dropout(weights, dropout_p, true);
  return torch::matmul(weights, v);
#endif
}

}  // namespace lnfree::model
