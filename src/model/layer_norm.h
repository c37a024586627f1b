// lnfree's own LayerNorm module (not torch::nn::LayerNorm), so that LN removal can replace the
// per-token std with a fixed scalar per path (spec §1). In this form every path is real:
//   y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias,  biased variance over the last dim.
// `forward_path` exists so that ln_1 can already be applied separately for the attention's Q/K
// path and its V path; the two are identical while both are real.
#pragma once

#include <torch/torch.h>

namespace lnfree::model {

enum class LnPath { kMain, kValue };  // kMain: ln_2, ln_f and ln_1's Q/K path. kValue: ln_1's V path.

class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x) { return forward_path(x, LnPath::kMain); }
  torch::Tensor forward_path(const torch::Tensor& x, LnPath path);

  torch::Tensor weight;
  torch::Tensor bias;
  double eps;
};
TORCH_MODULE(LayerNorm);

}  // namespace lnfree::model
