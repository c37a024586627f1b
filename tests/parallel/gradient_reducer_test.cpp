// The gradient reducer on CPU tensors. FakeCommunicator records which buffers are reduced and when,
// to check bucketing and the hook-driven launch (the GPU path) without MPI; AveragesOverTheRanks uses
// the process's real communicator: a world of one under ctest, two MPI ranks when
// tests/parallel/test_collectives.py runs it under mpirun.
#include "parallel/gradient_reducer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel/connect.h"

namespace lp = lnfree::parallel;

namespace {

class FakeCommunicator : public lp::Communicator {
 public:
  struct Call {
    const void* data;
    std::size_t count;
  };
  std::vector<Call> calls;
  int joins = 0;
  int world = 2;

  int rank() const override { return 0; }
  int world_size() const override { return world; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string backend() const override { return "fake"; }
  lp::Memory memory() const override { return lp::Memory::kHost; }
  void allreduce(void* data, std::size_t count, lp::DataType, lp::Reduction, void*) override {
    calls.push_back({data, count});
  }
  void broadcast(void*, std::size_t, lp::DataType, int, void*) override {}
  void allgather(const void*, void*, std::size_t, lp::DataType, void*) override {}
  void join(void*) override { ++joins; }
  void host_allreduce(void*, std::size_t, lp::DataType, lp::Reduction) override {}
  void host_broadcast(void*, std::size_t, int) override {}
  void host_allgather(const void*, void*, std::size_t) override {}
  void barrier() override {}
  [[noreturn]] void abort(int, const std::string& reason) override { throw std::runtime_error(reason); }
  void finalize() override {}
};

// Four parameters: 24, 6, 18 and 3 floats (96, 24, 72 and 12 bytes).
std::vector<torch::Tensor> make_params() {
  torch::manual_seed(11);
  return {torch::randn({4, 6}).requires_grad_(), torch::randn({6}).requires_grad_(),
          torch::randn({6, 3}).requires_grad_(), torch::randn({3}).requires_grad_()};
}

torch::Tensor loss_of(const std::vector<torch::Tensor>& p, int rank, int micro) {
  auto x = torch::arange(8, torch::kFloat).reshape({2, 4}) * 0.1 * (rank + 1) + 0.05 * micro;
  auto h = torch::tanh(torch::matmul(x, p[0]) + p[1]);
  return (torch::matmul(h, p[2]) + p[3]).pow(2).sum();
}

}  // namespace

TEST(GradientReducer, BucketsFollowReverseOrderAndTheSizeLimit) {
  auto params = make_params();
  FakeCommunicator fake;
  // 100-byte buckets, from the last parameter back: {p3, p2} = 84 B, {p1} (84 + 24 > 100), {p0}.
  lp::GradientReducer reducer(params, fake, 100, lp::GradientReducer::Launch::kAfterBackward);
  EXPECT_EQ(reducer.bucket_sizes(), (std::vector<std::int64_t>{21, 6, 24}));
  // A tensor larger than the limit gets a bucket of its own.
  auto more = make_params();
  lp::GradientReducer small(more, fake, 8, lp::GradientReducer::Launch::kAfterBackward);
  EXPECT_EQ(small.bucket_sizes(), (std::vector<std::int64_t>{3, 18, 6, 24}));
}

TEST(GradientReducer, LaunchesOnlyOnTheArmedBackwardInBucketOrder) {
  for (auto launch :
       {lp::GradientReducer::Launch::kDuringBackward, lp::GradientReducer::Launch::kAfterBackward}) {
    const bool during = launch == lp::GradientReducer::Launch::kDuringBackward;
    auto params = make_params();
    FakeCommunicator fake;
    lp::GradientReducer reducer(params, fake, 100, launch);
    loss_of(params, 0, 0).backward();  // an earlier micro-step: accumulate only
    EXPECT_TRUE(fake.calls.empty());
    reducer.arm();
    loss_of(params, 0, 1).backward();
    // With hooks every bucket has been launched by the time backward returns.
    EXPECT_EQ(fake.calls.size(), during ? 3u : 0u) << (during ? "during" : "after");
    reducer.finish();
    ASSERT_EQ(fake.calls.size(), 3u);
    EXPECT_EQ(fake.joins, 1);
    // Bucket order, and the gradients are views into the reduced buffers (no copies).
    const std::vector<std::size_t> first_member{3, 1, 0};
    for (std::size_t k = 0; k < 3; ++k) {
      EXPECT_EQ(fake.calls[k].count, static_cast<std::size_t>(reducer.bucket_sizes()[k]));
      EXPECT_EQ(fake.calls[k].data, params[first_member[k]].grad().data_ptr());
    }
    // The next step starts unarmed again.
    loss_of(params, 0, 0).backward();
    EXPECT_EQ(fake.calls.size(), 3u);
  }
}

TEST(GradientReducer, ForTrainingIsANoOpInAWorldOfOneAndLaunchesAfterBackwardOnTheHost) {
  auto params = make_params();
  FakeCommunicator one;
  one.world = 1;
  auto alone = lp::GradientReducer::for_training(params, one, 100);
  EXPECT_EQ(alone->bucket_count(), 0u);
  loss_of(params, 0, 0).backward();
  const void* grad = params[0].grad().data_ptr();
  alone->arm();
  loss_of(params, 0, 1).backward();
  alone->finish();
  EXPECT_TRUE(one.calls.empty());
  EXPECT_EQ(one.joins, 0);
  EXPECT_EQ(params[0].grad().data_ptr(), grad) << "a world of one keeps autograd's own gradient tensors";

  // Host memory: buckets reduced once backward has returned, as kAfterBackward does.
  auto more = make_params();
  FakeCommunicator two;
  auto reducer = lp::GradientReducer::for_training(more, two, 100);
  EXPECT_EQ(reducer->bucket_count(), 3u);
  reducer->arm();
  loss_of(more, 0, 1).backward();
  EXPECT_TRUE(two.calls.empty());
  reducer->finish();
  EXPECT_EQ(two.calls.size(), 3u);
}

TEST(GradientReducer, AveragesOverTheRanks) {
  auto comm = lp::connect();
  const int w = comm->world_size();
  for (auto launch :
       {lp::GradientReducer::Launch::kDuringBackward, lp::GradientReducer::Launch::kAfterBackward}) {
    auto params = make_params();
    lp::GradientReducer reducer(params, *comm, 64, launch);
    // Two micro-steps with loss / 2, as the trainer does.
    (loss_of(params, comm->rank(), 0) / 2).backward();
    reducer.arm();
    (loss_of(params, comm->rank(), 1) / 2).backward();
    reducer.finish();
    // Expected: the mean over ranks of each rank's summed micro-step gradients, computed locally.
    std::vector<torch::Tensor> expected;
    for (const auto& p : params) expected.push_back(torch::zeros_like(p));
    for (int r = 0; r < w; ++r)
      for (int m = 0; m < 2; ++m) {
        std::vector<torch::Tensor> fresh;
        for (const auto& p : params) fresh.push_back(p.detach().clone().requires_grad_());
        auto grads = torch::autograd::grad({loss_of(fresh, r, m) / 2}, fresh);
        for (std::size_t i = 0; i < params.size(); ++i) expected[i] += grads[i] / w;
      }
    double worst = 0;
    for (std::size_t i = 0; i < params.size(); ++i)
      worst = std::max(
          worst, ((params[i].grad() - expected[i]).abs().max() / expected[i].abs().max()).item<double>());
    std::printf("%s backward, %d rank(s): max relative gradient error %.3g\n",
                launch == lp::GradientReducer::Launch::kDuringBackward ? "hooks during" : "after", w, worst);
    EXPECT_LT(worst, 1e-6);
  }
}

TEST(GradientReducer, RefusesAGradientThatIsNoLongerItsBucketView) {
  // What LibTorch 2.x's zero_grad() does by default (set to none), and a plain reassignment: either
  // would leave that parameter's gradient out of the reduction without a word.
  for (const bool set_to_none : {true, false}) {
    auto params = make_params();
    FakeCommunicator fake;
    lp::GradientReducer reducer(params, fake, 100, lp::GradientReducer::Launch::kAfterBackward);
    if (set_to_none)
      params[2].mutable_grad() = torch::Tensor();
    else
      params[2].mutable_grad() = torch::zeros_like(params[2]);
    reducer.arm();
    loss_of(params, 0, 1).backward();
    try {
      reducer.finish();
      ADD_FAILURE() << "finish() accepted a replaced gradient";
    } catch (const std::exception& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("parameter 2 (of 4"), std::string::npos) << message;
      EXPECT_NE(message.find("zero_grad()"), std::string::npos) << message;
    }
    EXPECT_TRUE(fake.calls.empty()) << "nothing may be reduced before the check";
  }
}
