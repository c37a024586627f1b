// AdamW with the exact update of torch.optim.AdamW (decoupled weight decay, bias correction),
// written out so that its state is plain named tensors: checkpoints save and restore it bit for
// bit, and the data-parallel reducer can see every gradient. No host synchronisation.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace lnfree::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

class AdamW {
 public:
  struct Param {
    std::string name;
    torch::Tensor value;
    bool decay = true;
    torch::Tensor exp_avg, exp_avg_sq;  // fp32, like the (master) parameter
  };

  AdamW(std::vector<Param> params, AdamWOptions options);

  // One update with learning rate `lr` from the gradients in `.grad()`.
  void step(double lr);
  void zero_grad();
  std::int64_t steps_taken() const { return steps_; }
  void set_steps_taken(std::int64_t steps) { steps_ = steps; }

  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }

 private:
  std::vector<Param> params_;
  AdamWOptions options_;
  std::int64_t steps_ = 0;
};

// Global L2 norm of all gradients, as a 0-d tensor (no host sync); clips in place to `max_norm`
// when max_norm > 0, like torch.nn.utils.clip_grad_norm_ (coefficient min(1, max/(norm+1e-6))).
torch::Tensor clip_gradients(std::vector<AdamW::Param>& params, double max_norm);

}  // namespace lnfree::train
