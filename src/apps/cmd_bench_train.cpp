// lnfree bench train: the LN-removal training step on random weights, timed. Half of the
// LayerNorms are fake (every block's ln_2, as after the schedule's MLP phase) and the aux loss is
// on, so the step does what the middle of a removal run does: forward, cross-entropy + aux loss,
// backward, σ statistics commit, gradient clipping, AdamW. Prints tokens/s, the split forward /
// backward / optimizer / communication (medians over the timed steps), MFU with its formula and
// peak, and peak memory: on CUDA the caching allocator's peak of allocated bytes (what the PyTorch
// peer's torch.cuda.max_memory_allocated reads), on the CPU the process's maximum resident set. The
// step is one process's (communication 0); `bench dist` times ranks.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apps/command_registry.h"
#include "io/model_instantiate.h"
#include "io/model_source.h"
#include "model/aux_loss.h"
#include "model/gpt2.h"
#include "model/torch_compat.h"
#include "train/adamw.h"
#include "util/error.h"

#if LNFREE_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace lnfree::apps {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchTrainOptions {
  std::string model = "tiny-2x64";
  std::int64_t micro_batch = 8;
  std::int64_t seq_len = 128;
  std::int64_t steps = 10;
  std::int64_t warmup = 3;
  std::string device = "cpu";
  std::string precision = "fp32";
  int threads = 0;
  std::uint64_t seed = 0;
  std::string norm = "layernorm";
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Waits for the device: timing needs it (a benchmark, not the training loop).
void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// Best FLOP/s of a square matmul of `n` on `device` in `dtype` (the measured peak).
double measured_gemm_flops(const torch::Device& device, torch::ScalarType dtype, std::int64_t n) {
  torch::NoGradGuard no_grad;
  auto options = torch::TensorOptions().dtype(dtype).device(device);
  auto a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    sync(device);
    const auto t0 = Clock::now();
    auto c = torch::mm(a, b);
    sync(device);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, 2.0 * static_cast<double>(n * n * n) / s);
  }
  return best;
}

// Peak bytes the CUDA caching allocator has handed out on device 0 since the process started (warm-up
// steps and the GEMM peak included, as the peer's torch.cuda.max_memory_allocated, which it does not
// reset either): memory the step needs, without what the allocator keeps cached.
double cuda_peak_allocated_mb() {
#if LNFREE_TORCH_CUDA
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  // [0] is StatType::AGGREGATE, all pools (torch.cuda.memory_stats' "allocated_bytes.all.peak"),
  // by index because the enum's namespace differs between LibTorch releases.
  return static_cast<double>(stats.allocated_bytes[0].peak) / (1 << 20);
#else
  fail("bench train: this LibTorch has no CUDA (built without LNFREE_TORCH_CUDA)");
#endif
}

// One timed model: its normaliser, optimizer and per-step times (seconds, timed steps only).
struct Timed {
  model::NormKind norm;
  model::Gpt2 model;
  std::unique_ptr<train::AdamW> optimizer;
  std::vector<double> forward_s, backward_s, optimizer_s, step_s;
};

// One LN-removal training step of `t`, each part timed with a device sync.
void time_step(Timed& t, const torch::Tensor& inputs, const torch::Tensor& targets, const torch::Device& device,
               bool bf16, bool record) {
  auto& model = t.model;
  sync(device);
  const auto t0 = Clock::now();
  torch::Tensor loss;
  {
    model::CudaBf16Autocast autocast(bf16);
    auto residual = model->residual(inputs);
    auto logits = model->logits_from_residual(residual);
    auto ce = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}).to(torch::kFloat),
                                                   targets.reshape({-1}));
    loss = ce + 0.1 * model::aux_sigma_loss(residual, *model->ln_f, inputs, model->shape().eot_token);
  }
  sync(device);
  const auto t1 = Clock::now();
  loss.backward();
  sync(device);
  const auto t2 = Clock::now();
  for (auto& [name, ln] : model->layer_norms()) ln->commit_statistics();
  train::clip_gradients(t.optimizer->params(), 1.0);
  t.optimizer->step(1e-4);
  t.optimizer->zero_grad();
  sync(device);
  const auto t3 = Clock::now();
  if (!record) return;
  const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  t.forward_s.push_back(seconds(t0, t1));
  t.backward_s.push_back(seconds(t1, t2));
  t.optimizer_s.push_back(seconds(t2, t3));
  t.step_s.push_back(seconds(t0, t3));
}

