// The typed configuration of one training run (pretraining, fine-tuning or LN removal). Every
// section and field is declared once below, with its default and its meaning; the parser, the
// `--set section.key=value` overrides, the canonical TOML writer and docs/config.md all follow this
// file. A config file is TOML:
//
//   [run] [model] [data] [optim] [ln] [schedule.<kind>] [eval] [checkpoint] [log] [dist]
//
// Unknown sections or keys, and values of the wrong type, are errors that name the file, the field
// and what was expected. Relative paths are kept as written and resolved against the working
// directory of the process that runs the config.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/removal_kind.h"

namespace lnfree::config {

// [run]: what to do, from which model, where.
struct RunConfig {
  // "pretrain" (random initialisation of the shape named by init), "finetune" (train every
  // parameter, LayerNorms stay real: the vanilla control) or "remove-ln" (fine-tune while the
  // [schedule] turns every LayerNorm fake). Required.
  std::string mode;
  // Seeds everything random in the run: initialisation (pretrain), data order, dropout.
  std::int64_t seed = 1337;
  // Model source, as for `lnfree info --model`: a Hugging Face folder (config.json +
  // model.safetensors), a .toml shape file, or a name from configs/models (gpt2, gpt2-medium, ...).
  // finetune and remove-ln need weights; pretrain uses only the shape. Required.
  std::string init;
  // "cpu" or "cuda".
  std::string device = "cpu";
  // CPU threads for LibTorch's intra-op pool; 0 = LibTorch's default.
  std::int64_t threads = 0;
  // "fp32": everything in fp32. "tf32": fp32 tensors, CUDA matmuls on TF32 tensor cores. "bf16":
  // fp32 master weights and optimizer state, matmuls under bf16 autocast (the reference trains pure
  // bf16, spec §1.9 and §5.1). FakeLN σ and centring stay fp32 in all three.
  std::string precision = "fp32";

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("mode", s.mode);
    visit("seed", s.seed);
    visit("init", s.init);
    visit("device", s.device);
    visit("threads", s.threads);
    visit("precision", s.precision);
  }
};

// [model]: training-time model options. Shapes come from configs/models/*.toml or the HF folder
// named by run.init, never from here.
struct ModelConfig {
  // Embedding, attention and residual dropout probability, in [0, 1). The reference keeps HF
  // GPT-2's 0.1 active while fine-tuning (spec §2).
  double dropout = 0.0;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("dropout", s.dropout);
  }
};

// [data]: training tokens and batch geometry.
struct DataConfig {
  // Token manifest.json written by `lnfree prepare`. Required.
  std::string train;
  // Split of that manifest to train on.
  std::string train_split = "train";
  // Tokens per training sequence (T).
  std::int64_t seq_len = 1024;
  // Sequences per rank per micro-step (forward/backward pass). Required.
  std::int64_t micro_batch = 0;
  // Tokens per optimizer step, over all ranks. tokens_per_step / seq_len sequences per step must
  // be a whole number and a multiple of micro_batch; gradient accumulation =
  // sequences / (micro_batch * world size), checked at run time (gradient_accumulation_steps).
  std::int64_t tokens_per_step = 524288;
  // Optimizer steps to run; step indices are 0 .. steps-1. Required.
  std::int64_t steps = 0;
  // Optional vocabulary remapping file (path); empty = none.
  std::string vocab_remap;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("train", s.train);
    visit("train_split", s.train_split);
    visit("seq_len", s.seq_len);
    visit("micro_batch", s.micro_batch);
    visit("tokens_per_step", s.tokens_per_step);
    visit("steps", s.steps);
    visit("vocab_remap", s.vocab_remap);
  }
};

