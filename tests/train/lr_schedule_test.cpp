#include "train/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

using lnfree::train::learning_rate;

TEST(LrSchedule, WarmupThenCosineToMin) {
  // The reference's gpt2_aux: 6e-4 -> 3e-4, warmup 25, 300 steps.
  EXPECT_DOUBLE_EQ(learning_rate(0, 6e-4, 3e-4, 25, 300), 0.0);
  EXPECT_DOUBLE_EQ(learning_rate(5, 6e-4, 3e-4, 25, 300), 6e-4 * 5 / 25);
  EXPECT_DOUBLE_EQ(learning_rate(25, 6e-4, 3e-4, 25, 300), 6e-4);
  EXPECT_NEAR(learning_rate(160, 6e-4, 3e-4, 20, 300), 4.5e-4,
              1e-12);  // half way through the cosine: the mean
  EXPECT_NEAR(learning_rate(300, 6e-4, 3e-4, 25, 300), 3e-4, 1e-15);
  // Spec §3.3: large at its released step 600 of a 1200-step cosine is about 1.73e-4.
  double large = learning_rate(600, 3e-4, 4e-5, 15, 1200);
  std::printf("gpt2-large lr at step 600 of 1200: %.4g\n", large);
  EXPECT_NEAR(large, 1.73e-4, 0.01e-4);
}
