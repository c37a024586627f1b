// Which GPU a rank of the NCCL backend selects, for the common launch styles, and the check that no
// two ranks share one.
#include "parallel/cuda_device.h"

#include <gtest/gtest.h>

#include <string>

namespace lp = lnfree::parallel;

TEST(CudaDevice, EveryRankSeeingTheNodesGpusUsesItsLocalRank) {
  // mpirun -np 4 on a node with 8 visible GPUs; srun --gpus-per-node=4 --ntasks-per-node=4.
  EXPECT_EQ(lp::choose_cuda_device("n1", 3, 4, 8, nullptr).device, 3);
  EXPECT_EQ(lp::choose_cuda_device("n1", 3, 4, 4, "0,1,2,3").device, 3);
  EXPECT_EQ(lp::choose_cuda_device("n1", 0, 1, 1, nullptr).device, 0);
}

TEST(CudaDevice, OneVisibleGpuPerRankUsesDeviceZero) {
  // srun --gpus-per-task=1 (or CUDA_VISIBLE_DEVICES=$SLURM_LOCALID): the old check refused this.
  const auto choice = lp::choose_cuda_device("n1", 5, 8, 1, "5");
  EXPECT_EQ(choice.device, 0);
  EXPECT_TRUE(choice.problem.empty()) << choice.problem;
}

TEST(CudaDevice, TooFewGpusOrNoneIsAProblemNamingTheFix) {
  const auto few = lp::choose_cuda_device("n1", 2, 4, 2, "0,1");
  EXPECT_EQ(few.device, -1);
  EXPECT_NE(few.problem.find("4 ranks were started on this node but this rank sees 2 GPU(s)"),
            std::string::npos)
      << few.problem;
  EXPECT_NE(few.problem.find("CUDA_VISIBLE_DEVICES=0,1"), std::string::npos) << few.problem;
  EXPECT_NE(few.problem.find("--gpus-per-task=1"), std::string::npos) << few.problem;
  const auto none = lp::choose_cuda_device("n1", 0, 1, 0, "");
  EXPECT_EQ(none.device, -1);
  EXPECT_NE(none.problem.find("no CUDA device is visible"), std::string::npos) << none.problem;
}

TEST(CudaDevice, RanksSharingAGpuAreNamed) {
  EXPECT_EQ(lp::shared_devices({"n1 0000:1b:00.0", "n1 0000:1c:00.0", "n2 0000:1b:00.0"}), "");
  // Each of ranks 0 and 2 was given "one GPU", the same one.
  const auto problem = lp::shared_devices({"n1 0000:1b:00.0", "n1 0000:1c:00.0", "n1 0000:1b:00.0"});
  EXPECT_NE(problem.find("ranks 0, 2 share the GPU n1 0000:1b:00.0"), std::string::npos) << problem;
  EXPECT_NE(problem.find("one GPU per rank"), std::string::npos) << problem;
}