// [optim]: AdamW with linear warmup then a cosine decay to min_lr (the reference's
// cosine_with_min_lr, spec §5.1).
struct OptimConfig {
  // Peak learning rate, reached at the end of warmup.
  double lr = 6e-4;
  // Learning rate at the end of the cosine (0 <= min_lr <= lr).
  double min_lr = 3e-4;
  // Linear warmup steps: lr(t) = lr * t / warmup for t < warmup. Must be < data.steps.
  std::int64_t warmup = 100;
  // Length of the cosine in steps (the reference's max_steps); 0 = data.steps. Lets a run stop
  // mid-schedule, as the released large (600 of 1200) and XL (800 of 1200) models did. Must be 0
  // or >= data.steps.
  std::int64_t cosine_steps = 0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  // Decoupled (AdamW) weight decay.
  double weight_decay = 0.01;
  // Which parameters decay. "matrices": only 2-D weights (embeddings included). "paper": the
  // reference's behaviour (spec §5.1, §9.11): biases never decay; LN γ decay in remove-ln runs,
  // every γ from step 0 whether its LN is still real or not (there every LN is a FakeLayerNorm,
  // which is not an nn.LayerNorm), and never in pretrain/finetune runs (nn.LayerNorm is excluded).
  std::string decay = "matrices";
  // Clip the global L2 gradient norm to this value; 0 = no clipping.
  double grad_clip = 1.0;
  // What a non-finite loss or gradient norm does. "stop": the run ends as diverged. "rollback": the
  // run returns to its newest complete checkpoint (one at step 0 is written for this), multiplies
  // the learning rate by rollback_lr_factor from there on, and continues; after max_rollbacks
  // rollbacks the next divergence stops it.
  std::string on_divergence = "stop";
  double rollback_lr_factor = 0.5;
  std::int64_t max_rollbacks = 3;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("lr", s.lr);
    visit("min_lr", s.min_lr);
    visit("warmup", s.warmup);
    visit("cosine_steps", s.cosine_steps);
    visit("beta1", s.beta1);
    visit("beta2", s.beta2);
    visit("eps", s.eps);
    visit("weight_decay", s.weight_decay);
    visit("decay", s.decay);
    visit("grad_clip", s.grad_clip);
    visit("on_divergence", s.on_divergence);
    visit("rollback_lr_factor", s.rollback_lr_factor);
    visit("max_rollbacks", s.max_rollbacks);
  }
};

// [ln]: the removable LayerNorms (spec §1) and the auxiliary loss (spec §4).
struct LnConfig {
  // EMA retention m of the running σ per `momentum_sequences` sequences: σ ← r·σ + (1−r)·mean
  // per-token std of the micro-batch, one step per micro-batch with r = m^(micro_batch /
  // momentum_sequences) (ln_retention_per_micro_batch), applied at the end of each optimizer step
  // for the micro-batches of every rank in global order (model/layer_norm.h). The σ horizon is then
  // a number of sequences, whatever the micro-batch size (which a GPU's memory decides). 0 = the
  // current micro-batch only. The reference: 0.9 per 32-sequence micro-batch. In [0, 1).
  double momentum = 0.9;
  // The sequences that `momentum` is the retention of: 32, the reference's micro-batch, by default.
  // A config whose momentum is meant per micro-batch sets it to data.micro_batch.
  std::int64_t momentum_sequences = 32;
  // Optional `lnfree stats` JSON with the initial σ of every LN; empty = start from the first
  // micro-batch's statistic.
  std::string sigma_init;
  // "shared": ln_1's Q/K and V paths share one σ, which keeps following the EMA until the V path
  // is removed (the reference's behaviour, spec §1.5 item 4). "separate": the Q/K σ freezes at
  // the Q/K removal, the V σ at the V removal (the paper's wording).
  std::string qk_sigma = "shared";
  // In ln_1's V path, divide EOT tokens by the position-0 σ until the "eot" event (spec §1.6;
  // off in the paper's runs). remove-ln runs with it on need a [schedule.eot].
  bool eot_special = false;
  // In every LN, divide position 0 by its own σ until the "bos" event (spec §1.6; off in the
  // paper's runs): the event of layer i ends it on h.i.ln_1 and h.i.ln_2, the last layer's (or a
  // whole-model event) on ln_f too. remove-ln runs with it on need a [schedule.bos].
  bool bos_special = false;
  // Weight λ of the auxiliary loss on the spread of per-token std at ln_f's input (spec §4);
  // 0 = off. The paper: 0.1 (small, medium), 0.03 (large), 0.01 (XL).
  double aux_weight = 0.0;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("momentum", s.momentum);
    visit("momentum_sequences", s.momentum_sequences);
    visit("sigma_init", s.sigma_init);
    visit("qk_sigma", s.qk_sigma);
    visit("eot_special", s.eot_special);
    visit("bos_special", s.bos_special);
    visit("aux_weight", s.aux_weight);
  }
};

