// Learning rate per optimizer step: linear warmup, then a half cosine from lr to min_lr over
// [warmup, cosine_steps) (HF's cosine_with_min_lr, reference spec §5.1):
//   t < warmup:  lr * t / warmup
//   else:        min_lr + (lr - min_lr) * (1 + cos(pi * (t - warmup) / (cosine_steps - warmup))) / 2
#pragma once

#include <cstdint>

namespace lnfree::train {

double learning_rate(std::int64_t step, double lr, double min_lr, std::int64_t warmup,
                     std::int64_t cosine_steps);

}  // namespace lnfree::train
