#include "train/step_metrics.h"

#include <c10/core/impl/VirtualGuardImpl.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <utility>

#include "util/error.h"

namespace lnfree::train {

StepMetrics::StepMetrics(const torch::Device& device, int lag) : device_(device), lag_(lag) {
  if (const char* forced = std::getenv("LNFREE_DEBUG_LOG_LAG")) lag_ = std::atoi(forced);
  if (lag_ < 0) fail("LNFREE_DEBUG_LOG_LAG: expected a count of log steps >= 0, got {}", lag_);
}

void StepMetrics::push(HostFields host, const torch::Tensor& ce_sum, const torch::Tensor& aux_sum,
                       double accumulation, const torch::Tensor& grad_norm,
                       const torch::Tensor& first_nonfinite, const std::vector<torch::Tensor>& sigmas) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts{ce_sum / accumulation, aux_sum / accumulation,
                                   grad_norm.to(torch::kDouble), first_nonfinite.to(torch::kDouble)};
  for (const auto& s : sigmas) parts.push_back(s.to(torch::kDouble));
  auto values = torch::stack(parts);
  Pending p{std::move(host), {}, std::nullopt};
  if (device_.is_cuda()) {
    // Pinned memory, so that the copy is asynchronous; the event says when it has landed.
    p.values = torch::empty(values.sizes(), values.options().device(torch::kCPU).pinned_memory(true));
    p.values.copy_(values, /*non_blocking=*/true);
    const c10::impl::VirtualGuardImpl cuda(c10::DeviceType::CUDA);
    p.copied.emplace(c10::DeviceType::CUDA);
    p.copied->record(cuda.getStream(device_));
  } else {
    p.values = values;  // a new tensor (stack), which nothing later changes
  }
  pending_.push_back(std::move(p));
}

std::vector<StepMetrics::Row> StepMetrics::take(bool flush) {
  std::vector<Row> rows;
  const std::size_t keep = flush ? 0 : static_cast<std::size_t>(lag_);
  while (pending_.size() > keep) {
    Pending& p = pending_.front();
    // A lagged copy has normally landed by now; waiting here costs at most what is left of it.
    if (p.copied)
      while (!p.copied->query()) std::this_thread::sleep_for(std::chrono::microseconds(20));
    const double* v = p.values.data_ptr<double>();
    Row row{std::move(p.host), v[0], v[1], v[2], static_cast<std::int64_t>(v[3]), {}};
    row.sigmas.assign(v + 4, v + p.values.numel());
    rows.push_back(std::move(row));
    pending_.pop_front();
  }
  return rows;
}

}  // namespace lnfree::train