// One [schedule.<kind>] subtable (spec §3.1).
struct RemovalGroupConfig {
  // Step of the first event (>= 0).
  std::int64_t start = 0;
  // Absent: one whole-model event at `start` (all layers at once; the only choice for lnf).
  // 0: one event per layer, all at `start`. g > 0: layer k at start + k·g.
  std::optional<std::int64_t> gap;

  bool operator==(const RemovalGroupConfig& o) const { return start == o.start && gap == o.gap; }
};

// [schedule]: one optional subtable per RemovalKind; an absent kind never happens. pretrain and
// finetune must have none; remove-ln must have ln2, ln1qk, ln1v and lnf.
struct ScheduleConfig {
  std::array<std::optional<RemovalGroupConfig>, kRemovalKindCount> groups;

  std::optional<RemovalGroupConfig>& operator[](RemovalKind k) { return groups[static_cast<std::size_t>(k)]; }
  const std::optional<RemovalGroupConfig>& operator[](RemovalKind k) const {
    return groups[static_cast<std::size_t>(k)];
  }
  bool empty() const;
};

// [eval]: held-out cross-entropy during training.
struct EvalConfig {
  // Evaluate every `interval` steps (and after the last step); 0 = only after the last step.
  std::int64_t interval = 100;
  // Evaluation sets, each "MANIFEST.json:SPLIT" (split after the last ':'); empty = no evaluation.
  std::vector<std::string> sets;
  // Windows (sequences of data.seq_len tokens) per set; 0 = all.
  std::int64_t max_windows = 0;
  // Sequences per evaluation forward.
  std::int64_t batch = 4;
  // Sets evaluated once more after the last step on every window (the full held-out pass; the
  // interval evaluations can then use a small fixed subset), logged as "<name>.full".
  std::vector<std::string> final_sets;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("interval", s.interval);
    visit("sets", s.sets);
    visit("max_windows", s.max_windows);
    visit("batch", s.batch);
    visit("final_sets", s.final_sets);
  }
};

// [checkpoint]
struct CheckpointConfig {
  // Save every `interval` steps (and after the last step); 0 = only after the last step.
  std::int64_t interval = 100;
  // Most recent checkpoints kept on disk (>= 1).
  std::int64_t keep = 12;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("interval", s.interval);
    visit("keep", s.keep);
  }
};

// [log]
struct LogConfig {
  // Print and record training metrics every `interval` steps (>= 1).
  std::int64_t interval = 1;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("interval", s.interval);
  }
};

// [dist]: data-parallel training over several ranks (docs/distributed.md). A single process reads
// none of it except check_weights, which is then trivially true.
struct DistConfig {
  // Gradient bucket size in MiB (2^20 bytes): gradients are packed into flat buckets of about this
  // size, one collective each (PyTorch DDP's bucket_cap_mb). Larger buckets use the network better,
  // smaller ones start communication earlier in the backward pass. >= 1.
  std::int64_t bucket_mb = 25;
  // Debug: after every optimizer step, compare a bitwise checksum of every parameter across ranks
  // and stop with an error naming the first parameter and rank that differ from rank 0.
  bool check_weights = false;
  // Seconds a GPU collective may stay unfinished before the job is aborted (NCCL watchdog: a dead or
  // hung peer otherwise blocks every other rank forever). >= 1.
  std::int64_t timeout_s = 600;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("bucket_mb", s.bucket_mb);
    visit("check_weights", s.check_weights);
    visit("timeout_s", s.timeout_s);
  }
};

