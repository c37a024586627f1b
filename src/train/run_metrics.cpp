#include "train/run_metrics.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "log/run_folder.h"
#include "log/run_log_schema.h"
#include "train/evaluator.h"

namespace lnfree::train {

SigmaColumns::SigmaColumns(model::Gpt2& model) {
  for (auto& [name, ln] : model->layer_norms()) {
    names_.push_back(name);
    sources_.emplace_back(ln, model::LnPath::kMain);
    if (ln->has_value_path()) {
      names_.push_back(name + ".v");
      sources_.emplace_back(ln, model::LnPath::kValue);
    }
  }
}

std::vector<torch::Tensor> SigmaColumns::values() const {
  std::vector<torch::Tensor> values;
  for (const auto& [ln, path] : sources_) values.push_back(ln->sigma(path));
  return values;
}

std::vector<runlog::LnPathState> SigmaColumns::states() const {
  std::vector<runlog::LnPathState> states;
  for (const auto& [ln, path] : sources_)
    states.push_back(
        {ln->is_fake(model::LnPath::kMain), ln->has_value_path() && ln->is_fake(model::LnPath::kValue)});
  return states;
}

runlog::RunLogSpec run_log_spec(const TrainingSetup& run, const SigmaColumns& columns) {
  const auto& cfg = run.config();
  const auto& shape = run.model->shape();
  const auto counts = model::count_parameters(shape);
  const auto window = run.removal->schedule().removal_window();
  runlog::RunLogSpec spec;
  spec.path = run_folder::log_path(run.out);
  namespace attribute = runlog::attribute;
  spec.string_attributes = {{attribute::kConfig, config::to_canonical_toml(cfg)},
                            {attribute::kConfigHash, run.config_hash},
                            {attribute::kMode, std::string(config::enum_name(cfg.run.mode))},
                            {attribute::kInit, cfg.run.init},
                            {attribute::kNorm, std::string(config::enum_name(shape.norm))}};
  spec.int_attributes = {{attribute::kNLayer, shape.n_layer},
                         {attribute::kNEmbd, shape.n_embd},
                         {attribute::kNHead, shape.n_head},
                         {attribute::kNPositions, shape.n_positions},
                         {attribute::kVocabSize, shape.vocab_size},
                         {attribute::kParamsTotal, counts.total},
                         {attribute::kParamsNonEmbedding, counts.non_embedding},
                         {attribute::kTokensPerStep, run.tokens_per_step},
                         {attribute::kSteps, cfg.data.steps},
                         {attribute::kWorldSize, run.world},
                         {attribute::kRemovalFirstStep, window ? window->first : -1},
                         {attribute::kRemovalLastStep, window ? window->second : -1},
                         {attribute::kCentreWrites, shape.centre_writes ? 1 : 0}};
  for (const auto* sets : {&run.eval_sets, &run.final_eval_sets})
    for (const auto& set : *sets) spec.eval_sets.push_back(set.name);
  spec.ln_names = columns.names();
  return spec;
}

void open_run_log(const TrainingSetup& run, const runlog::RunLogSpec& spec,
                  std::optional<runlog::RunLog>& log) {
  if (!run.leader) return;
  if (run.resumed && std::filesystem::exists(spec.path))
    log.emplace(runlog::RunLog::open_for_resume(spec, run.position.step));
  else
    log.emplace(spec);
}

Throughput::Throughput(std::int64_t start_step)
    : start_step_(start_step), run_start_(Clock::now()), interval_start_(run_start_) {}

std::pair<double, double> Throughput::tokens_per_s_and_eta(std::int64_t done, std::int64_t steps) {
  const auto now = Clock::now();
  const double seconds = std::chrono::duration<double>(now - interval_start_).count();
  const double elapsed = std::chrono::duration<double>(now - run_start_).count();
  // A rollback can return before the step this process started at: count at least one step.
  const auto steps_run = static_cast<double>(std::max<std::int64_t>(done - start_step_, 1));
  const double rate = static_cast<double>(interval_tokens_) / std::max(seconds, 1e-9);
  restart_interval();
  return {rate, elapsed / steps_run * static_cast<double>(steps - done)};
}

void Throughput::restart_interval() {
  interval_start_ = Clock::now();
  interval_tokens_ = 0;
}

std::string format_eta(double seconds) {
  const auto s = static_cast<long long>(seconds);
  return s >= 3600 ? fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60)
                   : fmt::format("{}m{:02d}s", s / 60, s % 60);
}

void report_step(const TrainingSetup& run, const StepMetrics::Row& row, runlog::RunLog* log) {
  // Host collectives of a one-process world are no-ops (SingleCommunicator).
  double losses[2] = {row.ce, row.aux};
  run.comm->host_allreduce(losses, 2, parallel::DataType::kFloat64, parallel::Reduction::kAverage);
  const double ce = losses[0], aux = losses[1], loss = ce + run.config().ln.aux_weight * aux;
  const auto& h = row.host;
  if (log) {
    log->append_train({h.step, h.tokens, loss, ce, aux, h.lr, row.grad_norm, h.tokens_per_s});
    log->append_ln(h.step, row.sigmas, h.states);
  }
  spdlog::info("step {:>6}/{} loss {:.4f} (ce {:.4f} aux {:.4f}) lr {:.3e} gnorm {:.3f} {:.0f} tok/s ETA {}",
               h.step, run.config().data.steps, loss, ce, aux, h.lr, row.grad_norm, h.tokens_per_s,
               format_eta(h.eta_s));
}

void evaluate_sets(TrainingSetup& run, std::int64_t step_done, bool final_pass, runlog::RunLog* log) {
  const auto& cfg = run.config();
  for (const auto& set : final_pass ? run.final_eval_sets : run.eval_sets) {
    // A bf16 run evaluates under autocast at intervals and in fp32 at the end: the published
    // number carries no bf16 rounding.
    const auto totals = evaluate_loss_totals(
        run.model, *set.split, cfg.data.seq_len, final_pass ? 0 : cfg.eval.max_windows, cfg.eval.batch,
        run.device, run.rank, run.world, run.bf16_autocast && !final_pass);
    double sums[2] = {totals.loss_sum, static_cast<double>(totals.targets)};
    run.comm->host_allreduce(sums, 2, parallel::DataType::kFloat64, parallel::Reduction::kSum);
    const double loss = sums[0] / sums[1];
    if (!log) continue;
    log->append_eval(set.name, {step_done, run.position.tokens, loss});
    spdlog::info("eval step {:>6} {:<24} loss {:.4f}", step_done, set.name, loss);
  }
}

}  // namespace lnfree::train
