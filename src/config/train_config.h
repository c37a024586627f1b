// The typed configuration of one training run (pretraining, fine-tuning or LN removal). Every
// section and field is declared once below, with its default and its help text (config/field_list.h);
// the config engine (config/fields.h) reads, overrides (`--set section.key=value`) and writes it from
// these lists, and `lnfree config --doc` generates docs/config.md from them. A config file is TOML:
//
//   [run] [model] [data] [optim] [ln] [schedule.<kind>] [eval] [checkpoint] [log] [dist]
//
// Unknown sections or keys, and values of the wrong type, are errors that name the file, the field
// and what was expected. Relative paths are kept as written and resolved against the working
// directory of the process that runs the config.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/field_list.h"
#include "config/removal_kind.h"
#include "config/train_enums.h"

namespace lnfree::config {

// [run]
struct RunConfig {
  RunMode mode = RunMode::kPretrain;  // required: the value here is never used
  std::int64_t seed = 1337;
  std::string init;
  Device device = Device::kCpu;
  std::int64_t threads = 0;
  Precision precision = Precision::kFp32;
  RunNorm norm = RunNorm::kKeep;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit(
        "mode", s.mode,
        "`\"pretrain\"`: random initialisation of the shape named by `init`. `\"finetune\"`: train every "
        "parameter with real LayerNorms (the vanilla control). `\"remove-ln\"`: fine-tune while `[schedule]` "
        "turns every LN fake.",
        kRequired);
    visit("seed", s.seed,
          "seeds everything random in the run: initialisation (pretrain), data order, dropout");
    visit("init", s.init,
          "model source, as for `lnfree info --model`: a Hugging Face folder (config.json + "
          "model.safetensors), a `.toml` shape file, or a name in `configs/models` (gpt2, gpt2-medium, ...). "
          "finetune and remove-ln need weights; pretrain uses only the shape.",
          kRequired);
    visit("device", s.device, "where the run computes");
    visit("threads", s.threads, "LibTorch intra-op threads; 0 = LibTorch's default");
    visit(
        "precision", s.precision,
        "`\"fp32\"`: everything in fp32. `\"tf32\"` (CUDA only): fp32 tensors, matmuls on TF32 tensor cores. "
        "`\"bf16\"` (CUDA only): fp32 master weights and optimizer state with matmuls under bf16 autocast "
        "(the reference trains pure bf16, spec §1.9 and §5.1), interval evaluations under autocast too, the "
        "final full evaluation in fp32. FakeLN σ and centring stay fp32 in all three.");
    visit("norm", s.norm,
          "the normaliser the run trains with. `\"keep\"`: the model's own (LayerNorm for GPT-2, RMSNorm for "
          "an RMSNorm model). `\"rmsnorm\"` on a Pre-LN model: every LayerNorm becomes an RMSNorm and every "
          "write to the residual stream is centred inside the forward (the tied embedding stays tied), so "
          "the run is the Pre-LN run in exact arithmetic (Jiang et al.; docs/normalization.md); needs "
          "`model.dropout = 0`. An RMSNorm model stays as it is. `\"layernorm\"` refuses an RMSNorm model.");
  }
};

// [model]
struct ModelConfig {
  double dropout = 0.0;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("dropout", s.dropout,
          "embedding, attention and residual dropout probability, in [0, 1). The reference keeps HF GPT-2's "
          "0.1 active while fine-tuning (spec §2).");
  }
};

// [data]
struct DataConfig {
  std::string train;
  std::string train_split = "train";
  std::int64_t seq_len = 1024;
  std::int64_t micro_batch = 0;  // required
  std::int64_t tokens_per_step = 524288;
  std::int64_t steps = 0;  // required
  std::string vocab_remap;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("train", s.train, "token `manifest.json` written by `lnfree prepare`", kRequired);
    visit("train_split", s.train_split, "split of that manifest to train on");
    visit("seq_len", s.seq_len, "tokens per training sequence (T)");
    visit("micro_batch", s.micro_batch, "sequences per rank (GPU) per forward/backward pass", kRequired);
    visit(
        "tokens_per_step", s.tokens_per_step,
        "tokens per optimizer step over all ranks. `tokens_per_step / seq_len` must be a whole number and a "
        "multiple of `micro_batch`. Gradient accumulation = sequences / (`micro_batch` × world size); the "
        "run refuses to start when this is not a whole number.");
    visit("steps", s.steps, "optimizer steps to run; step indices are 0 … steps−1", kRequired);
    visit("vocab_remap", s.vocab_remap, "optional vocabulary remapping file; empty = none");
  }
};

