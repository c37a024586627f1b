// lnfree's own LayerNorm, removable path by path (reference spec §1).
//
// Real mode:  y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias   (biased var, last dim)
// Fake mode:  y = (x - mean(x)) / sigma * weight + bias                  (sigma a fixed scalar)
//
// Paths: kMain is ln_2, ln_f, and ln_1's Q/K path; kValue is ln_1's V path. Each path is real or
// fake on its own, so ln_1 is applied once per path.
//
// sigma: `running_sigma` is an EMA (retention `momentum`, m = 0: the current batch only) of the
// mean over all positions of the batch of the per-token std sqrt(var + 1e-5). It is updated once
// per training forward (not in eval, and once per forward even for ln_1; the reference updated in
// eval too and three times per ln_1 forward: spec §9.5). When a path is removed its sigma is frozen
// from the running value, which then includes the last micro-batch of the previous step (spec §1.5).
//
// QkSigma::kShared reproduces the paper's runs: Q/K and V share one sigma that keeps following the
// EMA after the Q/K removal and freezes only at the V removal (spec §1.5 item 4).
// QkSigma::kSeparate freezes the Q/K sigma at the Q/K removal (the paper's stated intent).
//
// Optional special sigmas (off by default, as in the paper's runs, spec §1.6): position 0 ("BOS")
// divided by its own sigma in fake mode, and EOT tokens (id 50256) in the V path divided by the
// position-0 sigma. The "eot" and "bos" schedule events switch them off.
//
// Every sigma is a 0-d fp32 tensor on the module's device: no host sync per call.
#pragma once

#include <torch/torch.h>

#include <functional>

namespace lnfree::model {

enum class LnPath { kMain, kValue };
enum class QkSigma { kShared, kSeparate };

// Per-forward context for the special sigmas: the EOT mask of the input ids ([B, T] bool), or
// undefined when no module needs it.
struct LnContext {
  torch::Tensor eot_mask;
};

class LayerNormImpl : public torch::nn::Module {
 public:
  // has_value_path: true for ln_1, whose V path can be removed separately.
  LayerNormImpl(int64_t dim, double eps, bool has_value_path = false);

  torch::Tensor forward(const torch::Tensor& x) { return forward_path(x, LnPath::kMain, {}); }
  torch::Tensor forward_path(const torch::Tensor& x, LnPath path, const LnContext& context);

  // Updates the running statistics from `x` (call once per training forward, before the paths).
  void update_statistics(const torch::Tensor& x);

  // Removal events. remove() freezes the path's sigma from the running value.
  void remove(LnPath path);
  bool is_fake(LnPath path) const { return path == LnPath::kMain ? fake_main_ : fake_value_; }
  bool has_value_path() const { return has_value_path_; }
  bool all_fake() const { return fake_main_ && (!has_value_path_ || fake_value_); }
  void disable_eot_special();
  void disable_bos_special();

  // Configuration (set before training).
  void configure(double momentum, QkSigma qk_sigma, bool eot_special, bool bos_special);
  // Sets the running and frozen sigmas (e.g. from `lnfree stats`). Without it, the first
  // statistic initialises the running value (no decay from an arbitrary start).
  void set_sigma(double average, double position0);
  // The divisor a fake path uses now (0-d tensor).
  torch::Tensor sigma(LnPath path) const;

  // Checkpointed state besides the buffers.
  struct Flags {
    bool fake_main = false, fake_value = false, eot_special = false, bos_special = false;
    bool sigma_initialised = false;  // false: the next statistic replaces the running value
  };
  Flags flags() const { return {fake_main_, fake_value_, eot_special_, bos_special_, sigma_initialised_}; }
  void set_flags(const Flags& f);

  // When set, called with every input of the main path (used by `lnfree stats`).
  std::function<void(const torch::Tensor&)> observer;

  torch::Tensor weight, bias;
  // Buffers (0-d fp32): running estimates and the frozen divisors.
  torch::Tensor running_sigma, running_sigma_pos0, sigma_main, sigma_value, sigma_pos0;
  double eps;

 private:
  torch::Tensor fake(const torch::Tensor& x, const torch::Tensor& divisor, LnPath path,
                     const LnContext& context) const;
  bool has_value_path_;
  double momentum_ = 0.9;
  QkSigma qk_sigma_ = QkSigma::kShared;
  bool fake_main_ = false, fake_value_ = false, eot_special_ = false, bos_special_ = false;
  bool sigma_initialised_ = false;
};
TORCH_MODULE(LayerNorm);

// Per-token std as LN computes it: sqrt(biased var over the last dim + eps), shape x.shape[:-1].
torch::Tensor per_token_std(const torch::Tensor& x, double eps = 1e-5);

}  // namespace lnfree::model
