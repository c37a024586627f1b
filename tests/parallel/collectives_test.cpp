// Communicator semantics. Under ctest this process is a world of one (SingleCommunicator);
// tests/parallel/test_collectives.py runs the same tests as two MPI ranks (mpirun -np 2), where every
// expectation below is computed for the actual world size.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "parallel/connect.h"
#include "parallel/run_guard.h"
#include "parallel/stop_signal.h"

namespace lp = lnfree::parallel;

namespace {

lp::Communicator& comm() {
  static auto instance = lp::connect();
  return *instance;
}

}  // namespace

TEST(Collectives, AllreduceSumAverageMaxMin) {
  auto& c = comm();
  const int r = c.rank(), w = c.world_size();
  std::printf("%s backend, rank %d of %d (local %d of %d)\n", c.backend().c_str(), r, w, c.local_rank(),
              c.local_size());
  std::vector<float> values{static_cast<float>(r + 1), 0.5f, static_cast<float>(-r)};
  c.allreduce(values.data(), values.size(), lp::DataType::kFloat32, lp::Reduction::kSum);
  EXPECT_EQ(values[0], static_cast<float>(w * (w + 1) / 2));
  EXPECT_EQ(values[1], 0.5f * static_cast<float>(w));
  EXPECT_EQ(values[2], -static_cast<float>(w * (w - 1) / 2));

  std::vector<double> average{static_cast<double>(r)};
  c.allreduce(average.data(), 1, lp::DataType::kFloat64, lp::Reduction::kAverage);
  EXPECT_DOUBLE_EQ(average[0], (w - 1) / 2.0);
  EXPECT_EQ(c.host_allreduce(static_cast<std::int64_t>(10 + r), lp::Reduction::kMax), 10 + w - 1);
  EXPECT_EQ(c.host_allreduce(static_cast<std::int64_t>(10 + r), lp::Reduction::kMin), 10);
}

TEST(Collectives, LargeBuffersAreReducedCompletely) {
  auto& c = comm();
  std::vector<float> big(3'000'000);
  std::iota(big.begin(), big.end(), static_cast<float>(c.rank()));
  c.allreduce(big.data(), big.size(), lp::DataType::kFloat32, lp::Reduction::kAverage);
  const float offset = static_cast<float>(c.world_size() - 1) / 2;
  double worst = 0;
  for (std::size_t i = 0; i < big.size(); i += 997)
    worst = std::max(worst, std::abs(big[i] - (i + offset)) / (i + 1.0));
  std::printf("average of %zu floats over %d ranks: worst relative error %.3g\n", big.size(), c.world_size(),
              worst);
  EXPECT_LT(worst, 1e-6);
}

TEST(Collectives, BroadcastAndAllgather) {
  auto& c = comm();
  const int r = c.rank(), w = c.world_size();
  std::vector<std::int64_t> data{100 + r, 200 + r};
  c.broadcast(data.data(), data.size(), lp::DataType::kInt64, w - 1);
  EXPECT_EQ(data[0], 100 + w - 1);
  EXPECT_EQ(data[1], 200 + w - 1);

  std::vector<float> mine{static_cast<float>(r), static_cast<float>(10 * r)};
  std::vector<float> all(2 * static_cast<std::size_t>(w));
  c.allgather(mine.data(), all.data(), 2, lp::DataType::kFloat32);
  for (int k = 0; k < w; ++k) {
    EXPECT_EQ(all[2 * k], static_cast<float>(k));
    EXPECT_EQ(all[2 * k + 1], static_cast<float>(10 * k));
  }
  // Strings of different lengths, in rank order.
  auto names = c.host_allgather(std::string(static_cast<std::size_t>(r + 1), 'a' + static_cast<char>(r)));
  ASSERT_EQ(names.size(), static_cast<std::size_t>(w));
  for (int k = 0; k < w; ++k)
    EXPECT_EQ(names[k], std::string(static_cast<std::size_t>(k + 1), 'a' + static_cast<char>(k)));
  c.barrier();
}

TEST(Collectives, AgreeOrFailRaisesTheSameErrorOnEveryRank) {
  auto& c = comm();
  EXPECT_NO_THROW(lp::agree_or_fail(c, ""));
  // Only the last rank has a problem; every rank must throw, naming it.
  const int last = c.world_size() - 1;
  try {
    lp::agree_or_fail(c, c.rank() == last ? "disk full" : "");
    ADD_FAILURE() << "no error";
  } catch (const lp::CollectiveError& e) {
    std::printf("rank %d: %s\n", c.rank(), e.what());
    EXPECT_NE(std::string(e.what()).find("disk full"), std::string::npos);
    if (c.world_size() > 1)
      EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(last)), std::string::npos);
  }
  // Same config everywhere passes; a rank-dependent hash is caught on every rank.
  EXPECT_NO_THROW(lp::check_ranks_agree(c, "hash-everyone-shares"));
  if (c.world_size() > 1) {
    try {
      lp::check_ranks_agree(c, c.rank() == 1 ? "other-hash" : "hash-everyone-shares");
      ADD_FAILURE() << "no error";
    } catch (const lp::CollectiveError& e) {
      std::printf("rank %d: %s\n", c.rank(), e.what());
      EXPECT_NE(std::string(e.what()).find("rank 1: config hash other-hash differs from rank 0's"),
                std::string::npos);
    }
  }
}

TEST(Collectives, StopAgreementStopsEveryRankAfterTheSameStep) {
  auto& c = comm();
  const lp::StopSignal signal;
  lp::StopAgreement agreement(c, signal, /*every=*/4);
  EXPECT_EQ(agreement.after_step(1), 0);
  if (c.rank() == 0) std::raise(SIGUSR1);  // only rank 0 is signalled
  // A world of one reads its own flag after every step; several ranks agree at multiples of 4 only,
  // and then every rank gets rank 0's signal.
  const int expected_before = c.world_size() == 1 ? SIGUSR1 : 0;
  EXPECT_EQ(agreement.after_step(2), expected_before);
  EXPECT_EQ(agreement.after_step(3), expected_before);
  EXPECT_EQ(agreement.after_step(4), SIGUSR1);
}
