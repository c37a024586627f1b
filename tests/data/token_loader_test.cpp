#include "data/token_loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "data/deterministic_random.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;
using lnfree::data::EvalWindows;
using lnfree::data::LoaderConfig;
using lnfree::data::LoaderPosition;
using lnfree::data::TokenLoader;
using lnfree::data::TokenShardBuilder;
using lnfree::data::TokenSplit;

namespace {

const std::string kHash = "synthetic-ids";

// Shards whose token at global position p is p itself (uint32), so every window is identified by
// its first token. Shard sizes are uneven and include an empty shard, so windows cross boundaries.
class SyntheticSplit : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("lnfree_loader_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::shared_ptr<const TokenSplit> make_split(const std::vector<int>& shard_sizes) {
    std::vector<std::string> paths;
    std::int32_t next = 0;
    for (std::size_t s = 0; s < shard_sizes.size(); ++s) {
      TokenShardBuilder builder(1 << 20, kHash);
      std::vector<std::int32_t> ids(shard_sizes[s]);
      for (auto& id : ids) id = next++;
      builder.append(ids);
      paths.push_back((dir_ / ("train-" + std::to_string(s) + ".bin")).string());
      builder.write_and_clear(paths.back());
    }
    return TokenSplit::from_shards(paths, kHash);
  }

  fs::path dir_;
};

LoaderConfig config(std::int64_t T, std::int64_t S, std::int64_t B, int rank, int world, std::uint64_t seed) {
  LoaderConfig c;
  c.sequence_length = T;
  c.sequences_per_step = S;
  c.micro_batch = B;
  c.rank = rank;
  c.world = world;
  c.seed = seed;
  return c;
}

// The windows (by index) of every micro-batch a loader returns for `steps` optimizer steps, and a
// check that each row holds exactly its window's tokens.
std::vector<std::vector<std::int64_t>> read_steps(TokenLoader& loader, std::int64_t T, std::int64_t B,
                                                  std::int64_t steps) {
  std::vector<std::vector<std::int64_t>> per_step(steps);
  std::vector<std::int64_t> tokens(B * (T + 1)), windows(B);
  for (std::int64_t s = 0; s < steps; ++s) {
    for (std::int64_t m = 0; m < loader.accumulation_steps(); ++m) {
      EXPECT_EQ(loader.step(), s);
      loader.next_micro_batch(tokens.data(), windows.data());
      for (std::int64_t b = 0; b < B; ++b) {
        for (std::int64_t t = 0; t <= T; ++t) {
          EXPECT_EQ(tokens[b * (T + 1) + t], windows[b] * T + t) << "row " << b << " position " << t;
        }
        per_step[s].push_back(windows[b]);
      }
    }
  }
  return per_step;
}

