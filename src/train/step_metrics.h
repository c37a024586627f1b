// The training loop's per-step metrics, read back from the device without stalling it.
//
// At a log step the loop hands over what the device holds for that step (mean CE, mean aux loss,
// gradient norm, the first non-finite step so far, every σ) as one tensor; it is copied into
// pinned host memory without blocking, behind an event, and read `lag` log steps later: 1 on CUDA,
// so that the host queues the next steps while the copy waits for the device, and 0 on the CPU,
// where there is nothing to overlap. Rows come out in step order with the values an immediate read
// gives, bit for bit; `flush` (checkpoints, the last step, a stop) takes every pending row.
#pragma once

#include <torch/torch.h>

#include <c10/core/Event.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "log/run_log.h"

namespace lnfree::train {

class StepMetrics {
 public:
  // What the host knows of a log step when it is queued.
  struct HostFields {
    std::int64_t step = 0;  // index of the step just done
    std::int64_t tokens = 0;
    double lr = 0;
    double tokens_per_s = 0;
    double eta_s = 0;
    std::vector<runlog::LnPathState> states;  // fake or real, per σ column, at this step
  };
  struct Row {
    HostFields host;
    double ce = 0, aux = 0, grad_norm = 0;
    std::int64_t first_nonfinite = -1;  // the first step with a non-finite loss or norm, -1: none
    std::vector<double> sigmas;
  };

  // `lag` log steps between a push and its row; LNFREE_DEBUG_LOG_LAG overrides it (tests run the
  // CUDA path's lag on the CPU with it).
  StepMetrics(const torch::Device& device, int lag);
  static int default_lag(const torch::Device& device) { return device.is_cuda() ? 1 : 0; }

  // Queues one log step: `ce_sum` and `aux_sum` over `accumulation` micro-batches (0-d float64),
  // the gradient norm, the first non-finite step (0-d int64) and the σ values (0-d each).
  void push(HostFields host, const torch::Tensor& ce_sum, const torch::Tensor& aux_sum, double accumulation,
            const torch::Tensor& grad_norm, const torch::Tensor& first_nonfinite,
            const std::vector<torch::Tensor>& sigmas);
  // The rows that are due: all but the newest `lag` pushes, or all with `flush`; waits for their copies.
  std::vector<Row> take(bool flush);
  // Forgets pending rows (after a rollback rewinds the run).
  void clear() { pending_.clear(); }
  int lag() const { return lag_; }

 private:
  struct Pending {
    HostFields host;
    torch::Tensor values;              // host copy: [ce, aux, grad_norm, first_nonfinite, sigma...] float64
    std::optional<c10::Event> copied;  // CUDA only
  };
  torch::Device device_;
  int lag_;
  std::deque<Pending> pending_;
};

}  // namespace lnfree::train
