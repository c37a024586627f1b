#include "train/trainer.h"

#include "io/export.h"
#include "io/hf_gpt2.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <optional>

#include "config/removal_schedule.h"
#include "data/deterministic_random.h"
#include "data/token_loader.h"
#include "io/model_source.h"
#include "log/run_folder.h"
#include "log/run_log.h"
#include "model/aux_loss.h"
#include "model/gpt2.h"
#include "model/torch_compat.h"
#include "parallel/cuda_device.h"
#include "parallel/gradient_reducer.h"
#include "parallel/run_guard.h"
#include "parallel/single_communicator.h"
#include "parallel/stop_signal.h"
#include "parallel/tensor_collectives.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/evaluator.h"
#include "train/lr_schedule.h"
#include "train/preflight.h"
#include "train/resume_check.h"
#include "train/sigma_stats.h"
#include "train/step_metrics.h"
#include "util/debug_kill.h"
#include "util/error.h"
#include "util/files.h"
#include "util/run_lock.h"

namespace fs = std::filesystem;

namespace lnfree::train {
namespace {

using config::RemovalKind;
using Clock = std::chrono::steady_clock;
// How often (in steps) the ranks of a multi-process run agree on a stop signal (SIGTERM/SIGUSR1/
// SIGINT): a preempted run stops at most this many steps after the signal.
constexpr std::int64_t kStopAgreementSteps = 4;

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

model::LayerNorm& ln_of(model::Gpt2& model, std::int64_t layer, bool first) {
  auto& block = model->blocks.at(static_cast<std::size_t>(layer));
  return first ? block->ln_1 : block->ln_2;
}

// Applies one schedule event to the model.
void apply_event(model::Gpt2& model, const config::RemovalEvent& event) {
  const std::int64_t n_layer = model->shape().n_layer;
  auto layers = [&](auto&& fn) {
    if (event.layer == config::kWholeModel)
      for (std::int64_t i = 0; i < n_layer; ++i) fn(i);
    else
      fn(event.layer);
  };
  switch (event.kind) {
    case RemovalKind::kLn2:
      layers([&](std::int64_t i) { ln_of(model, i, false)->remove(model::LnPath::kMain); });
      break;
    case RemovalKind::kLn1Qk:
      layers([&](std::int64_t i) { ln_of(model, i, true)->remove(model::LnPath::kMain); });
      break;
    case RemovalKind::kLn1V:
      layers([&](std::int64_t i) { ln_of(model, i, true)->remove(model::LnPath::kValue); });
      break;
    case RemovalKind::kLnf:
      model->ln_f->remove(model::LnPath::kMain);
      break;
    case RemovalKind::kEot:  // only ln_1's V path has the EOT divisor
      layers([&](std::int64_t i) { ln_of(model, i, true)->disable_eot_special(); });
      break;
    case RemovalKind::kBos:  // every LN has the position-0 divisor: the layer's two, and ln_f
      layers([&](std::int64_t i) {
        ln_of(model, i, true)->disable_bos_special();
        ln_of(model, i, false)->disable_bos_special();
      });
      if (event.layer == config::kWholeModel || event.layer == n_layer - 1)
        model->ln_f->disable_bos_special();
      break;
  }
}

// Column names of /ln/sigma: every LN's main-path sigma, plus ln_1's V-path sigma as "<name>.v".
struct SigmaColumns {
  std::vector<std::string> names;
  std::vector<std::pair<model::LayerNorm, model::LnPath>> sources;
};

SigmaColumns sigma_columns(model::Gpt2& model) {
  SigmaColumns columns;
  for (auto& [name, ln] : model->layer_norms()) {
    columns.names.push_back(name);
    columns.sources.emplace_back(ln, model::LnPath::kMain);
    if (ln->has_value_path()) {
      columns.names.push_back(name + ".v");
      columns.sources.emplace_back(ln, model::LnPath::kValue);
    }
  }
  return columns;
}

std::string format_eta(double seconds) {
  const auto s = static_cast<long long>(seconds);
  return s >= 3600 ? fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60)
                   : fmt::format("{}m{:02d}s", s / 60, s % 60);
}

struct EvalTarget {
  std::string name;
  std::shared_ptr<const data::TokenSplit> split;
};

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

// Commits the LN statistics recorded by this step's forwards (layer_norm.h, "Deferred EMA"): the
// rows of every rank in global micro-batch order, so that every rank, and a one-rank run of the same
// global batch, applies the same EMA steps and freezes the same sigma.
void commit_layer_norm_statistics(model::Gpt2& model, parallel::Communicator& comm) {
  std::vector<std::shared_ptr<model::LayerNormImpl>> lns;
  std::vector<torch::Tensor> rows;
  for (auto& [name, ln] : model->layer_norms()) {
    lns.push_back(ln.ptr());
    rows.push_back(ln->pending_statistics());
  }
  auto local = torch::stack(rows);  // [n_ln, accumulation, 2]
  if (comm.world_size() == 1) {
    model::commit_statistics(lns, local);
    return;
  }
  auto all = parallel::allgather(comm, local);  // [world, n_ln, accumulation, 2]
  model::commit_statistics(lns, all.permute({1, 0, 2, 3}).reshape({local.size(0), -1, 2}));
}

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

// The RNG seed of micro-batch `global_micro` (rank * accumulation + micro) of `step`: dropout masks
// depend on the position in the global batch only, not on the world size or on where a run resumed.
std::uint64_t micro_batch_seed(std::int64_t seed, std::int64_t step, std::int64_t global_micro) {
  return data::mix64(
      data::mix64(static_cast<std::uint64_t>(seed) ^ 0x6c6e6672656564ULL) ^
      data::mix64((static_cast<std::uint64_t>(step) << 20) + static_cast<std::uint64_t>(global_micro)));
}

}  // namespace

