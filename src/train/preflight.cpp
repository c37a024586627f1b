#include "train/preflight.h"

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "config/removal_schedule.h"
#include "data/token_loader.h"
#include "data/vocab_remap.h"
#include "io/model_source.h"
#include "util/error.h"

namespace lnfree::train {
namespace {

void check_fits(const data::TokenSplit& split, const model::Gpt2Shape& shape, const std::string& origin,
                const char* field) {
  if (split.vocab_size() > static_cast<std::uint32_t>(shape.vocab_size))
    fail(
        "{}: field '{}': {}: tokens need a vocabulary of {} but the model has vocab_size {} (a vocabulary "
        "remap, "
        "data.vocab_remap, maps GPT-2 ids into a smaller one)",
        origin, field, split.description(), split.vocab_size(), shape.vocab_size);
}

}  // namespace

PreflightResult preflight(const config::TrainConfig& cfg, int world, bool check_data) {
  if (cfg.run.precision == config::Precision::kBf16 && cfg.run.device == config::Device::kCpu)
    fail(
        "{}: field 'run.precision': \"bf16\" needs run.device = \"cuda\" (bf16 on CPU is ~20x slower than "
        "fp32; "
        "use \"fp32\")",
        cfg.origin);
  if (cfg.run.precision == config::Precision::kTf32 && cfg.run.device == config::Device::kCpu)
    fail(
        "{}: field 'run.precision': \"tf32\" needs run.device = \"cuda\" (TF32 is a GPU tensor-core mode; "
        "use "
        "\"fp32\" on the CPU)",
        cfg.origin);
  config::gradient_accumulation_steps(cfg.data, world, cfg.origin);
  PreflightResult result;
  if (!check_data) return result;

  auto source = io::resolve_model_source(cfg.run.init);
  auto remap = data::VocabRemap::load_optional(cfg.data.vocab_remap);
  if (remap && cfg.run.mode == config::RunMode::kPretrain) source.shape.vocab_size = remap->vocab_size();
  const auto& shape = source.shape;
  if (cfg.data.seq_len > shape.n_positions)
    fail("{}: field 'data.seq_len' = {} exceeds the model's n_positions = {}", cfg.origin, cfg.data.seq_len,
         shape.n_positions);

  result.shape = shape;
  result.removal_events =
      static_cast<std::int64_t>(config::RemovalSchedule::of(cfg, shape.n_layer).events().size());

  if (cfg.run.device != config::Device::kCpu && !torch::cuda::is_available())
    fail("{}: field 'run.device': '{}' requested but CUDA is not available in this build", cfg.origin,
         config::enum_name(cfg.run.device));
  const std::string tokenizer_hash = data::expected_tokenizer_hash(remap.get());
  check_fits(*data::TokenSplit::from_manifest(cfg.data.train, cfg.data.train_split, tokenizer_hash, remap),
             shape, cfg.origin, "data.train");
  for (const auto* specs : {&cfg.eval.sets, &cfg.eval.final_sets})
    for (const auto& spec : *specs) {
      auto set = config::parse_eval_set(spec, cfg.origin);
      auto split = data::TokenSplit::from_manifest(set.manifest, set.split, tokenizer_hash, remap);
      check_fits(*split, shape, cfg.origin, specs == &cfg.eval.sets ? "eval.sets" : "eval.final_sets");
      if (split->window_count(cfg.data.seq_len) == 0)
        fail("{}: field 'eval.sets': {} has fewer than data.seq_len + 1 = {} tokens: no evaluation window",
             cfg.origin, split->description(), cfg.data.seq_len + 1);
    }
  return result;
}

}  // namespace lnfree::train
