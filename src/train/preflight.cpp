#include "train/preflight.h"

#include <spdlog/spdlog.h>

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

// run.norm (docs/normalization.md): "rmsnorm" turns a Pre-LN model into the RMSNorm model that
// computes the same function with the same parameters (writes centred in the forward, head still
// tied), so the weights load unchanged and the run is the Pre-LN run in exact arithmetic.
void apply_run_norm(const config::TrainConfig& cfg, model::Gpt2Shape& shape) {
  if (shape.norm == model::NormKind::kCrmsNorm)
    fail("{}: run.init = {} is a Pre-CRMSNorm model, an inference format: train the model it was converted "
         "from (run.norm = \"rmsnorm\" trains the equivalent RMSNorm model)",
         cfg.origin, cfg.run.init);
  switch (cfg.run.norm) {
    case config::RunNorm::kKeep:
      return;
    case config::RunNorm::kLayerNorm:
      if (shape.norm != model::NormKind::kLayerNorm)
        fail("{}: field 'run.norm': \"layernorm\", but run.init = {} is an RMSNorm model (no LayerNorm "
             "model to go back to; use \"keep\")",
             cfg.origin, cfg.run.init);
      return;
    case config::RunNorm::kRmsNorm:
      if (shape.norm == model::NormKind::kLayerNorm) {
        shape.norm = model::NormKind::kRmsNorm;
        shape.centre_writes = true;
      } else if (!shape.centre_writes && !shape.tie_word_embeddings) {
        // A Pre-RMSNorm conversion: its writes are centred in the weights, and AdamW will move them
        // off zero mean. Training the Pre-LN original with run.norm keeps the equivalence.
        spdlog::warn(
            "{}: run.norm = \"rmsnorm\", but run.init = {} is an RMSNorm model already: it trains as the "
            "RMSNorm model it is, and its writes will not stay centred (train its Pre-LN original with "
            "run.norm = \"rmsnorm\" to keep the Pre-LN function)",
            cfg.origin, cfg.run.init);
      }
      return;
  }
}

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
  source.shape.dropout = cfg.model.dropout;
  apply_run_norm(cfg, source.shape);
  source.shape.validate(cfg.run.init);
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
