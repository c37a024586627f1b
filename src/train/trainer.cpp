#include "train/trainer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <exception>
#include <optional>

#include "log/run_folder.h"
#include "log/run_log.h"
#include "parallel/stop_signal.h"
#include "train/divergence.h"
#include "train/final_model.h"
#include "train/lr_schedule.h"
#include "train/run_metrics.h"
#include "train/step_metrics.h"
#include "train/train_step.h"
#include "train/training_setup.h"
#include "util/debug_kill.h"
#include "util/error.h"

namespace lnfree::train {
namespace {

// How often (in steps) the ranks of a multi-process run agree on a stop signal (SIGTERM/SIGUSR1/
// SIGINT): a preempted run stops at most this many steps after the signal.
constexpr std::int64_t kStopAgreementSteps = 4;

// Ends a run that stops early (--stop-at, or a signal) after step `step`: its checkpoint is
// complete on every rank's watch before any rank exits.
Outcome stop_early(TrainingSetup& run, std::int64_t step, int signal, runlog::RunLog* log) {
  run.comm->barrier();
  if (signal != 0) {
    spdlog::warn(
        "signal {} received: stopped after step {} with a checkpoint; exiting with code {} so that the job "
        "can "
        "be requeued and resumed (--resume)",
        signal, step, parallel::kPreemptedExitCode);
    if (log) log->finish(runlog::RunStatus::kPreempted, fmt::format("signal {} after step {}", signal, step));
    return Outcome::kPreempted;
  }
  spdlog::info("stopped after step {} as asked (--stop-at); continue with --resume", step);
  if (log)
    log->finish(runlog::RunStatus::kPreempted,
                fmt::format("stopped after step {} as asked (--stop-at)", step));
  return Outcome::kStopped;
}

Outcome run_training_into(const TrainRequest& request, std::optional<runlog::RunLog>& log) {
  TrainingSetup run = set_up_training(request);
  const auto& cfg = run.config();
  const SigmaColumns columns(run.model);
  const runlog::RunLogSpec spec = run_log_spec(run, columns);
  open_run_log(run, spec, log);
  spdlog::info(
      "{} run: {} ({} layers, d={}), {} steps x {} tokens ({} micro-batches of {} x {}), {} removal events",
      config::enum_name(cfg.run.mode), cfg.run.init, run.model->shape().n_layer, run.model->shape().n_embd,
      cfg.data.steps, run.tokens_per_step, run.accumulation, cfg.data.micro_batch, cfg.data.seq_len,
      run.removal->schedule().events().size());

  StepMetrics metrics(run.device, StepMetrics::default_lag(run.device));
  Divergence divergence(run, metrics);
  Throughput throughput(run.position.step);
  const parallel::StopSignal stop_signal;  // SIGUSR1/SIGTERM/SIGINT: checkpoint at the next step boundary
  parallel::StopAgreement stop_agreement(*run.comm, stop_signal, kStopAgreementSteps);
  const DebugFault fault = debug_fault(run.rank);
  const std::int64_t cosine = config::cosine_length(cfg);
  auto& position = run.position;
  // Rank 0's run log; a rollback reopens it, so the pointer is taken where it is used.
  auto log_file = [&]() -> runlog::RunLog* { return log ? &*log : nullptr; };

  for (std::int64_t step = position.step; step < cfg.data.steps;) {
    if (step == fault.step) inject(fault, run.rank, step);
    run.removal->apply_at(step, position.tokens, run.model, log_file());
    const double lr =
        position.lr_scale * learning_rate(step, cfg.optim.lr, cfg.optim.min_lr, cfg.optim.warmup, cosine);
    const StepTotals totals = run_train_step(run, step, lr);
    divergence.mark(totals, step);
    position.tokens += run.tokens_per_step;
    throughput.add_tokens(run.tokens_per_step);
    const std::int64_t done = step + 1;
    const bool last = done == cfg.data.steps;
    const int signal = last ? 0 : stop_agreement.after_step(done);
    const bool stopping = !last && (done == request.stop_at || signal != 0);
    const bool checkpointing =
        (cfg.checkpoint.interval > 0 && done % cfg.checkpoint.interval == 0) || last || stopping;
    const bool log_step = done % cfg.log.interval == 0 || last;
    if (log_step) {
      const auto [tokens_per_s, eta_s] = throughput.tokens_per_s_and_eta(done, cfg.data.steps);
      metrics.push({step, position.tokens, lr, tokens_per_s, eta_s, columns.states()}, totals.ce_sum,
                   totals.aux_sum, static_cast<double>(run.accumulation), totals.grad_norm,
                   divergence.first_nonfinite(), columns.values());
    }
    // Rows fetched from the device, the newest `metrics.lag()` log steps behind unless a checkpoint
    // needs them all. A non-finite step stops (or rolls back) the run before its row is written; a
    // checkpoint also checks the current step, so that it never holds weights updated from one.
    std::optional<std::int64_t> rolled_back;
    if (log_step || checkpointing) {
      for (const auto& row : metrics.take(/*flush=*/checkpointing)) {
        if ((rolled_back = divergence.check(row.first_nonfinite, step, log, spec))) break;
        report_step(run, row, log_file());
      }
      if (!rolled_back && checkpointing && !log_step)
        rolled_back = divergence.check(divergence.read_first_nonfinite(), step, log, spec);
    }
    if (rolled_back) {
      step = *rolled_back;
      throughput.restart_interval();
      continue;
    }
    if ((cfg.eval.interval > 0 && done % cfg.eval.interval == 0) || last)
      evaluate_sets(run, step, /*final_pass=*/false, log_file());
    if (last) evaluate_sets(run, step, /*final_pass=*/true, log_file());
    // Rank 0's loader position stands at a step boundary, which any world size can resume from.
    if (checkpointing && run.leader)
      save_checkpoint(run.out, run.model, *run.optimizer, run.checkpoint_state(done), cfg.checkpoint.keep);
    if (stopping) return stop_early(run, step, signal, log_file());
    ++step;
  }
  if (cfg.run.mode == config::RunMode::kRemoveLn && !run.model->all_layer_norms_fake())
    spdlog::warn("{}: the schedule left some LayerNorm paths real", run.out);
  if (run.leader) {
    write_final_model(run.model, cfg, run.out);
    log->finish(runlog::RunStatus::kComplete,
                fmt::format("{} steps, {} tokens", cfg.data.steps, position.tokens));
  }
  run.comm->barrier();
  spdlog::info("run complete: {} ({} tokens)", run.out, position.tokens);
  return Outcome::kComplete;
}

}  // namespace

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
