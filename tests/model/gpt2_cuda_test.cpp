// The model on CUDA against the same model on the CPU, in fp32 (TF32 off): logits, loss and
// gradients. Skipped where LibTorch has no CUDA device (Debian's LibTorch, CI); runs in
// launch/gpu-check.sh on the GPU machine.
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "model/gpt2.h"

namespace lm = lnfree::model;

namespace {

double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  return (got.to(torch::kCPU) - want).abs().max().item<double>() / want.abs().max().item<double>();
}

}  // namespace

TEST(Gpt2Cuda, MatchesTheCpuInFp32) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (this LibTorch or this machine)";
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  lm::Gpt2Shape s;
  s.n_layer = 2;
  s.n_embd = 64;
  s.n_head = 4;
  s.n_positions = 64;
  s.vocab_size = 50257;
  torch::manual_seed(3);
  lm::Gpt2 cpu(s);
  lm::Gpt2 gpu(s);
  {
    torch::NoGradGuard no_grad;
    auto from = cpu->named_parameters();
    for (auto& p : gpu->named_parameters()) p.value().copy_(from[p.key()]);
  }
  gpu->to(torch::kCUDA);
  auto windows = torch::randint(0, s.vocab_size, {4, 65}, torch::kLong);
  auto ids = windows.narrow(1, 0, 64);

  const double logits_err = relative_error(gpu(ids.to(torch::kCUDA)).detach(), cpu(ids).detach());
  auto loss_cpu = cpu->loss(windows);
  auto loss_gpu = gpu->loss(windows.to(torch::kCUDA));
  const double loss_err =
      std::abs(loss_gpu.item<double>() - loss_cpu.item<double>()) / loss_cpu.item<double>();
  loss_cpu.backward();
  loss_gpu.backward();
  double grad_err = 0;
  auto cpu_params = cpu->named_parameters();
  for (const auto& p : gpu->named_parameters())
    grad_err = std::max(grad_err, relative_error(p.value().grad(), cpu_params[p.key()].grad()));
  std::printf("CUDA vs CPU fp32: logits rel err %.3g, loss rel err %.3g, worst gradient rel err %.3g\n",
              logits_err, loss_err, grad_err);
  EXPECT_LT(logits_err, 1e-5);
  EXPECT_LT(loss_err, 1e-5);
  EXPECT_LT(grad_err, 1e-4);
}
