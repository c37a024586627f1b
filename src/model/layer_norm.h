// lnfree's own normalisation module, removable path by path (reference spec §1). Its normaliser
// (NormKind, model/gpt2_shape.h) is LayerNorm, RMSNorm or CRMSNorm; everything below about sigma,
// paths, removal and the special divisors holds for all three (docs/normalization.md).
//
// Real LayerNorm:  y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias   (biased var, last dim)
// Real RMSNorm:    y = x / sqrt(mean(x^2) + eps) * weight + bias
// Real CRMSNorm:   y = x / sqrt((sum x^2 + (sum x)^2) / (dim + 1) + eps) * weight + bias
// Fake:            y = (x - mean(x)) / sigma * weight + bias  (LayerNorm; the others: x / sigma ...)
//
// The per-token statistic that sigma tracks is the real normaliser's divisor with eps 1e-5 whatever
// the module's eps (spec §1.4): sqrt(var + 1e-5) for LayerNorm, sqrt(mean x^2 + 1e-5) for RMSNorm
// and its CRMSNorm form (seed-normalization §2.1 uses the model's eps; for GPT-2 both are 1e-5). On
// a zero-mean input the LayerNorm and RMSNorm statistics are equal, so FakeRMSNorm on a converted
// GPT-2 is FakeLN on the original.
//
// Paths: kMain is ln_2, ln_f, and ln_1's Q/K path; kValue is ln_1's V path. Each path is real or
// fake on its own, so ln_1 is applied once per path.
//
// sigma: `running_sigma` is an EMA of the per-token std sqrt(var + 1e-5), averaged over every
// token of an optimizer step: one EMA step per optimizer step (retention `retention`, set by
// configure(); 0: the current step only), from the statistic pooled over all of the step's
// sequences, whatever micro-batches and ranks they were split into (training forwards only; the
// reference updated once per micro-batch, in eval too and three times per ln_1 forward: spec §9.5,
// docs/training.md). When a path is removed its sigma is frozen from the running value, which then
// includes the whole previous step (spec §1.5).
//
// Deferred, pooled EMA (micro-batch and rank invariance). A training forward only records its
// statistics (update_statistics: the mean over its tokens); commit_statistics pools the rows of a
// whole optimizer step at its end (their mean: every micro-batch holds the same number of
// sequences) and applies one EMA step. The trainer gathers the rows of every rank first, so that W
// ranks, or one rank with any micro-batch size, apply the same EMA step to the same pooled
// statistic (equal to rounding) and every rank freezes the same sigma. Consequence: within a step
// every forward divides by the values of the step's start, also on the paths whose divisor tracks
// the running value (shared Q/K sigma after the Q/K removal); the reference's divisor moved after
// each micro-batch there.
//
// QkSigma::kShared reproduces the paper's runs: Q/K and V share one sigma that keeps following the
// EMA after the Q/K removal and freezes only at the V removal (spec §1.5 item 4).
// QkSigma::kSeparate freezes the Q/K sigma at the Q/K removal (the paper's stated intent).
//
// Optional special sigmas (off by default, as in the paper's runs, spec §1.6): position 0 ("BOS")
// divided by its own sigma in fake mode (any LN), and EOT tokens (id 50256) in ln_1's V path
// divided by the position-0 sigma. Each path has its own position-0 divisor, frozen with the
// path's average one (per path in separate-sigma mode). The "bos" event switches the position-0
// divisor off (EOT rows keep theirs, as in the reference); the "eot" event switches the EOT one off.
//
// Every sigma is a 0-d fp32 tensor on the module's device: no host sync per call.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/gpt2_shape.h"

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
  LayerNormImpl(int64_t dim, double eps, bool has_value_path = false, NormKind kind = NormKind::kLayerNorm);
  NormKind kind() const { return kind_; }
  // The per-token divisor of the real normaliser (the statistic sigma tracks), fp32, x.shape[:-1].
  torch::Tensor per_token_statistic(const torch::Tensor& x) const;

  torch::Tensor forward(const torch::Tensor& x) { return forward_path(x, LnPath::kMain, {}); }
  torch::Tensor forward_path(const torch::Tensor& x, LnPath path, const LnContext& context);

  // Records the statistics of `x` (call once per training forward, before the paths): its mean
  // per-token std and the mean std at position 0. They reach the running values at commit.
  void update_statistics(const torch::Tensor& x);
  // The rows recorded since the last commit: [n, 2] fp32 (mean std, position-0 mean std), one row
  // per training forward, on the module's device; [0, 2] when there are none.
  torch::Tensor pending_statistics() const;
  // Pools the rows of `statistics` ([n, 2]: the rows of one optimizer step, e.g. every rank's rows
  // gathered) into their mean and applies one EMA step with it, forgets the recorded rows, and lets
  // the divisors of real (and tracking) paths follow the new running value. The no-argument form
  // commits this LN's own rows.
  void commit_statistics(const torch::Tensor& statistics);
  void commit_statistics() { commit_statistics(pending_statistics()); }

  // Removal events. remove() freezes the path's sigma from the running value.
  void remove(LnPath path);
  bool is_fake(LnPath path) const { return path == LnPath::kMain ? fake_main_ : fake_value_; }
  bool has_value_path() const { return has_value_path_; }
  bool all_fake() const { return fake_main_ && (!has_value_path_ || fake_value_); }
  void disable_eot_special();
  void disable_bos_special();

  // Configuration (set before training). `retention`: the EMA's retention per commit (per
  // optimizer step; the trainer derives it from ln.momentum, config::ln_retention_per_step).
  void configure(double retention, QkSigma qk_sigma, bool eot_special, bool bos_special);
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
  // sigma_pos0 / sigma_value_pos0: the position-0 divisors of the main and the V path.
  torch::Tensor running_sigma, running_sigma_pos0, sigma_main, sigma_value, sigma_pos0, sigma_value_pos0;
  double eps;

 private:
  torch::Tensor fake(const torch::Tensor& x, const torch::Tensor& divisor, LnPath path,
                     const LnContext& context) const;
  bool has_value_path_;
  NormKind kind_;
  double retention_ = 0.9;
  QkSigma qk_sigma_ = QkSigma::kShared;
  bool fake_main_ = false, fake_value_ = false, eot_special_ = false, bos_special_ = false;
  bool sigma_initialised_ = false;
  std::vector<torch::Tensor> pending_;  // recorded rows ([2] each) since the last commit
  friend void commit_statistics(const std::vector<std::shared_ptr<LayerNormImpl>>&, const torch::Tensor&);
};
TORCH_MODULE(LayerNorm);

// Commits several LayerNorms at once: `statistics` is [n_ln, n, 2], rows i for lns[i]. The same
// result as lns[i]->commit_statistics(statistics[i]) for each i, in one vectorised EMA step.
void commit_statistics(const std::vector<std::shared_ptr<LayerNormImpl>>& lns,
                       const torch::Tensor& statistics);

// Per-token std as LN computes it: sqrt(biased var over the last dim + eps), shape x.shape[:-1].
torch::Tensor per_token_std(const torch::Tensor& x, double eps = 1e-5);
// Per-token divisor of a normaliser: per_token_std for LayerNorm, sqrt(mean x^2 + eps) for RMSNorm,
// sqrt((sum x^2 + (sum x)^2) / (dim + 1) + eps) for CRMSNorm; fp32, shape x.shape[:-1].
torch::Tensor per_token_divisor(const torch::Tensor& x, NormKind kind, double eps);

}  // namespace lnfree::model
