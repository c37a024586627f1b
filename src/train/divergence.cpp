#include "train/divergence.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <string>

#include "log/run_folder.h"
#include "parallel/communicator.h"
#include "util/files.h"

namespace lnfree::train {

Divergence::Divergence(TrainingSetup& run, StepMetrics& metrics)
    : run_(run),
      metrics_(metrics),
      first_nonfinite_(torch::full({}, -1, torch::TensorOptions().dtype(torch::kLong).device(run.device))) {
  const auto& cfg = run.config();
  if (cfg.optim.on_divergence == config::OnDivergence::kRollback && !run_folder::latest_checkpoint(run.out)) {
    if (run.leader)
      save_checkpoint(run.out, run.model, *run.optimizer, run.checkpoint_state(run.position.step),
                      cfg.checkpoint.keep);
    run.comm->barrier();
  }
}

void Divergence::mark(const StepTotals& totals, std::int64_t step) {
  first_nonfinite_ = torch::where(totals.nonfinite().logical_and(first_nonfinite_ < 0),
                                  torch::full_like(first_nonfinite_, step), first_nonfinite_);
}

std::optional<std::int64_t> Divergence::check(std::int64_t first, std::int64_t step_now,
                                              std::optional<runlog::RunLog>& log,
                                              const runlog::RunLogSpec& spec) {
  const auto& cfg = run_.config();
  {
    // The earliest over the ranks (-1 must lose the max: map it to the end, take the min).
    std::int64_t key = first < 0 ? cfg.data.steps : first;
    key = -run_.comm->host_allreduce(-key, parallel::Reduction::kMax);
    first = key == cfg.data.steps ? -1 : key;
  }
  if (first < 0) return std::nullopt;
  std::string message = fmt::format(
      "diverged at step {}: non-finite loss or gradient norm (seen at the check after step {}); recent "
      "removal "
      "events:{}",
      first, step_now, run_.removal->recent());
  const bool may_roll_back = cfg.optim.on_divergence == config::OnDivergence::kRollback;
  if (may_roll_back && run_.position.rollbacks < cfg.optim.max_rollbacks)
    return roll_back(first, message, log, spec);
  if (may_roll_back)
    message += fmt::format(" (after {} rollbacks, optim.max_rollbacks)", run_.position.rollbacks);
  if (log) {
    log->finish(runlog::RunStatus::kDiverged, message);
    write_file_atomically(run_folder::diverged_path(run_.out), message + "\n");
  }
  throw parallel::CollectiveError(fmt::format("{}: {}. The last complete checkpoint is intact: {}", run_.out,
                                              message,
                                              run_folder::latest_checkpoint(run_.out).value_or("none")));
}

std::int64_t Divergence::roll_back(std::int64_t first, const std::string& message,
                                   std::optional<runlog::RunLog>& log, const runlog::RunLogSpec& spec) {
  const auto& cfg = run_.config();
  // Rank 0 picks the checkpoint (the others follow it) and rewrites the run folder.
  std::int64_t target_step = run_.leader ? rollback_target(run_.out) : -1;
  target_step = run_.comm->host_allreduce(target_step, parallel::Reduction::kMax);
  const std::string folder = run_folder::checkpoint_path(run_.out, target_step);
  const auto state = load_checkpoint(folder, run_.model, *run_.optimizer);
  run_.loader->restore(data::LoaderPosition::from_json(state.loader, folder + "/state.json"));
  auto& position = run_.position;
  position.tokens = state.tokens;
  run_.aux_target.restore(state.aux_target, run_.device);
  position.lr_scale *= cfg.optim.rollback_lr_factor;
  ++position.rollbacks;
  first_nonfinite_.fill_(-1);
  run_.removal->forget_recent();
  metrics_.clear();
  run_.comm->barrier();  // every rank has read the folder before rank 0 rewrites it
  if (run_.leader) {
    mark_rollback_target(run_.out, folder, position.lr_scale, position.rollbacks);
    log.reset();  // closes run.h5; rebuilt without the rows from state.step on
    log.emplace(runlog::RunLog::open_for_resume(spec, state.step));
    log->append_rollback({state.step - 1, state.tokens, first, position.lr_scale, position.rollbacks});
  }
  spdlog::warn("{}; rolled back to {} (rollback {} of {}): step {} on with the learning rate x{:.3g}",
               message, folder, position.rollbacks, cfg.optim.max_rollbacks, state.step, position.lr_scale);
  return state.step;
}

}  // namespace lnfree::train