static Outcome run_training_into(const TrainRequest& request, std::optional<runlog::RunLog>& log) {
  const auto& cfg = request.config;
  const std::string& out = request.out_dir;
  const auto comm = request.comm ? request.comm : std::make_shared<parallel::SingleCommunicator>();
  const int rank = comm->rank(), world = comm->world_size();
  const bool leader = rank == 0;  // the one rank that writes the run folder
  const fs::path config_path = run_folder::config_path(out);
  const fs::path log_path = run_folder::log_path(out);
  const std::string hash = config::config_hash(cfg);
  parallel::check_ranks_agree(*comm, hash);
  // One writer per run folder, taken before anything there is read or written: a second training
  // into the same --out fails at once instead of overwriting config.toml or mixing checkpoints.
  std::optional<RunLock> run_lock;
  on_every_rank(*comm, [&] {
    if (leader) run_lock.emplace(out);
  });
  ResumePlan resume_plan;
  // --resume=auto: continue what the folder holds (rank 0 looks, under the lock), else start.
  bool resume = request.resume;
  if (request.resume_if_any) {
    std::int64_t holds = leader && run_folder::holds_run(out) ? 1 : 0;
    holds = comm->host_allreduce(holds, parallel::Reduction::kMax);
    resume = holds != 0;
    spdlog::info("{}: --resume=auto: {}", out,
                 resume ? "continuing the run there" : "nothing to resume, starting");
  }
  on_every_rank(*comm, [&] {
    if (resume) {
      resume_plan = check_resume(out, cfg, request.allowed_changes);
    } else if (fs::exists(log_path) || run_folder::latest_checkpoint(out)) {
      fail("{}: already holds a run; pass --resume to continue it or choose another --out", out);
    }
    if (!request.allowed_changes.empty() && !resume)
      fail("{}: --allow-change is for --resume (a new run has nothing to change)", out);
    // Model source, data, vocabulary, batch split, schedule, device (the checks of `lnfree config`).
    preflight(cfg, world);
  });
  // We hold the lock, so a partial checkpoint folder of another process is a dead writer's.
  if (leader)
    if (const auto removed = remove_stale_partial_checkpoints(out))
      spdlog::warn("{}: removed {} partial checkpoint folder(s) left by an interrupted writer", out, removed);

  if (cfg.run.threads > 0) torch::set_num_threads(static_cast<int>(cfg.run.threads));
  // One GPU per rank: the one the NCCL backend chose, else the same choice (dist/cuda_device.h).
  const torch::Device device = cfg.run.device == config::Device::kCuda
                                   ? torch::Device(torch::kCUDA, cuda_device_index(*comm))
                                   : torch::Device(torch::kCPU);
  const bool bf16_autocast = cfg.run.precision == config::Precision::kBf16;
  if (device.is_cuda()) model::set_cuda_tf32(cfg.run.precision == config::Precision::kTf32);
  torch::manual_seed(static_cast<std::uint64_t>(cfg.run.seed));

  // Model.
  auto source = io::resolve_model_source(cfg.run.init);
  source.shape.dropout = cfg.model.dropout;
  if (cfg.run.mode == config::RunMode::kPretrain) source.weights.reset();
  auto remap = data::VocabRemap::load_optional(cfg.data.vocab_remap);
  const std::string tokenizer_hash = data::expected_tokenizer_hash(remap.get());
  if (remap) {
    source.shape.eot_token = remap->eot_id();
    // A model pretrained on remapped tokens gets the smaller vocabulary; a loaded one must have it.
    if (cfg.run.mode == config::RunMode::kPretrain) source.shape.vocab_size = remap->vocab_size();
  }
  if (!source.weights && cfg.run.mode != config::RunMode::kPretrain)
    spdlog::warn("{}: {} has no weights: {} starts from a random initialisation (seed {})", cfg.origin,
                 cfg.run.init, config::enum_name(cfg.run.mode), cfg.run.seed);
  model::Gpt2 model = io::instantiate_model(source, static_cast<std::uint64_t>(cfg.run.seed));
  const auto& shape = model->shape();
  const auto qk =
      cfg.ln.qk_sigma == config::QkSigma::kSeparate ? model::QkSigma::kSeparate : model::QkSigma::kShared;
  const double retention = config::ln_retention_per_micro_batch(cfg);
  for (auto& [name, ln] : model->layer_norms())
    ln->configure(retention, qk, cfg.ln.eot_special && ln->has_value_path(), cfg.ln.bos_special);
  if (!cfg.ln.sigma_init.empty()) apply_sigma_init(model, cfg.ln.sigma_init);
  model->to(device);
  model->train();

  // Data.
  auto train_split =
      data::TokenSplit::from_manifest(cfg.data.train, cfg.data.train_split, tokenizer_hash, remap);
  // Each rank reads its contiguous slice of every step's global batch (token_loader.h).
  data::LoaderConfig loader_config{cfg.data.seq_len,
                                   config::sequences_per_step(cfg.data),
                                   cfg.data.micro_batch,
                                   rank,
                                   world,
                                   static_cast<std::uint64_t>(cfg.run.seed)};
  data::TokenLoader loader(train_split, loader_config);
  const std::int64_t accumulation = loader.accumulation_steps();
  const std::int64_t tokens_per_step = config::sequences_per_step(cfg.data) * cfg.data.seq_len;
  // Interval sets use eval.max_windows; final sets every window, once, after the last step.
  auto load_eval_sets = [&](const std::vector<std::string>& specs, const std::string& suffix) {
    std::vector<EvalTarget> targets;
    for (const auto& spec : specs) {
      auto set = config::parse_eval_set(spec, cfg.origin);
      targets.push_back({config::eval_set_name(set) + suffix,
                         data::TokenSplit::from_manifest(set.manifest, set.split, tokenizer_hash, remap)});
    }
    return targets;
  };
  const auto eval_sets = load_eval_sets(cfg.eval.sets, "");
  const auto final_eval_sets = load_eval_sets(cfg.eval.final_sets, ".full");

  AdamW optimizer(optimizer_params(model, cfg),
                  {cfg.optim.beta1, cfg.optim.beta2, cfg.optim.eps, cfg.optim.weight_decay});
  const auto schedule = config::RemovalSchedule::of(cfg, shape.n_layer);
  const auto removal_window = schedule.removal_window();

  // Resume.
  std::int64_t start_step = 0, tokens = 0;
  // optim.on_divergence = "rollback": the learning-rate factor in force and the rollbacks so far.
  double lr_scale = 1.0;
  std::int64_t rollbacks = 0;
  if (resume) {
    if (auto folder = run_folder::latest_checkpoint(out)) {
      auto state = load_checkpoint(*folder, model, optimizer);
      loader.restore(data::LoaderPosition::from_json(state.loader, *folder + "/state.json"));
      start_step = state.step;
      tokens = state.tokens;
      lr_scale = state.lr_scale;
      rollbacks = state.rollbacks;
      spdlog::info("resuming {} from {} (step {}, {} tokens)", out, *folder, start_step, tokens);
    } else {
      spdlog::info("resuming {}: no complete checkpoint, starting from step 0", out);
    }
  }

  // Data parallelism: every rank starts from rank 0's weights and LN state, and gradients are
  // averaged over the ranks in buckets (GPUs: launched during the last backward of each step).
  parallel::broadcast_module_state(*comm, *model);
  std::unique_ptr<parallel::GradientReducer> reducer;
  if (world > 1) {
    std::vector<torch::Tensor> params;
    for (const auto& p : optimizer.params()) params.push_back(p.value);
    const auto launch = comm->memory() == parallel::Memory::kCuda
                            ? parallel::GradientReducer::Launch::kDuringBackward
                            : parallel::GradientReducer::Launch::kAfterBackward;
    reducer = std::make_unique<parallel::GradientReducer>(params, *comm, cfg.dist.bucket_mb << 20, launch);
    spdlog::info(
        "{} ranks ({} backend), {} micro-batches per rank per step, {} gradient buckets of <= {} MiB", world,
        comm->backend(), accumulation, reducer->bucket_count(), cfg.dist.bucket_mb);
  }

  // Everything is validated: only now does the run folder get its config (a failed start writes
  // nothing but the lock file).
  if (leader) {
    if (!resume) write_file_atomically(config_path.string(), config::to_canonical_toml(cfg));
    for (const auto& change : resume_plan.changes)
      spdlog::warn("{}: --allow-change {}: {} -> {} from step {} on", out, change.key, change.before,
                   change.after, start_step);
    write_config_change(out, cfg, resume_plan);
  }

  // Run log.
  auto counts = model::count_parameters(shape);
  auto columns = sigma_columns(model);
  runlog::RunLogSpec spec;
  spec.path = log_path.string();
  spec.string_attributes = {{"config", config::to_canonical_toml(cfg)},
                            {"config_hash", hash},
                            {"mode", std::string(config::enum_name(cfg.run.mode))},
                            {"init", cfg.run.init}};
  spec.int_attributes = {{"n_layer", shape.n_layer},
                         {"n_embd", shape.n_embd},
                         {"n_head", shape.n_head},
                         {"n_positions", shape.n_positions},
                         {"vocab_size", shape.vocab_size},
                         {"params_total", counts.total},
                         {"params_non_embedding", counts.non_embedding},
                         {"tokens_per_step", tokens_per_step},
                         {"steps", cfg.data.steps},
                         {"world_size", world},
                         // The planned removal window (analysis/ reads it instead of the schedule).
                         {"removal_first_step", removal_window ? removal_window->first : -1},
                         {"removal_last_step", removal_window ? removal_window->second : -1}};
  for (const auto* sets : {&eval_sets, &final_eval_sets})
    for (const auto& set : *sets) spec.eval_sets.push_back(set.name);
  spec.ln_names = columns.names;
  if (leader)
    log.emplace(resume && fs::exists(log_path) ? runlog::RunLog::open_for_resume(spec, start_step)
                                               : runlog::RunLog(spec));

  spdlog::info(
      "{} run: {} ({} layers, d={}), {} steps x {} tokens ({} micro-batches of {} x {}), {} removal events",
      config::enum_name(cfg.run.mode), cfg.run.init, shape.n_layer, shape.n_embd, cfg.data.steps,
      tokens_per_step, accumulation, cfg.data.micro_batch, cfg.data.seq_len, schedule.events().size());

  // Eval rows carry the index of the last completed step, like train rows.
  // Each rank evaluates its block of the windows; the sums are combined. A bf16 run evaluates
  // under autocast at intervals and in fp32 at the end.
  auto run_eval = [&](std::int64_t step_done, bool final_pass) {
    for (const auto& set : final_pass ? final_eval_sets : eval_sets) {
      const auto totals =
          evaluate_loss_totals(model, *set.split, cfg.data.seq_len, final_pass ? 0 : cfg.eval.max_windows,
                               cfg.eval.batch, device, rank, world,
                               /*bf16_autocast=*/bf16_autocast && !final_pass);
      double sums[2] = {totals.loss_sum, static_cast<double>(totals.targets)};
      comm->host_allreduce(sums, 2, parallel::DataType::kFloat64, parallel::Reduction::kSum);
      const double loss = sums[0] / sums[1];
      if (!leader) continue;
      log->append_eval(set.name, {step_done, tokens, loss});
      spdlog::info("eval step {:>6} {:<24} loss {:.4f}", step_done, set.name, loss);
    }
  };
  // The σ of every /ln/sigma column, on the device, and whether each path is fake now.
  auto sigma_values = [&] {
    std::vector<torch::Tensor> values;
    for (auto& [ln, path] : columns.sources) values.push_back(ln->sigma(path));
    return values;
  };
  auto path_states = [&] {
    std::vector<runlog::LnPathState> states;
    for (auto& [ln, path] : columns.sources)
      states.push_back(
          {ln->is_fake(model::LnPath::kMain), ln->has_value_path() && ln->is_fake(model::LnPath::kValue)});
    return states;
  };
  StepMetrics metrics(device, StepMetrics::default_lag(device));

  std::deque<std::string> recent_events;
  // Micro-batches are read into pinned host memory on CUDA and uploaded without blocking the host; the
  // caching host allocator keeps a buffer until its copy has run, so the next read never overwrites
  // one in flight. On the CPU the rows are used where they were read.
  const auto host_rows = torch::TensorOptions().dtype(torch::kLong).pinned_memory(device.is_cuda());
  const double aux_weight = cfg.ln.aux_weight;
  auto interval_start = Clock::now();
  std::int64_t interval_tokens = 0;
  const auto run_start = Clock::now();
  const std::int64_t cosine = config::cosine_length(cfg);
  const parallel::StopSignal
      stop_signal;  // SIGUSR1/SIGTERM/SIGINT: checkpoint at the next step boundary, exit
  const DebugFault fault = debug_fault(rank);

  auto checkpoint_state = [&](std::int64_t next_step) {
    return CheckpointState{next_step, tokens, hash, loader.position().to_json(), lr_scale, rollbacks};
  };
  const bool may_roll_back = cfg.optim.on_divergence == config::OnDivergence::kRollback;
  // A rollback needs a checkpoint to return to, also before the first interval checkpoint.
  if (may_roll_back && !run_folder::latest_checkpoint(out)) {
    if (leader) save_checkpoint(out, model, optimizer, checkpoint_state(start_step), cfg.checkpoint.keep);
    comm->barrier();
  }
  // The first step whose loss or gradient norm was not finite, kept on the device (-1: none) so
  // that no step waits for the host; read at log steps and before every checkpoint, so that a
  // checkpoint never holds weights updated from a non-finite step. Returns the step to continue
  // from after a rollback; a run that does not roll back stops as diverged.
  torch::Tensor first_nonfinite =
      torch::full({}, -1, torch::TensorOptions().dtype(torch::kLong).device(device));
  auto check_divergence = [&](std::int64_t first, std::int64_t step_now) -> std::optional<std::int64_t> {
    {
      // The earliest over the ranks (-1 must lose the max: map it to the end, take the min).
      std::int64_t key = first < 0 ? cfg.data.steps : first;
      key = -comm->host_allreduce(-key, parallel::Reduction::kMax);
      first = key == cfg.data.steps ? -1 : key;
    }
    if (first < 0) return std::nullopt;
    std::string events;
    for (const auto& e : recent_events) events += "\n  " + e;
    std::string message = fmt::format(
        "diverged at step {}: non-finite loss or gradient norm (seen at the check after step {}); recent "
        "removal "
        "events:{}",
        first, step_now, events.empty() ? " none" : events);
    if (may_roll_back && rollbacks < cfg.optim.max_rollbacks) {
      // Rank 0 picks the checkpoint (the others follow it) and rewrites the run folder.
      std::int64_t target_step = leader ? rollback_target(out) : -1;
      target_step = comm->host_allreduce(target_step, parallel::Reduction::kMax);
      const std::string folder = run_folder::checkpoint_path(out, target_step);
      const auto state = load_checkpoint(folder, model, optimizer);
      loader.restore(data::LoaderPosition::from_json(state.loader, folder + "/state.json"));
      tokens = state.tokens;
      lr_scale *= cfg.optim.rollback_lr_factor;
      ++rollbacks;
      first_nonfinite.fill_(-1);
      recent_events.clear();
      metrics.clear();
      comm->barrier();  // every rank has read the folder before rank 0 rewrites it
      if (leader) {
        mark_rollback_target(out, folder, lr_scale, rollbacks);
        log.reset();  // closes run.h5; rebuilt without the rows from state.step on
        log.emplace(runlog::RunLog::open_for_resume(spec, state.step));
        log->append_rollback({state.step - 1, state.tokens, first, lr_scale, rollbacks});
      }
      spdlog::warn("{}; rolled back to {} (rollback {} of {}): step {} on with the learning rate x{:.3g}",
                   message, folder, rollbacks, cfg.optim.max_rollbacks, state.step, lr_scale);
      return state.step;
    }
    if (may_roll_back) message += fmt::format(" (after {} rollbacks, optim.max_rollbacks)", rollbacks);
    if (leader) {
      log->finish(runlog::RunStatus::kDiverged, message);
      write_file_atomically(run_folder::diverged_path(out), message + "\n");
    }
    throw parallel::CollectiveError(fmt::format("{}: {}. The last complete checkpoint is intact: {}", out,
                                                message,
                                                run_folder::latest_checkpoint(out).value_or("none")));
  };

  // Host collectives of a one-process world are no-ops (SingleCommunicator): no world-size guards.
  // One log row: losses averaged over the ranks (the gradient norm is already the same on every
  // rank), appended to run.h5 with the σ of that step, and the step line.
  auto report_row = [&](const StepMetrics::Row& row) {
    double losses[2] = {row.ce, row.aux};
    comm->host_allreduce(losses, 2, parallel::DataType::kFloat64, parallel::Reduction::kAverage);
    const double ce = losses[0], aux = losses[1];
    const auto& h = row.host;
    if (leader) {
      log->append_train(
          {h.step, h.tokens, ce + aux_weight * aux, ce, aux, h.lr, row.grad_norm, h.tokens_per_s});
      log->append_ln(h.step, row.sigmas, h.states);
    }
    spdlog::info(
        "step {:>6}/{} loss {:.4f} (ce {:.4f} aux {:.4f}) lr {:.3e} gnorm {:.3f} {:.0f} tok/s ETA {}", h.step,
        cfg.data.steps, ce + aux_weight * aux, ce, aux, h.lr, row.grad_norm, h.tokens_per_s,
        format_eta(h.eta_s));
  };

  std::int64_t step = start_step;
  while (step < cfg.data.steps) {
    if (step == fault.step) inject(fault, rank, step);
    for (const auto& event : schedule.events_at(step)) {
      apply_event(model, event);
      if (leader)
        log->append_event({step, tokens, std::string(config::removal_kind_name(event.kind)), event.layer});
      recent_events.push_back(config::describe(event));
      if (recent_events.size() > 8) recent_events.pop_front();
    }
    const double lr =
        lr_scale * learning_rate(step, cfg.optim.lr, cfg.optim.min_lr, cfg.optim.warmup, cosine);
    // float64 sums: the logged mean is then the same whether one rank adds A micro-batches or A ranks
    // add one each (float32 sums would round differently).
    torch::Tensor ce_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
    torch::Tensor aux_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
    for (std::int64_t micro = 0; micro < accumulation; ++micro) {
      if (cfg.model.dropout > 0)
        torch::manual_seed(micro_batch_seed(cfg.run.seed, step, rank * accumulation + micro));
      auto read = torch::empty({cfg.data.micro_batch, cfg.data.seq_len + 1}, host_rows);
      loader.next_micro_batch(read.data_ptr<std::int64_t>());
      auto rows = read.to(device, /*non_blocking=*/true);
      using torch::indexing::Slice;
      auto inputs = rows.index({Slice(), Slice(0, cfg.data.seq_len)});
      auto targets = rows.index({Slice(), Slice(1, torch::indexing::None)});
      torch::Tensor ce, loss;
      {
        // run.precision = "bf16": matmuls under CUDA bf16 autocast; parameters, optimizer state,
        // LayerNorm sigmas and centring stay fp32. Backward runs outside the autocast scope.
        model::CudaBf16Autocast autocast(bf16_autocast);
        auto residual = model->residual(inputs);
        auto logits = model->logits_from_residual(residual);
        ce = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}).to(torch::kFloat),
                                                  targets.reshape({-1}));
        loss = ce;
        if (aux_weight > 0) {
          auto aux = model::aux_sigma_loss(residual, inputs, shape.eot_token);
          aux_sum += aux.detach();
          loss = loss + aux_weight * aux;
        }
      }
      if (reducer && micro == accumulation - 1) reducer->arm();
      (loss / static_cast<double>(accumulation)).backward();
      ce_sum += ce.detach();
    }
    if (reducer) reducer->finish();
    commit_layer_norm_statistics(model, *comm);
    auto grad_norm = clip_gradients(optimizer.params(), cfg.optim.grad_clip);
    {
      auto bad =
          ce_sum.isfinite().logical_and(aux_sum.isfinite()).logical_and(grad_norm.isfinite()).logical_not();
      first_nonfinite = torch::where(bad.logical_and(first_nonfinite < 0),
                                     torch::full_like(first_nonfinite, step), first_nonfinite);
    }
    optimizer.step(lr);
    optimizer.zero_grad();
    tokens += tokens_per_step;
    interval_tokens += tokens_per_step;
    const std::int64_t done = step + 1;
    const bool last = done == cfg.data.steps;
    // A stop signal counts on every rank once any rank has it, so that all stop at the same step.
    // The ranks agree every kStopAgreementSteps steps: a blocking host collective every step would
    // hold each rank's host in lockstep with the slowest one's; a single process reads its flag
    // every step.
    std::int64_t signal = 0;
    if (world == 1)
      signal = stop_signal.received();
    else if (done % kStopAgreementSteps == 0)
      signal =
          comm->host_allreduce(static_cast<std::int64_t>(stop_signal.received()), parallel::Reduction::kMax);
    const bool preempted = !last && signal != 0;
    const bool stopping = !last && (done == request.stop_at || preempted);
    if (cfg.dist.check_weights) {
      std::vector<std::pair<std::string, torch::Tensor>> state;
      for (const auto& p : model->named_parameters()) state.emplace_back(p.key(), p.value());
      for (const auto& b : model->named_buffers()) state.emplace_back(b.key(), b.value());
      parallel::check_identical(*comm, state, step);
    }

    const bool checkpointing =
        (cfg.checkpoint.interval > 0 && done % cfg.checkpoint.interval == 0) || last || stopping;
    const bool log_step = done % cfg.log.interval == 0 || last;
    if (log_step) {
      const double seconds = std::chrono::duration<double>(Clock::now() - interval_start).count();
      const double elapsed = std::chrono::duration<double>(Clock::now() - run_start).count();
      metrics.push(
          {step, tokens, lr, static_cast<double>(interval_tokens) / std::max(seconds, 1e-9),
           elapsed / static_cast<double>(done - start_step) * static_cast<double>(cfg.data.steps - done),
           path_states()},
          ce_sum, aux_sum, static_cast<double>(accumulation), grad_norm, first_nonfinite, sigma_values());
      interval_start = Clock::now();
      interval_tokens = 0;
    }
    // Rows fetched from the device, the newest `metrics.lag()` log steps behind unless a checkpoint
    // needs them all. A non-finite step stops (or rolls back) the run before its row is written; a
    // checkpoint also checks the current step, so that it never holds weights updated from one.
    std::optional<std::int64_t> rolled_back;
    if (log_step || checkpointing) {
      for (const auto& row : metrics.take(/*flush=*/checkpointing)) {
        if ((rolled_back = check_divergence(row.first_nonfinite, step))) break;
        report_row(row);
      }
      if (!rolled_back && checkpointing && !log_step)
        rolled_back = check_divergence(first_nonfinite.item<std::int64_t>(), step);
    }
    if (rolled_back) {
      step = *rolled_back;
      interval_start = Clock::now();
      interval_tokens = 0;
      continue;
    }
    if ((cfg.eval.interval > 0 && done % cfg.eval.interval == 0) || last) run_eval(step, false);
    if (last) run_eval(step, true);
    if (checkpointing) {
      // Rank 0's loader position stands at a step boundary, which any world size can resume from.
      if (leader) save_checkpoint(out, model, optimizer, checkpoint_state(done), cfg.checkpoint.keep);
    }
    if (stopping) {
      comm->barrier();  // the checkpoint is complete before any rank exits
      if (preempted) {
        spdlog::warn(
            "signal {} received: stopped after step {} with a checkpoint; exiting with code {} so that the "
            "job can be requeued and resumed (--resume)",
            signal, step, parallel::kPreemptedExitCode);
        if (leader)
          log->finish(runlog::RunStatus::kPreempted, fmt::format("signal {} after step {}", signal, step));
        return Outcome::kPreempted;
      }
      spdlog::info("stopped after step {} as asked (--stop-at); continue with --resume", step);
      if (leader)
        log->finish(runlog::RunStatus::kPreempted,
                    fmt::format("stopped after step {} as asked (--stop-at)", step));
      return Outcome::kStopped;
    }
    ++step;
  }
  if (cfg.run.mode == config::RunMode::kRemoveLn && !model->all_layer_norms_fake())
    spdlog::warn("{}: the schedule left some LayerNorm paths real", out);
  if (leader) {
    // Every complete run ends with a Hugging Face folder: the input of the next run (run.init), of
    // `lnfree score` and `lnfree stats`, and of other tools. An LN-free model is written with the
    // eps trick (io/export.h); the run folder itself keeps the exact checkpoint.
    const std::string final_dir = run_folder::final_path(out);
    fs::remove_all(final_dir);
    if (cfg.run.mode != config::RunMode::kRemoveLn) {
      io::save_hf_gpt2(model, final_dir);
      spdlog::info("wrote {} (Hugging Face GPT-2 folder)", final_dir);
    } else {
      try {
        io::export_model(model, io::ExportFormat::kHf, final_dir, /*allow_partial=*/false,
                         {{"source", out}, {"step", cfg.data.steps}});
        spdlog::info("wrote {} (Hugging Face GPT-2 folder, LN-free by the eps trick)", final_dir);
      } catch (const Error& e) {
        spdlog::warn("no {}: {}", final_dir, e.what());
      }
    }
  }
  if (leader)
    log->finish(runlog::RunStatus::kComplete, fmt::format("{} steps, {} tokens", cfg.data.steps, tokens));
  comm->barrier();
  spdlog::info("run complete: {} ({} tokens)", out, tokens);
  return Outcome::kComplete;
}

Outcome run_training(const TrainRequest& request) {
  std::optional<runlog::RunLog> log;  // rank 0 only
  try {
    return run_training_into(request, log);
  } catch (const std::exception& e) {
    // A run that an error ends says so in its log, with the message; only a process killed
    // outright leaves "running" behind. A diverged run has already finished its log.
    if (log && log->is_open()) {
      try {
        log->finish(runlog::RunStatus::kFailed, e.what());
      } catch (const std::exception& nested) {
        spdlog::error("could not record the failure in the run log: {}", nested.what());
      }
    }
    throw;
  }
}

}  // namespace lnfree::train
