#include "train/training_setup.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>

#include "io/model_instantiate.h"
#include "io/model_source.h"
#include "log/run_folder.h"
#include "model/torch_compat.h"
#include "parallel/cuda_device.h"
#include "parallel/run_guard.h"
#include "parallel/single_communicator.h"
#include "parallel/tensor_collectives.h"
#include "train/preflight.h"
#include "train/resume_check.h"
#include "train/sigma_stats.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace lnfree::train {
namespace {

// A check that every rank makes on the same inputs: its failure becomes the same error on every
// rank, and the ranks stop together instead of aborting the job.
template <class Check>
void on_every_rank(parallel::Communicator& comm, Check&& check) {
  std::string problem;
  try {
    check();
  } catch (const Error& e) {
    problem = e.what();
  }
  parallel::agree_or_fail(comm, problem);
}

std::vector<AdamW::Param> optimizer_params(model::Gpt2& model, const config::TrainConfig& cfg) {
  std::vector<AdamW::Param> params;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    const bool is_ln_weight = name.find("ln_") != std::string::npos && !is_bias;
    bool decay;
    if (cfg.optim.decay == config::DecayRule::kMatrices) {
      decay = item.value().dim() >= 2;
    } else {
      // "paper": biases never decay; LN gammas decay only in LN-removal runs, where the reference's
      // FakeLayerNorm is not an nn.LayerNorm and so is not excluded (spec §5.1, §9.11).
      decay = !is_bias && (!is_ln_weight || cfg.run.mode == config::RunMode::kRemoveLn);
    }
    params.push_back({name, item.value(), decay, {}, {}});
  }
  return params;
}

// One GPU per rank: the one the NCCL backend chose, else the same choice (parallel/cuda_device.h).
c10::DeviceIndex cuda_device_index(const parallel::Communicator& comm) {
  int index = comm.cuda_device();
  if (index < 0) {
    const auto choice = parallel::choose_cuda_device("this node", comm.local_rank(), comm.local_size(),
                                                     static_cast<int>(torch::cuda::device_count()),
                                                     std::getenv("CUDA_VISIBLE_DEVICES"));
    if (!choice.problem.empty()) fail("{}", choice.problem);
    index = choice.device;
  }
  return static_cast<c10::DeviceIndex>(index);
}

// Checks, lock and the resume decision; returns the allowed config changes of a resume.
ResumePlan check_start(TrainingSetup& run, const TrainRequest& request) {
  const auto& cfg = request.config;
  const std::string& out = run.out;
  parallel::check_ranks_agree(*run.comm, run.config_hash);
  // One writer per run folder, taken before anything there is read or written: a second training
  // into the same --out fails at once instead of overwriting config.toml or mixing checkpoints.
  on_every_rank(*run.comm, [&] {
    if (run.leader) run.lock = std::make_unique<RunLock>(out);
  });
  // --resume=auto: continue what the folder holds (rank 0 looks, under the lock), else start.
  run.resumed = request.resume;
  if (request.resume_if_any) {
    std::int64_t holds = run.leader && run_folder::holds_run(out) ? 1 : 0;
    run.resumed = run.comm->host_allreduce(holds, parallel::Reduction::kMax) != 0;
    spdlog::info("{}: --resume=auto: {}", out,
                 run.resumed ? "continuing the run there" : "nothing to resume, starting");
  }
  ResumePlan plan;
  on_every_rank(*run.comm, [&] {
    if (run.resumed) {
      plan = check_resume(out, cfg, request.allowed_changes);
    } else if (fs::exists(run_folder::log_path(out)) || run_folder::latest_checkpoint(out)) {
      fail("{}: already holds a run; pass --resume to continue it or choose another --out", out);
    }
    if (!request.allowed_changes.empty() && !run.resumed)
      fail("{}: --allow-change is for --resume (a new run has nothing to change)", out);
    preflight(cfg, run.world);
  });
  // We hold the lock, so a partial checkpoint folder of another process is a dead writer's.
  if (run.leader)
    if (const auto removed = remove_stale_partial_checkpoints(out))
      spdlog::warn("{}: removed {} partial checkpoint folder(s) left by an interrupted writer", out, removed);
  return plan;
}

void build_model(TrainingSetup& run, const std::shared_ptr<const data::VocabRemap>& remap) {
  const auto& cfg = run.config();
  auto source = io::resolve_model_source(cfg.run.init);
  source.shape.dropout = cfg.model.dropout;
  if (cfg.run.mode == config::RunMode::kPretrain) source.weights.reset();
  apply_run_norm(cfg, source.shape);
  source.shape.validate(cfg.run.init);
  if (remap) {
    source.shape.eot_token = remap->eot_id();
    // A model pretrained on remapped tokens gets the smaller vocabulary; a loaded one must have it.
    if (cfg.run.mode == config::RunMode::kPretrain) source.shape.vocab_size = remap->vocab_size();
  }
  if (!source.weights && cfg.run.mode != config::RunMode::kPretrain)
    spdlog::warn("{}: {} has no weights: {} starts from a random initialisation (seed {})", cfg.origin,
                 cfg.run.init, config::enum_name(cfg.run.mode), cfg.run.seed);
  run.model = io::instantiate_model(source, static_cast<std::uint64_t>(cfg.run.seed));
  const auto qk =
      cfg.ln.qk_sigma == config::QkSigma::kSeparate ? model::QkSigma::kSeparate : model::QkSigma::kShared;
  const double retention = config::ln_retention_per_step(cfg);
  for (auto& [name, ln] : run.model->layer_norms())
    ln->configure(retention, qk, cfg.ln.eot_special && ln->has_value_path(), cfg.ln.bos_special);
  if (!cfg.ln.sigma_init.empty()) apply_sigma_init(run.model, cfg.ln.sigma_init);
  run.model->to(run.device);
  run.model->train();
}

