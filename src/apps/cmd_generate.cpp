// lnfree generate: sample text from any model (run folder, checkpoint, HF folder, folded export).
#include <fmt/format.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "apps/command_registry.h"
#include "apps/token_text.h"
#include "data/vocab_remap.h"
#include "eval/sampling.h"
#include "io/model_instantiate.h"
#include "io/model_source.h"
#include "util/error.h"
#include "util/paths.h"

namespace lnfree::apps {
namespace {

struct GenerateOptions {
  std::string model, prompt, vocab_remap, bpe = default_bpe_dir();
  eval::SamplingOptions sampling;
  bool stop_at_eot = false;
};

void run_generate(const GenerateOptions& o) {
  auto remap = data::VocabRemap::load_optional(o.vocab_remap);
  const TokenText text(o.bpe, remap);
  auto source = io::resolve_model_source(o.model);
  auto model = io::load_language_model(source);
  auto sampling = o.sampling;
  if (o.stop_at_eot) sampling.stop_token = remap ? remap->eot_id() : 50256;
  const auto prompt = text.encode(o.prompt);
  for (auto id : prompt)
    if (id >= model->shape().vocab_size)
      fail("--prompt: token {} is outside the model's vocabulary of {} (missing --vocab-remap?)", id,
           model->shape().vocab_size);
  std::fputs(o.prompt.c_str(), stdout);
  std::fflush(stdout);
  eval::sample(*model, prompt, sampling, [&](std::int64_t id) {
    std::fputs(text.decode({static_cast<std::int32_t>(id)}).c_str(), stdout);
    std::fflush(stdout);
  });
  std::fputs("\n", stdout);
}

RegisterCommand reg("generate", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("generate", "Sample a continuation of a prompt (deterministic for a seed)");
  auto o = std::make_shared<GenerateOptions>();
  cmd->add_option("--model", o->model, io::kModelOptionHelp)->required();
  cmd->add_option("--prompt", o->prompt, "Text to continue")->required();
  cmd->add_option("--max-tokens", o->sampling.max_tokens, "Tokens to sample")->capture_default_str();
  cmd->add_option("--temperature", o->sampling.temperature, "Softmax temperature; 0 = greedy")
      ->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "Sample among the K most likely tokens; 0 = all")
      ->capture_default_str();
  cmd->add_option("--seed", o->sampling.seed, "Seed of the sampler")->capture_default_str();
  cmd->add_flag("--stop-at-eot", o->stop_at_eot, "Stop after sampling <|endoftext|>");
  cmd->add_option("--vocab-remap", o->vocab_remap,
                  "Vocabulary remap JSON (lnfree vocab) the model was trained with");
  cmd->add_option("--bpe", o->bpe, "Folder with GPT-2's encoder.json and vocab.bpe")->capture_default_str();
  cmd->footer(
      "Prints the prompt, then each sampled token as it comes. Sampling runs on the CPU with its own\n"
      "generator: the same model, prompt and options give the same text on one machine. The context is the\n"
      "last n_positions tokens; there is no KV cache (each token reruns the window).");
  cmd->callback([o] { run_generate(*o); });
});

}  // namespace
}  // namespace lnfree::apps
