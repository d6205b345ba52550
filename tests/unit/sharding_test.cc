// Data-parallel sharding: N ranks with batch b see, step by step, exactly the batches one
// process with batch N x b sees (DistributedSampler semantics, padding included).
#include "core/train/sharding.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "core/util/json.h"
#include "tests/unit/test_util.h"

namespace berth::train {
namespace {

std::vector<int64_t> Lengths(int64_t n) {
  std::mt19937 rng(7);
  std::vector<int64_t> l(n);
  for (auto& x : l) x = 3 + static_cast<int64_t>(rng() % 40);
  return l;
}

void ExpectSameAsOneProcess(int64_t n, int world, bool shuffle, bool group) {
  const std::vector<int64_t> lengths = Lengths(n);
  data::TrainingSpec s;
  s.batch_size = 4;
  s.shuffle = shuffle;
  s.group_by_length = group;
  s.seed = 11;
  data::TrainingSpec one = s;
  one.batch_size = s.batch_size * world;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    const auto global = EpochBatches(lengths, one, epoch);
    std::vector<std::vector<std::vector<int64_t>>> ranks;
    for (int r = 0; r < world; ++r) ranks.push_back(RankBatches(lengths, s, epoch, world, r));
    std::map<int64_t, int> seen;
    for (int r = 0; r < world; ++r) ASSERT_EQ(ranks[r].size(), global.size());
    for (size_t step = 0; step < global.size(); ++step) {
      std::vector<int64_t> together;
      for (int r = 0; r < world; ++r) {
        EXPECT_EQ(ranks[r][step].size(), ranks[0][step].size()) << "ranks must have equal batches";
        together.insert(together.end(), ranks[r][step].begin(), ranks[r][step].end());
      }
      for (int64_t i : together) ++seen[i];
      // The global batch, plus padding only where it was short.
      std::vector<int64_t> a = together, b = global[step];
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      if (b.size() % static_cast<size_t>(world) == 0) {
        EXPECT_EQ(a, b) << "epoch " << epoch << " step " << step;
      } else {
        EXPECT_TRUE(std::includes(a.begin(), a.end(), b.begin(), b.end()));
        EXPECT_EQ(a.size(), (b.size() + world - 1) / world * world);
      }
    }
    // Every example once in the epoch; when n is not a multiple of the world, the padding
    // repeats a few.
    EXPECT_EQ(static_cast<int64_t>(seen.size()), n);
    int extra = 0;
    for (const auto& [i, c] : seen) extra += c - 1;
    EXPECT_EQ(extra, static_cast<int>((world - n % world) % world)) << "epoch " << epoch;
  }
}

TEST(ShardingTest, TwoRanksSeeWhatOneProcessWithTwiceTheBatchSees) {
  ExpectSameAsOneProcess(40, 2, /*shuffle=*/false, /*group=*/false);
  ExpectSameAsOneProcess(40, 2, /*shuffle=*/true, /*group=*/false);
  ExpectSameAsOneProcess(40, 2, /*shuffle=*/true, /*group=*/true);
}

TEST(ShardingTest, ShortLastBatchIsPaddedLikeDistributedSampler) {
  ExpectSameAsOneProcess(37, 2, true, true);
  ExpectSameAsOneProcess(37, 3, true, false);
  ExpectSameAsOneProcess(5, 4, false, false);
}

// Each rank gets exactly the indices PyTorch's DistributedSampler (shuffle, seed, set_epoch)
// gives it, in its order, for any per-rank batch size:
// tests/data/fixtures/distributed-sampler.json, written and kept true by
// tests/reference/sampler_reference.py with the pinned torch. World size 1 included: one process
// trains in DistributedSampler's single-replica order.
TEST(ShardingTest, EachRankGetsDistributedSamplersIndices) {
  auto fixture = ReadJsonFile(testing::DataPath("fixtures/distributed-sampler.json"));
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  for (const Json& c : fixture->at("cases")) {
    const int64_t n = c.at("examples").get<int64_t>();
    const int world = c.at("world").get<int>();
    for (int64_t batch : {1, 3, 4}) {
      data::TrainingSpec s;
      s.batch_size = batch;
      s.seed = c.at("seed").get<uint64_t>();
      for (int rank = 0; rank < world; ++rank) {
        std::vector<int64_t> got;
        for (const auto& b :
             RankBatches(Lengths(n), s, c.at("epoch").get<int64_t>(), world, rank)) {
          got.insert(got.end(), b.begin(), b.end());
        }
        EXPECT_EQ(got, c.at("ranks")[rank].get<std::vector<int64_t>>())
            << n << " examples, world " << world << ", rank " << rank << ", seed " << s.seed
            << ", epoch " << c.at("epoch") << ", batch " << batch;
      }
    }
  }
}

TEST(ShardingTest, EpochsShuffleDifferentlyButReproducibly) {
  const auto lengths = Lengths(64);
  data::TrainingSpec s;
  s.batch_size = 8;
  s.group_by_length = false;
  EXPECT_EQ(RankBatches(lengths, s, 1, 2, 1), RankBatches(lengths, s, 1, 2, 1));
  EXPECT_NE(RankBatches(lengths, s, 1, 2, 1), RankBatches(lengths, s, 2, 2, 1));
}

}  // namespace
}  // namespace berth::train