// [optim]
struct OptimConfig {
  double lr = 6e-4;
  double min_lr = 3e-4;
  std::int64_t warmup = 100;
  std::int64_t cosine_steps = 0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  DecayRule decay = DecayRule::kMatrices;
  double grad_clip = 1.0;
  OnDivergence on_divergence = OnDivergence::kStop;
  double rollback_lr_factor = 0.5;
  std::int64_t max_rollbacks = 3;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("lr", s.lr, "peak learning rate, reached at the end of warmup; must be ≥ `min_lr`");
    visit("min_lr", s.min_lr, "learning rate at the end of the cosine; must be ≥ 0");
    visit("warmup", s.warmup,
          "linear warmup steps: lr(t) = lr · t / warmup for t < warmup; must be < `data.steps`");
    visit("cosine_steps", s.cosine_steps,
          "length of the cosine (the reference's `max_steps`). 0 = `data.steps`; otherwise it must be ≥ "
          "`data.steps`. Lets a run stop mid-schedule, as the released large (600 of 1200) and XL (800 of "
          "1200) models did.");
    visit("beta1", s.beta1, "Adam β1, in [0, 1)");
    visit("beta2", s.beta2, "Adam β2, in [0, 1)");
    visit("eps", s.eps, "Adam ε, > 0");
    visit("weight_decay", s.weight_decay, "decoupled (AdamW) weight decay");
    visit(
        "decay", s.decay,
        "which parameters decay. `\"matrices\"`: 2-D weights only, embeddings included. `\"paper\"`: the "
        "reference's behaviour (spec §5.1, §9.11): biases never decay; LN γ decay in remove-ln runs, every γ "
        "from step 0 whether its LN is still real or not (there every LN is a FakeLayerNorm, which is not an "
        "nn.LayerNorm), and never in pretrain/finetune runs (nn.LayerNorm is excluded).");
    visit("grad_clip", s.grad_clip, "global L2 gradient-norm clip; 0 = none");
    visit(
        "on_divergence", s.on_divergence,
        "what a non-finite loss or gradient norm does (it is flagged on the device every step and read at "
        "log "
        "steps and before every checkpoint). `\"stop\"`: the run ends with status `diverged` and a "
        "`DIVERGED` "
        "file. `\"rollback\"`: the run goes back to its newest complete checkpoint (it writes one at step 0 "
        "when it has none), multiplies the learning rate by `rollback_lr_factor` from there on, records the "
        "rollback in run.h5's `/rollbacks`, and continues.");
    visit("rollback_lr_factor", s.rollback_lr_factor,
          "learning-rate factor of each rollback, in (0, 1); factors of successive rollbacks multiply");
    visit("max_rollbacks", s.max_rollbacks,
          "rollbacks a run may make (≥ 1); the divergence after the last one stops the run as `diverged`");
  }
};

// [ln]
struct LnConfig {
  double momentum = 0.9;
  std::int64_t momentum_sequences = 32;
  std::string sigma_init;
  QkSigma qk_sigma = QkSigma::kShared;
  bool eot_special = false;
  bool bos_special = false;
  double aux_weight = 0.0;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("momentum", s.momentum,
          "EMA retention m of the running σ per `momentum_sequences` sequences, in [0, 1). One EMA step per "
          "optimizer step of S sequences, at its end: σ ← r·σ + (1−r)·(mean per-token std over all of the "
          "step's tokens, pooled over every micro-batch of every rank) with r = m^(S / "
          "`momentum_sequences`) (computed in one place, `config::ln_retention_per_step`), so that the "
          "micro-batch size and the number of ranks do not change σ (`tests/train/test_momentum.py`, "
          "docs/training.md). 0 = current step only. The reference: 0.9 per 32-sequence micro-batch, one "
          "EMA step per micro-batch.");
    visit(
        "momentum_sequences", s.momentum_sequences,
        "the sequences `momentum` is the retention of: 32 is the reference's \"0.9 per 32 sequences\" (its "
        "large and XL configs: 0.9^(28/32), 0.9^(18/32) per micro-batch). A config whose momentum was meant "
        "per micro-batch sets its micro-batch here (the tiny configs; the reference's medium, 22), so that "
        "σ keeps the reference's horizon in sequences.");
    visit("sigma_init", s.sigma_init,
          "optional `lnfree stats` JSON with the initial σ of every LN; empty = start from the first "
          "micro-batch's statistic");
    visit(
        "qk_sigma", s.qk_sigma,
        "`\"shared\"`: ln_1's Q/K and V paths share one σ, which keeps following the EMA until the V path is "
        "removed (the reference, spec §1.5 item 4). `\"separate\"`: the Q/K σ freezes at the Q/K removal, "
        "the V σ at the V removal (the paper's wording).");
    visit("eot_special", s.eot_special,
          "ln_1's V path divides EOT rows by the position-0 σ until the `eot` event (spec §1.6; off in the "
          "paper's runs); remove-ln runs then need `[schedule.eot]`");
    visit(
        "bos_special", s.bos_special,
        "every LN divides position 0 by its own σ until the `bos` event (spec §1.6; off in the paper's runs; "
        "layer i's event: its ln_1 and ln_2; the last layer's, or a whole-model event: ln_f too); remove-ln "
        "runs then need `[schedule.bos]`");
    visit("aux_weight", s.aux_weight,
          "weight λ of the auxiliary loss on the spread of per-token std at ln_f's input (spec §4); 0 = off. "
          "The paper: 0.1 (small, medium), 0.03 (large), 0.01 (XL).");
  }
};