void print_timing(const Timed& t, const BenchTrainOptions& o, const std::string& origin, const torch::Device& device,
                  double measured) {
  const auto& shape = t.model->shape();
  const double step = median(t.step_s);
  const double tokens = static_cast<double>(o.micro_batch * o.seq_len);
  const double tokens_per_s = tokens / step;
  const double n =
      static_cast<double>(12 * shape.n_layer * shape.n_embd * shape.n_embd + shape.vocab_size * shape.n_embd);
  const double flops_per_token = 6 * n + 12.0 * static_cast<double>(shape.n_layer * shape.n_embd * o.seq_len);
  const std::string device_name = device.is_cuda() ? "CUDA device 0" : "the CPU";
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);

  fmt::print(
      "bench train: {} ({} layers, d={}, heads {}, vocab {}, {}), {} {}, micro-batch {} x {} tokens, {} "
      "thread(s), "
      "medians of steps {}-{}\n",
      origin, shape.n_layer, shape.n_embd, shape.n_head, shape.vocab_size, config::enum_name(t.norm), o.device,
      o.precision,
      o.micro_batch, o.seq_len, torch::get_num_threads(), o.warmup + 1, o.steps);
  fmt::print(
      "  tokens/s {:.0f}  step {:.1f} ms = forward {:.1f} + backward {:.1f} + optimizer {:.1f} + "
      "communication 0.0 ms\n",
      tokens_per_s, step * 1e3, median(t.forward_s) * 1e3, median(t.backward_s) * 1e3, median(t.optimizer_s) * 1e3);
  fmt::print(
      "  FLOP/token = 6N + 12·L·d·T = 6 x {:.0f} + 12 x {} x {} x {} = {:.4g}  (N = 12·L·d² + V·d, no "
      "position "
      "embeddings)\n",
      n, shape.n_layer, shape.n_embd, o.seq_len, flops_per_token);
  fmt::print("  MFU {:.1f}% = FLOP/token x tokens/s / the {} GEMM peak measured now on {}: {:.1f} GFLOP/s\n",
             100 * flops_per_token * tokens_per_s / measured, o.precision, device_name, measured / 1e9);
  // One line format for lnfree and its peer (tests/apps/bench_line.py parses both): the figure after
  // "peak memory" is the device's on CUDA, the host's on the CPU, and the parenthesis says which.
  const double rss_mb = static_cast<double>(usage.ru_maxrss) / 1024;
  if (device.is_cuda())
    fmt::print(
        "  peak memory {:.0f} MB (CUDA allocator peak allocated), host {:.0f} MB "
        "(process maximum resident set)\n",
        cuda_peak_allocated_mb(), rss_mb);
  else
    fmt::print("  peak memory {:.0f} MB (process maximum resident set)\n", rss_mb);
}


