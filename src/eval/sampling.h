// Text generation from a LanguageModel: temperature and top-k sampling with its own seeded
// generator, so the same seed gives the same text on one machine.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/language_model.h"

namespace lnfree::eval {

struct SamplingOptions {
  std::int64_t max_tokens = 64;
  double temperature = 1.0;  // 0: greedy (argmax)
  std::int64_t top_k = 0;    // 0: the whole vocabulary
  std::uint64_t seed = 0;
  std::int64_t stop_token = -1;  // stop after sampling it (e.g. EOT); -1: never
};

// Appends up to max_tokens sampled ids to `prompt` (which must be non-empty) and returns the new
// ids. The context is the last n_positions tokens (no KV cache: every step reruns the window).
// `on_token` is called with each new id as it is sampled.
std::vector<std::int64_t> sample(model::LanguageModel& model, const std::vector<std::int64_t>& prompt,
                                 const SamplingOptions& options,
                                 const std::function<void(std::int64_t)>& on_token = {});

}  // namespace lnfree::eval
