// lnfree init: write a randomly initialised GPT-2 of a given shape as a Hugging Face folder (an
// RMSNorm one as an lnfree-gpt2 folder: transformers' GPT-2 would compute LayerNorm instead).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "apps/command_registry.h"
#include "io/hf_gpt2.h"
#include "io/model_instantiate.h"
#include "io/model_source.h"
#include "util/error.h"

namespace lnfree::apps {
namespace {

struct InitOptions {
  std::string model;
  std::uint64_t seed = 0;
  std::string out;
  std::string norm;
};

RegisterCommand reg("init", [](CLI::App& root) {
  auto* cmd = root.add_subcommand(
      "init", "Write a randomly initialised GPT-2 (GPT-2's own initialisation) as a Hugging Face folder");
  auto options = std::make_shared<InitOptions>();
  cmd->add_option("--model", options->model, io::kModelOptionHelp)->required();
  cmd->add_option("--seed", options->seed, "Seed of the initialisation")->required();
  cmd->add_option("--out", options->out, "Output folder: config.json + model.safetensors (F32)")->required();
  cmd->add_option("--norm", options->norm,
                  "layernorm or rmsnorm: the normaliser, replacing the shape's (an RMSNorm model trained from "
                  "scratch is Llama-style: its writes are not centred; docs/normalization.md)");
  cmd->callback([options] {
    auto source = io::resolve_model_source(options->model);
    source.weights.reset();  // always a fresh initialisation of the shape
    if (!options->norm.empty()) {
      const auto norm = config::parse_enum<model::NormKind>(options->norm);
      if (!norm || *norm == model::NormKind::kCrmsNorm)
        fail("--norm: expected layernorm or rmsnorm, got '{}'", options->norm);
      source.shape.norm = *norm;
      source.shape.centre_writes = false;
    }
    auto model = io::instantiate_model(source, options->seed);
    io::save_hf_gpt2(model, options->out);
    spdlog::info("wrote {} (shape from {}, seed {})", options->out, source.shape_origin, options->seed);
  });
});

}  // namespace
}  // namespace lnfree::apps