void run_bench_train(const BenchTrainOptions& o) {
  if (o.device != "cpu" && o.device != "cuda")
    fail("bench train: --device: expected cpu or cuda, got '{}'", o.device);
  if (o.precision != "fp32" && o.precision != "tf32" && o.precision != "bf16")
    fail("bench train: --precision: expected fp32, tf32 or bf16, got '{}'", o.precision);
  if (o.precision != "fp32" && o.device != "cuda")
    fail("bench train: --precision {} needs --device cuda", o.precision);
  if (o.device == "cuda" && !torch::cuda::is_available())
    fail("bench train: --device cuda, but this LibTorch sees no CUDA device");
  if (o.steps <= o.warmup || o.warmup < 0)
    fail("bench train: --steps ({}) must exceed --warmup ({}) >= 0", o.steps, o.warmup);
  if (o.micro_batch < 1 || o.seq_len < 2) fail("bench train: --micro-batch must be >= 1 and --seq-len >= 2");
  if (o.threads > 0) torch::set_num_threads(o.threads);
  if (o.norm != "layernorm" && o.norm != "rmsnorm")
    fail("bench train: --norm: expected layernorm or rmsnorm, got '{}'", o.norm);

  const auto source = io::resolve_model_source(o.model);
  if (o.seq_len > source.shape.n_positions)
    fail("bench train: --seq-len {} exceeds the model's n_positions {}", o.seq_len, source.shape.n_positions);
  const torch::Device device =
      o.device == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (device.is_cuda()) model::set_cuda_tf32(o.precision == "tf32");  // also for the GEMM peak below
  // One model per normaliser timed: --norm rmsnorm times LayerNorm and RMSNorm models of the same
  // shape and seed, their steps interleaved so that drift in the machine's speed hits both alike.
  std::vector<model::NormKind> norms{model::NormKind::kLayerNorm};
  if (o.norm == "rmsnorm") norms.push_back(model::NormKind::kRmsNorm);
  std::vector<Timed> timed;
  for (const auto norm : norms) {
    auto random = source;
    random.weights.reset();
    random.shape.norm = norm;
    random.shape.centre_writes = false;  // the normaliser's cost alone (not run.norm's centring)
    auto model = io::instantiate_model(random, o.seed);
    model->to(device);
    model->train();
    for (auto& [name, ln] : model->layer_norms()) {
      ln->configure(0.9, model::QkSigma::kShared, /*eot_special=*/false, /*bos_special=*/false);
      ln->set_sigma(1.0, 1.0);
    }
    for (auto& block : model->blocks) block->ln_2->remove(model::LnPath::kMain);
    std::vector<train::AdamW::Param> params;
    for (const auto& p : model->named_parameters())
      params.push_back({p.key(), p.value(), p.value().dim() >= 2, {}, {}});
    Timed t{norm, model, std::make_unique<train::AdamW>(std::move(params), train::AdamWOptions{}), {}, {}, {}, {}};
    timed.push_back(std::move(t));
  }
  const auto shape = timed.front().model->shape();

  torch::manual_seed(o.seed + 1);
  auto rows = torch::randint(shape.vocab_size, {o.micro_batch, o.seq_len + 1},
                             torch::TensorOptions().dtype(torch::kLong).device(device));
  using torch::indexing::Slice;
  auto inputs = rows.index({Slice(), Slice(0, o.seq_len)});
  auto targets = rows.index({Slice(), Slice(1, torch::indexing::None)});

  // The order alternates step by step, so that neither model always runs on the other's leftovers.
  for (std::int64_t step = 0; step < o.steps; ++step)
    for (std::size_t i = 0; i < timed.size(); ++i)
      time_step(timed[(i + static_cast<std::size_t>(step)) % timed.size()], inputs, targets, device,
                o.precision == "bf16", step >= o.warmup);

  const double measured =
      measured_gemm_flops(device, o.precision == "bf16" ? torch::kBFloat16 : torch::kFloat, o.device == "cuda" ? 8192 : 1024);
  for (const auto& t : timed) print_timing(t, o, source.shape_origin, device, measured);
  if (timed.size() == 2) {
    const auto ratio = [&](auto member) { return median(timed[1].*member) / median(timed[0].*member); };
    fmt::print(
        "  rmsnorm / layernorm time per step {:.3f} (forward {:.3f}, backward {:.3f}, optimizer {:.3f}); "
        "tokens/s ratio {:.3f}\n",
        ratio(&Timed::step_s), ratio(&Timed::forward_s), ratio(&Timed::backward_s), ratio(&Timed::optimizer_s),
        1 / ratio(&Timed::step_s));
  }
}

RegisterBench reg("train", [](CLI::App& bench) {
  auto* cmd =
      bench.add_subcommand("train", "Time the LN-removal training step on random weights (tokens/s, MFU)");
  auto o = std::make_shared<BenchTrainOptions>();
  cmd->add_option("--model", o->model, io::kModelOptionHelp)->capture_default_str();
  cmd->add_option("--micro-batch", o->micro_batch, "Sequences per step")->capture_default_str();
  cmd->add_option("--seq-len", o->seq_len, "Tokens per sequence")->capture_default_str();
  cmd->add_option("--steps", o->steps, "Steps in all")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Leading steps left out of the medians")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--precision", o->precision,
                  "fp32; tf32 (CUDA: fp32 tensors, TF32 tensor-core matmuls); or bf16 (CUDA autocast, fp32 "
                  "master weights)")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "LibTorch intra-op threads (0: LibTorch's default)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the random weights and tokens")->capture_default_str();
  cmd->add_option("--norm", o->norm,
                  "layernorm; or rmsnorm: time a LayerNorm and an RMSNorm model of the same shape and seed, "
                  "steps interleaved (order alternating), and print their ratio; both live in one process, "
                  "so each line's peak memory is the process's")
      ->capture_default_str();
  cmd->footer(
      "One process, random weights and tokens, every block's ln_2 fake (half the LayerNorms), aux loss on\n"
      "(weight 0.1): forward, backward, σ commit, clipping and AdamW, each timed with a device sync (this\n"
      "is a benchmark; the training loop does not sync). MFU = FLOP/token x tokens/s / peak, the peak a\n"
      "square GEMM measured in the same run (1024 on CPU, 8192 on CUDA).");
  cmd->callback([o] { run_bench_train(*o); });
});

}  // namespace
}  // namespace lnfree::apps
