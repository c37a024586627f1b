// Tensor collectives: a world of one under ctest, two MPI ranks under tests/parallel/test_collectives.py.
#include "parallel/tensor_collectives.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "parallel/connect.h"

namespace lp = lnfree::parallel;

TEST(TensorCollectives, BitChecksumsSeeEverySingleBit) {
  torch::manual_seed(12);
  auto t = torch::randn({5, 7});
  const auto before = lp::bit_checksums({t})[0].item<std::int64_t>();
  auto bits = t.view(torch::kInt);
  bits[3][4].bitwise_xor_(1);  // the lowest mantissa bit of one element
  const auto after = lp::bit_checksums({t})[0].item<std::int64_t>();
  std::printf("checksum %lld -> %lld after flipping one bit (value changed by %.3g)\n",
              static_cast<long long>(before), static_cast<long long>(after),
              std::abs(t[3][4].item<double>()) * 1.2e-7);
  EXPECT_NE(before, after);
  bits[3][4].bitwise_xor_(1);
  EXPECT_EQ(lp::bit_checksums({t})[0].item<std::int64_t>(), before);
}

TEST(TensorCollectives, BroadcastModuleStateCopiesRankZero) {
  auto comm = lp::connect();
  torch::manual_seed(100 + comm->rank());  // every rank starts different
  torch::nn::Linear linear(3, 2);
  linear->register_buffer("counter", torch::full({}, static_cast<float>(comm->rank())));
  lp::broadcast_module_state(*comm, *linear);
  auto flat = torch::cat({linear->weight.detach().reshape({-1}), linear->bias.detach(),
                          linear->named_buffers()["counter"].reshape({1})});
  auto all = lp::allgather(*comm, flat);  // [world, n]
  ASSERT_EQ(all.size(0), comm->world_size());
  for (int r = 1; r < comm->world_size(); ++r) EXPECT_TRUE(torch::equal(all[r], all[0])) << "rank " << r;
  EXPECT_EQ(linear->named_buffers()["counter"].item<float>(), 0.0f);  // rank 0's value everywhere
}

TEST(TensorCollectives, CheckIdenticalNamesTheDifferingTensor) {
  auto comm = lp::connect();
  auto same = torch::arange(6, torch::kFloat);
  auto differs = torch::full({4}, comm->rank() == 1 ? 2.0f : 1.0f);
  EXPECT_NO_THROW(lp::check_identical(*comm, {{"same", same}}, 7));
  if (comm->world_size() == 1) return;
  try {
    lp::check_identical(*comm, {{"same", same}, {"h.0.mlp.c_fc.weight", differs}}, 7);
    ADD_FAILURE() << "no error";
  } catch (const lp::CollectiveError& e) {
    std::printf("rank %d: %s\n", comm->rank(), e.what());
    EXPECT_NE(std::string(e.what()).find(
                  "after step 7, parameter 'h.0.mlp.c_fc.weight' differs between rank 0 and rank 1"),
              std::string::npos);
  }
}