void load_data(TrainingSetup& run, const std::shared_ptr<const data::VocabRemap>& remap) {
  const auto& cfg = run.config();
  const std::string tokenizer_hash = data::expected_tokenizer_hash(remap.get());
  auto train_split =
      data::TokenSplit::from_manifest(cfg.data.train, cfg.data.train_split, tokenizer_hash, remap);
  // Each rank reads its contiguous slice of every step's global batch (token_loader.h).
  data::LoaderConfig loader_config{
      cfg.data.seq_len, config::sequences_per_step(cfg.data),    cfg.data.micro_batch, run.rank,
      run.world,        static_cast<std::uint64_t>(cfg.run.seed)};
  run.loader = std::make_unique<data::TokenLoader>(train_split, loader_config);
  run.accumulation = run.loader->accumulation_steps();
  run.tokens_per_step = config::sequences_per_step(cfg.data) * cfg.data.seq_len;
  auto load_eval_sets = [&](const std::vector<std::string>& specs, const std::string& suffix) {
    std::vector<EvalTarget> targets;
    for (const auto& spec : specs) {
      auto set = config::parse_eval_set(spec, cfg.origin);
      targets.push_back({config::eval_set_name(set) + suffix,
                         data::TokenSplit::from_manifest(set.manifest, set.split, tokenizer_hash, remap)});
    }
    return targets;
  };
  run.eval_sets = load_eval_sets(cfg.eval.sets, "");
  run.final_eval_sets = load_eval_sets(cfg.eval.final_sets, ".full");
}

void load_resume_checkpoint(TrainingSetup& run) {
  if (auto folder = run_folder::latest_checkpoint(run.out)) {
    auto state = load_checkpoint(*folder, run.model, *run.optimizer);
    run.loader->restore(data::LoaderPosition::from_json(state.loader, *folder + "/state.json"));
    run.position = {state.step, state.tokens, state.lr_scale, state.rollbacks};
    run.aux_target.restore(state.aux_target, run.device);
    spdlog::info("resuming {} from {} (step {}, {} tokens)", run.out, *folder, state.step, state.tokens);
  } else {
    spdlog::info("resuming {}: no complete checkpoint, starting from step 0", run.out);
  }
}

}  // namespace

CheckpointState TrainingSetup::checkpoint_state(std::int64_t next_step) const {
  return CheckpointState{next_step,
                         position.tokens,
                         config_hash,
                         loader->position().to_json(),
                         position.lr_scale,
                         position.rollbacks,
                         aux_target.checkpoint_value()};
}

TrainingSetup set_up_training(const TrainRequest& request) {
  const auto& cfg = request.config;
  TrainingSetup run;
  run.cfg = &cfg;
  run.out = request.out_dir;
  run.config_hash = config::config_hash(cfg);
  run.comm = request.comm ? request.comm : std::make_shared<parallel::SingleCommunicator>();
  run.rank = run.comm->rank();
  run.world = run.comm->world_size();
  run.leader = run.rank == 0;
  const ResumePlan resume_plan = check_start(run, request);

  if (cfg.run.threads > 0) torch::set_num_threads(static_cast<int>(cfg.run.threads));
  run.device = cfg.run.device == config::Device::kCuda
                   ? torch::Device(torch::kCUDA, cuda_device_index(*run.comm))
                   : torch::Device(torch::kCPU);
  run.bf16_autocast = cfg.run.precision == config::Precision::kBf16;
  if (run.device.is_cuda()) model::set_cuda_tf32(cfg.run.precision == config::Precision::kTf32);
  torch::manual_seed(static_cast<std::uint64_t>(cfg.run.seed));

  const auto remap = data::VocabRemap::load_optional(cfg.data.vocab_remap);
  build_model(run, remap);
  load_data(run, remap);
  run.optimizer = std::make_unique<AdamW>(
      optimizer_params(run.model, cfg),
      AdamWOptions{cfg.optim.beta1, cfg.optim.beta2, cfg.optim.eps, cfg.optim.weight_decay});
  run.removal = std::make_unique<RemovalEvents>(config::RemovalSchedule::of(cfg, run.model->shape().n_layer));
  if (run.resumed) load_resume_checkpoint(run);

  // Data parallelism: every rank starts from rank 0's weights and LN state, and gradients are
  // averaged over the ranks in buckets (GPUs: launched during the last backward of each step).
  parallel::broadcast_module_state(*run.comm, *run.model);
  std::vector<torch::Tensor> params;
  for (const auto& p : run.optimizer->params()) params.push_back(p.value);
  run.reducer = parallel::GradientReducer::for_training(params, *run.comm, cfg.dist.bucket_mb << 20);
  if (run.world > 1)
    spdlog::info(
        "{} ranks ({} backend), {} micro-batches per rank per step, {} gradient buckets of <= {} MiB",
        run.world, run.comm->backend(), run.accumulation, run.reducer->bucket_count(), cfg.dist.bucket_mb);

  // Everything is validated: only now does the run folder get its config (a failed start writes
  // nothing but the lock file).
  if (run.leader) {
    if (!run.resumed) write_file_atomically(run_folder::config_path(run.out), config::to_canonical_toml(cfg));
    for (const auto& change : resume_plan.changes)
      spdlog::warn("{}: --allow-change {}: {} -> {} from step {} on", run.out, change.key, change.before,
                   change.after, run.position.step);
    write_config_change(run.out, cfg, resume_plan);
  }
  return run;
}

}  // namespace lnfree::train