struct TrainConfig {
  RunConfig run;
  ModelConfig model;
  DataConfig data;
  OptimConfig optim;
  LnConfig ln;
  ScheduleConfig schedule;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  LogConfig log;
  DistConfig dist;
  // Where the config came from (file path, or a caller's label); used in messages, not serialised.
  std::string origin;

  // The sections with plain fields, in canonical order ([schedule] is written after [ln]).
  template <class Self, class Visit>
  static void plain_sections(Self& s, Visit&& visit) {
    visit("run", s.run);
    visit("model", s.model);
    visit("data", s.data);
    visit("optim", s.optim);
    visit("ln", s.ln);
    visit("eval", s.eval);
    visit("checkpoint", s.checkpoint);
    visit("log", s.log);
    visit("dist", s.dist);
  }
};

// Parses TOML text (defaults for absent fields), applies `overrides` ("section.key=value", in
// order; see apply_override) and validates. `origin` names the text in messages.
TrainConfig parse_train_config(const std::string& toml_text, const std::string& origin,
                               const std::vector<std::string>& overrides = {});
// Reads, parses, overrides and validates a config file.
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Applies one override "section.key=value" (schedule: "schedule.KIND.start=N",
// "schedule.KIND.gap=N|none", "schedule.KIND=none"). The value is read as the declared type:
// int and float as TOML numbers (1e-4, 524_288), bool as true/false, string verbatim (or a quoted
// TOML string), list of strings as a TOML array or comma-separated. Does not validate.
void apply_override(TrainConfig& config, const std::string& assignment);

// Checks every value and the relations between them; throws lnfree::Error naming config.origin.
void validate(const TrainConfig& config);

// Canonical TOML: every section and field in declaration order, defaults written out, floats in
// shortest round-trip form. Parsing it gives back an equal config. This is the "resolved config"
// saved with every run.
std::string to_canonical_toml(const TrainConfig& config);
// SHA-256 (lower-case hex) of to_canonical_toml: equal configs, equal hashes.
std::string config_hash(const TrainConfig& config);

// The keys whose values differ between two configs, as "section.key" with both values
// ("optim.lr: 0.003 -> 0.002"), in canonical order; a [schedule.<kind>] present in one only shows
// as its keys with "(absent)". Empty when the hashes agree.
struct ConfigDifference {
  std::string key;  // "optim.lr", "schedule.ln2.gap"
  std::string before, after;
};
std::vector<ConfigDifference> config_differences(const TrainConfig& before, const TrainConfig& after);

// Sequences per optimizer step (tokens_per_step / seq_len).
std::int64_t sequences_per_step(const DataConfig& data);
// Micro-steps per optimizer step on each of `world_size` ranks; throws when the sequences per step
// do not split evenly into micro_batch × world_size.
std::int64_t gradient_accumulation_steps(const DataConfig& data, std::int64_t world_size,
                                         const std::string& origin);
// The σ EMA's retention per micro-batch: ln.momentum ^ (data.micro_batch / ln.momentum_sequences).
double ln_retention_per_micro_batch(const TrainConfig& config);
// Length of the cosine learning-rate schedule: optim.cosine_steps, or data.steps when 0.
std::int64_t cosine_length(const TrainConfig& config);

// One entry of eval.sets.
struct EvalSet {
  std::string manifest;
  std::string split;
};
// Splits "MANIFEST:SPLIT" at the last ':'; throws naming `origin` when either part is empty.
EvalSet parse_eval_set(const std::string& spec, const std::string& origin);
// The name a set is logged under in run.h5 (/eval/<name>): "<manifest folder>.<split>".
std::string eval_set_name(const EvalSet& set);

}  // namespace lnfree::config
