// The one place where LibTorch versions differ for lnfree. Debian's CPU machines carry LibTorch
// 1.13 (no public scaled_dot_product_attention); GPU machines carry 2.x (SDPA with flash kernels).
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <limits>

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

// Turns CUDA bf16 autocast on or off for the calling thread (matmuls in bf16, fp32 master weights
// and reductions): the API moved between LibTorch 1.13 and 2.4.
inline void set_cuda_bf16_autocast(bool enabled) {
#if defined(TORCH_VERSION_MAJOR) && \
    (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
#else
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  at::autocast::set_enabled(enabled);
#endif
  if (!enabled) at::autocast::clear_cache();
}

// TF32 tensor-core matmuls and convolutions for fp32 tensors on CUDA (10-bit mantissa products,
// fp32 accumulation), process-wide; LibTorch's default is off. No effect on the CPU.
inline void set_cuda_tf32(bool enabled) {
  at::globalContext().setAllowTF32CuBLAS(enabled);
  at::globalContext().setAllowTF32CuDNN(enabled);
}

// RAII: bf16 autocast for the scope when `enabled`.
class CudaBf16Autocast {
 public:
  explicit CudaBf16Autocast(bool enabled) : enabled_(enabled) {
    if (enabled_) set_cuda_bf16_autocast(true);
  }
  ~CudaBf16Autocast() {
    if (enabled_) set_cuda_bf16_autocast(false);
  }
  CudaBf16Autocast(const CudaBf16Autocast&) = delete;
  CudaBf16Autocast& operator=(const CudaBf16Autocast&) = delete;

 private:
  bool enabled_;
};

}  // namespace lnfree::model
