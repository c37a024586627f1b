// The auxiliary loss of the reference's _aux configs (spec §4): it pulls every token's residual
// norm at ln_f's input towards the typical norm, so that a fixed ln_f sigma fits all tokens.
//   sigma_{b,s} = sqrt(biased var over d of r_{b,s} + 1e-5)   (ln_f's own per-token statistic
//                 when given: sqrt(mean r^2 + eps) for an RMSNorm ln_f)
//   target      = mean of sigma over positions s != 0 whose token is not EOT (50256), detached;
//                 1 when no position qualifies
//   L_aux       = mean over ALL positions of (sigma_{b,s} - target)^2   (times the weight, outside)
// The reference takes the target from the micro-batch itself; the trainer pools it over a whole
// optimizer step instead (train/aux_target.h), so that the micro-batch size does not change it.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "model/layer_norm.h"

namespace lnfree::model {

// residual: [B, T, d] (input of ln_f); ids: [B, T] input token ids; eot: the EOT id. Returns a 0-d
// tensor, no host sync. The target is this batch's own (the reference's definition).
torch::Tensor aux_sigma_loss(const torch::Tensor& residual, const torch::Tensor& ids,
                             std::int64_t eot = 50256);
torch::Tensor aux_sigma_loss(const torch::Tensor& residual, const LayerNormImpl& ln_f, const torch::Tensor& ids,
                             std::int64_t eot);
// The pieces, for a target pooled over several batches (the trainer's), with sigma computed once:
// sigma_{b,s} of the residual, [B, T], differentiable, fp32.
torch::Tensor aux_sigma(const torch::Tensor& residual);
// The same with ln_f's per-token statistic (its normaliser's: LayerNorm's is the one above).
torch::Tensor aux_sigma(const torch::Tensor& residual, const LayerNormImpl& ln_f);
// The loss of `sigma` against a given target (a 0-d tensor, treated as a constant).
torch::Tensor aux_sigma_loss_against(const torch::Tensor& sigma, const torch::Tensor& target);
// What the target is made of: [sum of sigma over the ordinary positions, their count], float64,
// detached. target = sum / count (1 when count is 0).
torch::Tensor aux_target_statistics(const torch::Tensor& sigma, const torch::Tensor& ids,
                                    std::int64_t eot = 50256);
// sum / count of pooled statistics ([2]), or 1 when count is 0, as a 0-d fp32 tensor; no host sync.
torch::Tensor aux_target_from_statistics(const torch::Tensor& statistics);

}  // namespace lnfree::model
