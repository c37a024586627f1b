#include "model/aux_loss.h"

#include <cstdint>

#include "model/layer_norm.h"

namespace lnfree::model {

torch::Tensor aux_sigma_loss(const torch::Tensor& residual, const torch::Tensor& ids, std::int64_t eot) {
  auto sigma = per_token_std(residual, 1e-5);  // [B, T], differentiable, fp32
  auto ordinary = ids.ne(eot);
  ordinary.select(1, 0).fill_(false);
  auto mask = ordinary.to(sigma.scalar_type());
  auto count = mask.sum();
  auto detached = sigma.detach();
  // target = mean over ordinary positions, or 1 when there is none (computed without a branch).
  auto target =
      torch::where(count > 0, (detached * mask).sum() / count.clamp_min(1), torch::ones_like(count));
  return (sigma - target).pow(2).mean();
}

}  // namespace lnfree::model
