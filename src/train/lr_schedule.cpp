#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace lnfree::train {

double learning_rate(std::int64_t step, double lr, double min_lr, std::int64_t warmup,
                     std::int64_t cosine_steps) {
  if (step < warmup) return lr * static_cast<double>(step) / static_cast<double>(warmup);
  const double span = static_cast<double>(std::max<std::int64_t>(cosine_steps - warmup, 1));
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace lnfree::train
