#include "eval/sampling.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstddef>
#include <limits>
#include <utility>

#include "util/error.h"

namespace lnfree::eval {

std::vector<std::int64_t> sample(model::LanguageModel& model, const std::vector<std::int64_t>& prompt,
                                 const SamplingOptions& o,
                                 const std::function<void(std::int64_t)>& on_token) {
  if (prompt.empty()) fail("generate: the prompt encodes to no tokens");
  if (o.temperature < 0) fail("generate: --temperature must be >= 0, got {}", o.temperature);
  if (o.top_k < 0) fail("generate: --top-k must be >= 0, got {}", o.top_k);
  const auto& shape = model.shape();
  for (auto id : prompt)
    if (id < 0 || id >= shape.vocab_size)
      fail("generate: prompt token {} is outside the model's vocabulary of {}", id, shape.vocab_size);
  // Sampling runs on the CPU with its own generator: the draw does not depend on the device.
  auto generator = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  std::vector<std::int64_t> ids = prompt, added;
  torch::NoGradGuard no_grad;
  for (std::int64_t step = 0; step < o.max_tokens; ++step) {
    const auto begin = ids.size() > static_cast<std::size_t>(shape.n_positions)
                           ? ids.size() - static_cast<std::size_t>(shape.n_positions)
                           : 0;
    std::vector<std::int64_t> window(ids.begin() + static_cast<std::ptrdiff_t>(begin), ids.end());
    auto input = torch::from_blob(window.data(), {1, static_cast<std::int64_t>(window.size())}, torch::kLong)
                     .to(model.device());
    auto logits = model.logits(input).select(1, -1).squeeze(0).to(torch::kCPU, torch::kFloat);  // [V]
    std::int64_t next = 0;
    if (o.temperature == 0) {
      next = logits.argmax().item<std::int64_t>();
    } else {
      auto scaled = logits / o.temperature;
      if (o.top_k > 0 && o.top_k < scaled.size(0)) {
        auto kth = std::get<0>(scaled.topk(o.top_k)).min();
        scaled = scaled.masked_fill(scaled < kth, -std::numeric_limits<float>::infinity());
      }
      auto probs = torch::softmax(scaled.to(torch::kDouble), -1);
      next = at::multinomial(probs, 1, false, generator).item<std::int64_t>();
    }
    ids.push_back(next);
    added.push_back(next);
    if (on_token) on_token(next);
    if (next == o.stop_token) break;
  }
  return added;
}

}  // namespace lnfree::eval
