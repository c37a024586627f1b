#include "model/aux_loss.h"

#include <cstdint>

#include "model/layer_norm.h"

namespace lnfree::model {

torch::Tensor aux_sigma(const torch::Tensor& residual) { return per_token_std(residual, 1e-5); }

torch::Tensor aux_sigma(const torch::Tensor& residual, const LayerNormImpl& ln_f) {
  return ln_f.per_token_statistic(residual);
}

torch::Tensor aux_target_statistics(const torch::Tensor& sigma, const torch::Tensor& ids, std::int64_t eot) {
  auto sigma64 = sigma.detach().to(torch::kDouble);  // [B, T]
  auto ordinary = ids.ne(eot);
  ordinary.select(1, 0).fill_(false);
  auto mask = ordinary.to(torch::kDouble);
  return torch::stack({(sigma64 * mask).sum(), mask.sum()});
}

torch::Tensor aux_target_from_statistics(const torch::Tensor& statistics) {
  auto sum = statistics[0], count = statistics[1];
  // Computed without a branch: no host sync.
  return torch::where(count > 0, sum / count.clamp_min(1), torch::ones_like(count)).to(torch::kFloat);
}

torch::Tensor aux_sigma_loss_against(const torch::Tensor& sigma, const torch::Tensor& target) {
  return (sigma - target.detach()).pow(2).mean();
}

namespace {
// The reference's loss: sigma against this batch's own target.
torch::Tensor loss_against_own_target(const torch::Tensor& sigma, const torch::Tensor& ids, std::int64_t eot) {
  return aux_sigma_loss_against(sigma, aux_target_from_statistics(aux_target_statistics(sigma, ids, eot)));
}
}  // namespace

torch::Tensor aux_sigma_loss(const torch::Tensor& residual, const torch::Tensor& ids, std::int64_t eot) {
  return loss_against_own_target(aux_sigma(residual), ids, eot);
}

torch::Tensor aux_sigma_loss(const torch::Tensor& residual, const LayerNormImpl& ln_f, const torch::Tensor& ids,
                             std::int64_t eot) {
  return loss_against_own_target(aux_sigma(residual, ln_f), ids, eot);
}

}  // namespace lnfree::model
