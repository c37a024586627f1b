#include "train/train_step.h"

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/deterministic_random.h"
#include "model/aux_loss.h"
#include "model/torch_compat.h"
#include "parallel/tensor_collectives.h"

namespace lnfree::train {
namespace {

// Commits the LN statistics recorded by this step's forwards (layer_norm.h, "Deferred, pooled EMA"):
// the rows of every rank, pooled into one EMA step, so that every rank, and a one-rank run of the
// same global batch with any micro-batch size, applies the same EMA step and freezes the same sigma.
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

// dist.check_weights: every parameter and buffer bitwise equal to rank 0's after the step.
void check_weights_identical(TrainingSetup& run, std::int64_t step) {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const auto& p : run.model->named_parameters()) state.emplace_back(p.key(), p.value());
  for (const auto& b : run.model->named_buffers()) state.emplace_back(b.key(), b.value());
  parallel::check_identical(*run.comm, state, step);
}

}  // namespace

torch::Tensor StepTotals::nonfinite() const {
  return ce_sum.isfinite().logical_and(aux_sum.isfinite()).logical_and(grad_norm.isfinite()).logical_not();
}

std::uint64_t micro_batch_seed(std::int64_t seed, std::int64_t step, std::int64_t global_micro) {
  return data::mix64(
      data::mix64(static_cast<std::uint64_t>(seed) ^ 0x6c6e6672656564ULL) ^
      data::mix64((static_cast<std::uint64_t>(step) << 20) + static_cast<std::uint64_t>(global_micro)));
}

namespace {

// The aux target of a step that has none yet (a run's first step, or a resume from a checkpoint
// without one): measured on the step's own sequences of every rank, without gradient and without
// dropout, and committed so that the step trains against it (aux_target.h).
void measure_aux_target(TrainingSetup& run, const std::vector<torch::Tensor>& micro_batches) {
  torch::NoGradGuard no_grad;
  run.model->eval();  // no dropout; evaluation forwards record no LayerNorm statistics
  for (const auto& rows : micro_batches) {
    auto inputs = rows.narrow(1, 0, run.config().data.seq_len);
    model::CudaBf16Autocast autocast(run.bf16_autocast);
    run.aux_target.record(model::aux_target_statistics(model::aux_sigma(run.model->residual(inputs), *run.model->ln_f), inputs,
                                                       run.model->shape().eot_token));
  }
  run.model->train();
  run.aux_target.commit(*run.comm);
}

}  // namespace

StepTotals run_train_step(TrainingSetup& run, std::int64_t step, double lr) {
  const auto& cfg = run.config();
  const std::int64_t seq_len = cfg.data.seq_len;
  const double aux_weight = cfg.ln.aux_weight;
  // Micro-batches are read into pinned host memory on CUDA and uploaded without blocking the host;
  // the caching host allocator keeps a buffer until its copy has run, so the next read never
  // overwrites one in flight. On the CPU the rows are used where they were read. The whole step is
  // read first, for the aux target's first measurement.
  const auto host_rows = torch::TensorOptions().dtype(torch::kLong).pinned_memory(run.device.is_cuda());
  std::vector<torch::Tensor> micro_batches;
  for (std::int64_t micro = 0; micro < run.accumulation; ++micro) {
    auto read = torch::empty({cfg.data.micro_batch, seq_len + 1}, host_rows);
    run.loader->next_micro_batch(read.data_ptr<std::int64_t>());
    micro_batches.push_back(read.to(run.device, /*non_blocking=*/true));
  }
  if (aux_weight > 0 && !run.aux_target.known()) measure_aux_target(run, micro_batches);
  // float64 sums: the logged mean is then the same whether one rank adds A micro-batches or A ranks
  // add one each (float32 sums would round differently).
  const auto sum_options = torch::TensorOptions().dtype(torch::kDouble).device(run.device);
  StepTotals totals{torch::zeros({}, sum_options), torch::zeros({}, sum_options), {}};
  for (std::int64_t micro = 0; micro < run.accumulation; ++micro) {
    if (cfg.model.dropout > 0)
      torch::manual_seed(micro_batch_seed(cfg.run.seed, step, run.rank * run.accumulation + micro));
    const auto& rows = micro_batches[static_cast<std::size_t>(micro)];
    using torch::indexing::Slice;
    auto inputs = rows.index({Slice(), Slice(0, seq_len)});
    auto targets = rows.index({Slice(), Slice(1, torch::indexing::None)});
    torch::Tensor ce, loss;
    {
      // run.precision = "bf16": matmuls under CUDA bf16 autocast; parameters, optimizer state,
      // LayerNorm sigmas and centring stay fp32. Backward runs outside the autocast scope.
      model::CudaBf16Autocast autocast(run.bf16_autocast);
      auto residual = run.model->residual(inputs);
      auto logits = run.model->logits_from_residual(residual);
      ce = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}).to(torch::kFloat),
                                                targets.reshape({-1}));
      loss = ce;
      if (aux_weight > 0) {
        // Against the step's pooled target; this micro-batch's statistics feed the next step's.
        // sigma once per micro-batch, for the loss and for the statistics.
        auto sigma = model::aux_sigma(residual, *run.model->ln_f);
        auto aux = model::aux_sigma_loss_against(sigma, run.aux_target.value());
        run.aux_target.record(model::aux_target_statistics(sigma, inputs, run.model->shape().eot_token));
        totals.aux_sum += aux.detach();
        loss = loss + aux_weight * aux;
      }
    }
    if (micro == run.accumulation - 1) run.reducer->arm();
    (loss / static_cast<double>(run.accumulation)).backward();
    totals.ce_sum += ce.detach();
  }
  run.reducer->finish();
  commit_layer_norm_statistics(run.model, *run.comm);
  if (aux_weight > 0) run.aux_target.commit(*run.comm);
  totals.grad_norm = clip_gradients(run.optimizer->params(), cfg.optim.grad_clip);
  run.optimizer->step(lr);
  run.optimizer->zero_grad();
  if (cfg.dist.check_weights) check_weights_identical(run, step);
  return totals;
}

}  // namespace lnfree::train