std::multiset<std::int64_t> as_multiset(const std::vector<std::int64_t>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST(DeterministicRandom, SplitMix64MatchesReferenceOutputs) {
  // First outputs of Vigna's splitmix64.c for seed 0.
  lnfree::data::SplitMix64 rng(0);
  EXPECT_EQ(rng.next(), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(rng.next(), 0x6E789E6AA1B965F4ULL);
  EXPECT_EQ(rng.next(), 0x06C45D188009454FULL);
}

TEST(DeterministicRandom, FisherYatesIsUniformOnFourElements) {
  // 24 permutations of 4 elements, 24000 seeds: each should appear ~1000 times.
  std::map<std::vector<std::uint64_t>, int> counts;
  for (std::uint64_t seed = 0; seed < 24000; ++seed) ++counts[lnfree::data::seeded_permutation(4, seed)];
  ASSERT_EQ(counts.size(), 24u);
  int lo = 1 << 30, hi = 0;
  for (const auto& [perm, n] : counts) {
    lo = std::min(lo, n);
    hi = std::max(hi, n);
  }
  std::printf("permutation counts over 24000 seeds: min %d max %d (expected 1000 each)\n", lo, hi);
  EXPECT_GT(lo, 850);
  EXPECT_LT(hi, 1150);
}

TEST_F(SyntheticSplit, WindowsOfTheConcatenationCrossShardBoundaries) {
  auto split = make_split({7, 0, 13, 5});
  ASSERT_EQ(split->size(), 25u);
  EXPECT_EQ(split->window_count(4), 6);  // floor(24 / 4)
  EXPECT_EQ(split->window_count(24), 1);
  EXPECT_EQ(split->window_count(25), 0);
  std::vector<std::int64_t> window(5);
  for (std::int64_t i = 0; i < 6; ++i) {
    split->copy_window(i, 4, window.data());
    for (int t = 0; t < 5; ++t) EXPECT_EQ(window[t], i * 4 + t) << "window " << i;
  }
  EXPECT_THROW(split->copy(20, 6, window.data()), lnfree::Error);
}

TEST_F(SyntheticSplit, SameSeedSameBatchesDifferentSeedDifferent) {
  auto split = make_split({300, 201});
  TokenLoader a(split, config(8, 8, 2, 0, 1, 42)), b(split, config(8, 8, 2, 0, 1, 42));
  TokenLoader c(split, config(8, 8, 2, 0, 1, 43));
  const auto steps_a = read_steps(a, 8, 2, 10), steps_b = read_steps(b, 8, 2, 10),
             steps_c = read_steps(c, 8, 2, 10);
  EXPECT_EQ(steps_a, steps_b);
  EXPECT_NE(steps_a, steps_c);
}

TEST_F(SyntheticSplit, EveryEpochVisitsEachWindowOnce) {
  auto split = make_split({500, 301});
  TokenLoader loader(split, config(8, 10, 5, 0, 1, 7));
  ASSERT_EQ(loader.windows_per_epoch(), 100);
  const auto steps = read_steps(loader, 8, 5, 20);  // 200 sequences: exactly two epochs
  std::vector<std::int64_t> epoch0, epoch1;
  for (int s = 0; s < 10; ++s) epoch0.insert(epoch0.end(), steps[s].begin(), steps[s].end());
  for (int s = 10; s < 20; ++s) epoch1.insert(epoch1.end(), steps[s].begin(), steps[s].end());
  std::vector<std::int64_t> all(100);
  for (int i = 0; i < 100; ++i) all[i] = i;
  auto sorted = [](std::vector<std::int64_t> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted(epoch0), all);
  EXPECT_EQ(sorted(epoch1), all);
  EXPECT_NE(epoch0, epoch1);  // each epoch has its own order
  EXPECT_NE(epoch0, all);     // and it is shuffled
  EXPECT_EQ(loader.epoch(), 2);
}

TEST_F(SyntheticSplit, StepsStraddleTheEpochWrap) {
  auto split = make_split({81});  // 10 windows of T=8
  TokenLoader loader(split, config(8, 4, 2, 0, 1, 3));
  const auto steps = read_steps(loader, 8, 2, 5);  // 20 sequences; step 2 holds 8..11
  for (int g = 0; g < 20; ++g) EXPECT_EQ(steps[g / 4][g % 4], loader.window_of(g)) << "sequence " << g;
  std::set<std::int64_t> first(steps[0].begin(), steps[0].end());
  first.insert(steps[1].begin(), steps[1].end());
  first.insert(steps[2][0]);
  first.insert(steps[2][1]);
  EXPECT_EQ(first.size(), 10u);  // sequences 0..9: epoch 0, every window once
  std::set<std::int64_t> second(steps[2].begin() + 2, steps[2].end());
  second.insert(steps[3].begin(), steps[3].end());
  second.insert(steps[4].begin(), steps[4].end());
  EXPECT_EQ(second.size(), 10u);  // sequences 10..19: epoch 1
}

TEST_F(SyntheticSplit, RankCountInvariance) {
  auto split = make_split({1000, 1, 700});
  const std::int64_t T = 16, S = 8, steps = 30;  // 106 windows: the steps wrap into epoch 2
  TokenLoader single(split, config(T, S, 2, 0, 1, 99));
  const auto reference = read_steps(single, T, 2, steps);
  for (const auto& [world, micro] :
       std::vector<std::pair<int, int>>{{2, 2}, {2, 4}, {4, 1}, {4, 2}, {8, 1}}) {
    std::vector<std::vector<std::vector<std::int64_t>>> ranks;
    for (int r = 0; r < world; ++r) {
      TokenLoader loader(split, config(T, S, micro, r, world, 99));
      EXPECT_EQ(loader.accumulation_steps(), S / (micro * world));
      ranks.push_back(read_steps(loader, T, micro, steps));
    }
    for (int s = 0; s < steps; ++s) {
      std::vector<std::int64_t> united;
      for (int r = 0; r < world; ++r) {
        EXPECT_EQ(ranks[r][s].size(), static_cast<std::size_t>(S / world));
        united.insert(united.end(), ranks[r][s].begin(), ranks[r][s].end());
      }
      // Concatenating the ranks' slices gives exactly the single-rank step, in order.
      EXPECT_EQ(united, reference[s]) << "world " << world << " micro " << micro << " step " << s;
      EXPECT_EQ(as_multiset(united), as_multiset(reference[s]));
    }
  }
}

TEST_F(SyntheticSplit, RanksOfOneStepAreDisjoint) {
  auto split = make_split({4097});  // 256 windows of T=16
  const int world = 4;
  std::vector<std::vector<std::vector<std::int64_t>>> ranks;
  for (int r = 0; r < world; ++r) {
    TokenLoader loader(split, config(16, 32, 4, r, world, 5));
    ranks.push_back(read_steps(loader, 16, 4, 8));  // exactly one epoch
  }
  for (int s = 0; s < 8; ++s) {
    std::set<std::int64_t> seen;
    for (int r = 0; r < world; ++r) {
      for (auto w : ranks[r][s])
        EXPECT_TRUE(seen.insert(w).second) << "window " << w << " repeated in step " << s;
    }
  }
}

TEST_F(SyntheticSplit, RestoreResumesWithIdenticalBatches) {
  auto split = make_split({900, 333});
  const std::int64_t T = 12, B = 3;
  TokenLoader original(split, config(T, 12, B, 1, 2, 2024));  // rank 1 of 2, accumulation 2
  std::vector<std::int64_t> tokens(B * (T + 1));
  for (int i = 0; i < 7; ++i) original.next_micro_batch(tokens.data());  // stops mid-step
  const LoaderPosition saved = original.position();
  EXPECT_EQ(saved.step, 3);
  EXPECT_EQ(saved.micro, 1);
  const LoaderPosition parsed =
      LoaderPosition::from_json(nlohmann::json::parse(saved.to_json().dump()), "test");

  TokenLoader resumed(split, config(T, 12, B, 1, 2, 2024));
  resumed.restore(parsed);
  std::vector<std::int64_t> expected(B * (T + 1)), got(B * (T + 1));
  for (int i = 0; i < 250; ++i) {  // runs past the end of the first epoch (102 windows)
    original.next_micro_batch(expected.data());
    resumed.next_micro_batch(got.data());
    ASSERT_EQ(expected, got) << "micro-batch " << i << " after resuming";
  }

  // Mid-step, the rank layout must match; at a step boundary any layout resumes the same steps.
  TokenLoader other_world(split, config(T, 12, B, 0, 1, 2024));
  EXPECT_THROW(other_world.restore(parsed), lnfree::Error);
  LoaderPosition boundary = saved;
  boundary.micro = 0;
  other_world.restore(boundary);
  TokenLoader two_ranks_rank0(split, config(T, 12, B, 0, 2, 2024));
  two_ranks_rank0.restore(boundary);
  EXPECT_EQ(other_world.step(), 3);
  std::vector<std::int64_t> single(B * (T + 1)), rank0(B * (T + 1));
  other_world.next_micro_batch(single.data());
  two_ranks_rank0.next_micro_batch(rank0.data());
  EXPECT_EQ(single, rank0);  // the first B sequences of step 3 belong to rank 0 in both layouts

  LoaderPosition other_seed = saved;
  other_seed.seed = 1;
  try {
    resumed.restore(other_seed);
    ADD_FAILURE() << "restore accepted a different seed";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find("field 'seed': expected 2024 (this run), got 1"), std::string::npos)
        << e.what();
  }
}

TEST_F(SyntheticSplit, ConfigurationErrorsSayWhatIsWrong) {
  auto split = make_split({100});
  try {
    TokenLoader loader(split, config(8, 10, 2, 0, 3, 1));
    ADD_FAILURE() << "accepted S=10 with B*W=6";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "sequences_per_step 10 must be divisible by micro_batch x world = 2 x 3 = 6"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(TokenLoader(split, config(100, 4, 1, 0, 1, 1)), lnfree::Error);  // no window of 101 tokens
  EXPECT_THROW(TokenLoader(split, config(8, 4, 1, 1, 1, 1)), lnfree::Error);    // rank outside world
}

TEST_F(SyntheticSplit, EvalWindowsAreOrderedAndSplitAmongRanks) {
  auto split = make_split({50, 61});  // 11 windows of T=10
  std::vector<std::int64_t> all;
  for (int r = 0; r < 3; ++r) {
    EvalWindows eval(split, 10, 0, r, 3);
    EXPECT_EQ(eval.total_windows(), 11);
    std::vector<std::int64_t> batch(4 * 11);
    std::int64_t n;
    while ((n = eval.next_batch(4, batch.data())) > 0) {
      for (std::int64_t i = 0; i < n; ++i) all.push_back(batch[i * 11] / 10);
    }
    eval.reset();
    EXPECT_EQ(eval.next_batch(4, batch.data()), std::min<std::int64_t>(4, eval.end() - eval.begin()));
  }
  std::vector<std::int64_t> expected(11);
  for (int i = 0; i < 11; ++i) expected[i] = i;
  EXPECT_EQ(all, expected);

  EvalWindows first_k(split, 10, 5, 1, 2);
  EXPECT_EQ(first_k.total_windows(), 5);
  EXPECT_EQ(first_k.begin(), 2);
  EXPECT_EQ(first_k.end(), 5);
}

TEST_F(SyntheticSplit, ShardsWithDifferentTokenizersDoNotMix) {
  auto split = make_split({10});
  TokenShardBuilder other(1 << 20, "another-tokenizer");
  other.append(std::vector<std::int32_t>{1, 2, 3});
  const std::string other_path = (dir_ / "other.bin").string();
  other.write_and_clear(other_path);
  const std::string first = (dir_ / "train-0.bin").string();
  try {
    TokenSplit::from_shards({first, other_path});
    ADD_FAILURE() << "mixed tokenizers accepted";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find(other_path + ": field 'tokenizer_hash'"), std::string::npos)
        << e.what();
  }
}

// Found by tests/fuzz/corpus_readers (the same JSON parse as here): a number too large for a double
// ("tokens": 1e999) is nlohmann's out_of_range, which escaped from_manifest as that exception.
TEST(TokenSplitManifest, NumberOverflowIsAnErrorNamingTheManifest) {
  const fs::path dir = fs::temp_directory_path() / "lnfree_manifest_overflow";
  fs::create_directories(dir);
  const std::string path = (dir / "manifest.json").string();
  lnfree::write_file_atomically(path, R"({"format_version": 1, "splits": {"train": {"tokens": 1e999}}})");
  try {
    TokenSplit::from_manifest(dir.string(), "train");
    ADD_FAILURE() << "accepted";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": not valid JSON"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