// One [schedule.<kind>] subtable (spec §3.1).
struct RemovalGroupConfig {
  std::int64_t start = 0;
  // Absent: one whole-model event at `start`; 0: one event per layer at `start`; g > 0: layer k at
  // start + k·g.
  std::optional<std::int64_t> gap;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("start", s.start, "step of the first event, ≥ 0 and < `data.steps`", kRequired);
    visit("gap", s.gap, "steps between the events of consecutive layers, ≥ 0 (see the table below)");
  }

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

// [eval]
struct EvalConfig {
  std::int64_t interval = 100;
  std::vector<std::string> sets;
  std::int64_t max_windows = 0;
  std::int64_t batch = 4;
  std::vector<std::string> final_sets;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("interval", s.interval,
          "evaluate every N steps and after the last step; 0 = only after the last step");
    visit("sets", s.sets,
          "evaluation sets, each `\"MANIFEST.json:SPLIT\"` (split at the last `:`); empty = no evaluation");
    visit("max_windows", s.max_windows, "windows (sequences of `data.seq_len` tokens) per set; 0 = all");
    visit("batch", s.batch, "sequences per evaluation forward");
    visit("final_sets", s.final_sets,
          "sets evaluated once more after the last step on every window, logged as `<folder>.<split>.full` "
          "(the full held-out pass, when the interval evaluations use a `max_windows` subset)");
  }
};

// [checkpoint]
struct CheckpointConfig {
  std::int64_t interval = 100;
  std::int64_t keep = 12;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("interval", s.interval, "save every N steps and after the last step; 0 = only at the end");
    visit("keep", s.keep, "number of most recent checkpoints kept on disk (≥ 1)");
  }
};

// [log]
struct LogConfig {
  std::int64_t interval = 1;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("interval", s.interval, "print and record training metrics every N steps (≥ 1)");
  }
};

// [dist]: a single process reads none of it except check_weights, which is then trivially true.
struct DistConfig {
  std::int64_t bucket_mb = 25;
  bool check_weights = false;
  std::int64_t timeout_s = 600;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit(
        "bucket_mb", s.bucket_mb,
        "gradient bucket size in MiB (2^20 bytes, ≥ 1): gradients are packed into flat buckets of about this "
        "size, each reduced by one collective (PyTorch DDP's `bucket_cap_mb`). Larger buckets use the "
        "network "
        "better, smaller ones start communication earlier in the backward pass.");
    visit("check_weights", s.check_weights,
          "debug: after every optimizer step compare a bitwise checksum of every parameter and buffer across "
          "the ranks, and stop with an error naming the first that differs from rank 0");
    visit("timeout_s", s.timeout_s,
          "seconds a GPU collective may stay unfinished before the NCCL watchdog aborts the job (a dead or "
          "hung "
          "peer otherwise blocks every other rank forever); ≥ 1");
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

  // The sections with plain fields, in canonical order ([schedule] is written after [ln]), each
  // with what it is about (docs/config.md).
  template <class Self, class Visit>
  static void plain_sections(Self& s, Visit&& visit) {
    visit("run", s.run, "What to do, from which model, where.");
    visit("model", s.model,
          "Training-time model options. Shapes never live here: they come from `configs/models/*.toml` or "
          "the Hugging Face folder named by `run.init`.");
    visit("data", s.data, "Training tokens and batch geometry.");
    visit(
        "optim", s.optim,
        "AdamW. The learning rate rises linearly for `warmup` steps, then follows a cosine from `lr` down to "
        "`min_lr` over the rest of the cosine length (the reference's `cosine_with_min_lr`, spec §5.1).");
    visit("ln", s.ln, "The removable LayerNorms (spec §1) and the auxiliary loss (spec §4).");
    visit("eval", s.eval, "Held-out cross-entropy during training.");
    visit("checkpoint", s.checkpoint, "");
    visit("log", s.log, "");
    visit("dist", s.dist,
          "Data-parallel training over several ranks started by `mpirun` or `srun` "
          "([distributed.md](distributed.md)). The world size is not a config value: the same config runs on "
          "any number of ranks that divides the batch (`data.tokens_per_step`). A single process reads none "
          "of it except `check_weights`, which is then trivially true.");
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
// The σ EMA's retention per optimizer step (one EMA step per step, from the statistic pooled over
// all of its sequences): ln.momentum ^ (sequences_per_step / ln.momentum_sequences).
double ln_retention_per_step(const TrainConfig& config);
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

// The run config's part of docs/config.md (`lnfree config --doc`): every section, key, type,
// default, allowed names and help, from the field lists above, with the prose around them.
std::string train_config_markdown();

}  // namespace lnfree::config
