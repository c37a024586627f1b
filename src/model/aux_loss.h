// The auxiliary loss of the reference's _aux configs (spec §4): it pulls every token's residual
// norm at ln_f's input towards the typical norm, so that a fixed ln_f sigma fits all tokens.
//   sigma_{b,s} = sqrt(biased var over d of r_{b,s} + 1e-5)
//   target      = mean of sigma over positions s != 0 whose token is not EOT (50256), detached;
//                 1 when no position qualifies
//   L_aux       = mean over ALL positions of (sigma_{b,s} - target)^2   (times the weight, outside)
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace lnfree::model {

// residual: [B, T, d] (input of ln_f); ids: [B, T] input token ids; eot: the EOT id. Returns a 0-d
// tensor, no host sync.
torch::Tensor aux_sigma_loss(const torch::Tensor& residual, const torch::Tensor& ids,
                             std::int64_t eot = 50256);

}  // namespace lnfree::model
