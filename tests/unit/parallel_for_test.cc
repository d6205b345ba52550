// ParallelFor (core/runtime): every index once, in contiguous ranges of whole grains, on more
// than one of ATen's threads when it has them (at::parallel_for, compiled into Berth without
// -fopenmp, runs on one).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "core/runtime/runtime.h"

namespace berth {
namespace {

struct Calls {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::set<std::thread::id> threads;
};

Calls Record(int64_t begin, int64_t end, int64_t grain) {
  Calls calls;
  std::mutex mu;
  ParallelFor(begin, end, grain, [&](int64_t b, int64_t e) {
    std::lock_guard<std::mutex> lock(mu);
    calls.ranges.emplace_back(b, e);
    calls.threads.insert(std::this_thread::get_id());
  });
  std::sort(calls.ranges.begin(), calls.ranges.end());
  return calls;
}

class ParallelForTest : public testing::Test {
 protected:
  // Two intra-op threads whatever the machine has (OpenMP runs two on one core as well).
  void SetUp() override {
    threads_ = at::get_num_threads();
    at::set_num_threads(2);
  }
  void TearDown() override { at::set_num_threads(threads_); }
  int threads_ = 1;
};

TEST_F(ParallelForTest, CoversEachIndexOnceInRangesOfWholeGrains) {
  const Calls calls = Record(5, 1005, 100);
  ASSERT_EQ(calls.ranges.size(), 2u);  // one range per thread
  EXPECT_EQ(calls.ranges.front().first, 5);
  EXPECT_EQ(calls.ranges.back().second, 1005);
  for (size_t i = 0; i < calls.ranges.size(); ++i) {
    EXPECT_EQ((calls.ranges[i].first - 5) % 100, 0);  // whole grains from begin
    EXPECT_GE(calls.ranges[i].second - calls.ranges[i].first, 100);
    if (i > 0) {
      EXPECT_EQ(calls.ranges[i].first, calls.ranges[i - 1].second);
    }
  }
  EXPECT_EQ(calls.threads.size(), 2u);
  EXPECT_TRUE(calls.threads.count(std::this_thread::get_id()));  // the caller takes a share
}

TEST_F(ParallelForTest, TheLastRangeEndsShortAtTheEnd) {
  // Three grains, the last half of one, on two threads: two grains, then the rest.
  const Calls calls = Record(0, 250, 100);
  EXPECT_EQ(calls.ranges, (std::vector<std::pair<int64_t, int64_t>>{{0, 200}, {200, 250}}));
  EXPECT_EQ(calls.threads.size(), 2u);
}

TEST_F(ParallelForTest, OneGrainOrLessRunsOnTheCaller) {
  const Calls calls = Record(0, 100, 100);
  ASSERT_EQ(calls.ranges.size(), 1u);
  EXPECT_EQ(calls.ranges[0], std::make_pair(int64_t{0}, int64_t{100}));
  EXPECT_EQ(*calls.threads.begin(), std::this_thread::get_id());
  EXPECT_TRUE(Record(7, 7, 1).ranges.empty());  // an empty range calls nothing
}

TEST_F(ParallelForTest, InsideAParallelRegionRunsOnThatThread) {
  // Nested: each outer range runs its inner loop whole, on the thread that called it.
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> inner;
  ParallelFor(0, 2, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const Calls calls = Record(0, 1000, 10);
      std::lock_guard<std::mutex> lock(mu);
      ASSERT_EQ(calls.threads.size(), 1u);
      EXPECT_EQ(*calls.threads.begin(), std::this_thread::get_id());
      inner.insert(inner.end(), calls.ranges.begin(), calls.ranges.end());
    }
  });
  EXPECT_EQ(inner, (std::vector<std::pair<int64_t, int64_t>>{{0, 1000}, {0, 1000}}));
}

}  // namespace
}  // namespace berth
