// lnfree score: mean next-token cross-entropy (nats) of each line of token ids on stdin.
#include <fmt/format.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "apps/command_registry.h"
#include "io/model_instantiate.h"
#include "io/model_source.h"
#include "io/safetensors.h"
#include "util/error.h"

namespace lnfree::apps {
namespace {

struct ScoreOptions {
  std::string model;
  std::optional<std::uint64_t> random_init;
  std::string logits;
};

std::vector<std::int64_t> parse_ids(const std::string& line, std::size_t line_no, std::int64_t vocab) {
  std::vector<std::int64_t> ids;
  std::istringstream in(line);
  std::string word;
  while (in >> word) {
    std::size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || id < 0 || id >= vocab)
      fail("stdin line {}: expected token ids in [0, {}), got '{}'", line_no, vocab, word);
    ids.push_back(id);
  }
  return ids;
}

void run_score(const ScoreOptions& options) {
  auto source = io::resolve_model_source(options.model);
  auto model = io::load_language_model(source, options.random_init);
  torch::NoGradGuard no_grad;
  const auto& shape = model->shape();
  std::vector<torch::Tensor> kept;  // --logits: every line's [n - 1, V] fp32 logits
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(std::cin, line)) {
    ++line_no;
    auto ids = parse_ids(line, line_no, shape.vocab_size);
    if (ids.size() < 2) fail("stdin line {}: expected at least 2 token ids, got {}", line_no, ids.size());
    if (static_cast<std::int64_t>(ids.size()) > shape.n_positions + 1)
      fail("stdin line {}: {} ids is more than the model's context n_positions + 1 = {}", line_no, ids.size(),
           shape.n_positions + 1);
    const auto n = static_cast<std::int64_t>(ids.size());
    auto window = torch::from_blob(ids.data(), {1, n}, torch::kLong);
    using torch::indexing::Slice;
    auto logits = model->logits(window.index({Slice(), Slice(0, n - 1)}));
    double loss = torch::nn::functional::cross_entropy(logits.reshape({n - 1, -1}), window.index({0, Slice(1, n)}))
                      .item<double>();
    std::printf("%.9g\n", loss);
    if (!options.logits.empty()) kept.push_back(logits.reshape({n - 1, -1}).to(torch::kCPU, torch::kFloat).contiguous());
  }
  std::fflush(stdout);
  if (!options.logits.empty()) {
    std::vector<std::string> names;
    std::vector<io::TensorToWrite> tensors;
    for (std::size_t i = 0; i < kept.size(); ++i) names.push_back(fmt::format("line.{}", i));
    for (std::size_t i = 0; i < kept.size(); ++i)
      tensors.push_back({names[i], io::Dtype::kF32, kept[i].sizes().vec(),
                         {static_cast<const std::uint8_t*>(kept[i].data_ptr()), static_cast<std::size_t>(kept[i].nbytes())}});
    io::write_safetensors(options.logits, tensors, {});
  }
}

RegisterCommand reg("score", [](CLI::App& root) {
  auto* cmd = root.add_subcommand(
      "score", "Print the mean next-token cross-entropy (nats) of each line of token ids read from stdin");
  auto options = std::make_shared<ScoreOptions>();
  cmd->add_option("--model", options->model, io::kModelOptionHelp)->required();
  cmd->add_option("--random-init", options->random_init,
                  "Seed for a randomly initialised model when the source has no weights");
  cmd->add_option("--logits", options->logits,
                  "Also write every line's logits (F32 [n - 1, vocab], tensor \"line.<i>\" for input line i "
                  "from 0) to this safetensors file");
  cmd->footer(
      "Input: one sequence per line, space-separated token ids (at least 2, at most n_positions + 1).\n"
      "Output: one line per input line: mean cross-entropy of predicting ids[1:] from ids[:-1], in nats,\n"
      "printed with 9 significant digits (fp32 forward, eval mode, no dropout).");
  cmd->callback([options] { run_score(*options); });
});

}  // namespace
}  // namespace lnfree::apps
