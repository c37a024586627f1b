// The NCCL backend in a world of one (one H200 cannot host two NCCL ranks): the communicator comes
// up over MPI (a singleton), the during-backward gradient reducer launches its buckets on NCCL's
// stream, and the gradients it leaves are the ones backward computed, in the buckets' memory.
// Built where CUDA and NCCL are found; skipped where LibTorch has no CUDA device (CI); runs in
// launch/gpu-check.sh on the GPU machine.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "parallel/gradient_reducer.h"
#include "parallel/nccl_communicator.h"

namespace lp = lnfree::parallel;

TEST(NcclWorldOfOne, DuringBackwardReducerKeepsTheGradients) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (this LibTorch or this machine)";
  auto comm = lp::make_nccl_communicator(std::make_unique<lp::MpiCommunicator>(lp::LaunchInfo{}), 60.0);
  ASSERT_EQ(comm->backend(), "nccl");
  ASSERT_EQ(comm->world_size(), 1);
  ASSERT_EQ(comm->memory(), lp::Memory::kCuda);

  torch::manual_seed(5);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  std::vector<torch::Tensor> params = {torch::randn({64, 48}, cuda).requires_grad_(),
                                       torch::randn({48}, cuda).requires_grad_(),
                                       torch::randn({48, 16}, cuda).requires_grad_()};
  auto x = torch::randn({32, 64}, cuda);
  auto loss_of = [&] {
    return (torch::tanh(x.matmul(params[0]) + params[1]).matmul(params[2])).square().mean();
  };
  loss_of().backward();
  std::vector<torch::Tensor> expected;
  for (auto& p : params) {
    expected.push_back(p.grad().clone());
    p.mutable_grad() = torch::Tensor();
  }

  lp::GradientReducer reducer(params, *comm, /*bucket_bytes=*/4096,
                              lp::GradientReducer::Launch::kDuringBackward);
  std::vector<const void*> bucket_memory;
  for (auto& p : params) bucket_memory.push_back(p.grad().data_ptr());
  for (int step = 0; step < 3; ++step) {
    for (auto& p : params) p.grad().zero_();
    reducer.arm();
    loss_of().backward();
    reducer.finish();
  }
  double worst = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(params[i].grad().data_ptr(), bucket_memory[i])
        << "parameter " << i << "'s gradient left its bucket";
    worst = std::max(worst, (params[i].grad() - expected[i]).abs().max().item<double>());
  }
  std::printf("NCCL world of one: %zu buckets, worst |gradient - backward's| = %.3g\n",
              reducer.bucket_count(), worst);
  EXPECT_EQ(worst, 0.0);
  comm->finalize();
}
