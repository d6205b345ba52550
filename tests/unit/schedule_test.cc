// The schedule on its own: the update count and warmup of a run, and the multiplier of
// transformers' get_linear_schedule_with_warmup, at values worked out by hand.
#include "core/train/schedule.h"

#include <gtest/gtest.h>

namespace berth::train {
namespace {

TEST(ScheduleTest, LinearWarmupThenLinearDecay) {
  // warmup 10 of 100: 0 -> 1 over the first 10 updates, then down to 0 at 100.
  EXPECT_EQ(LrLambda(0, 10, 100), 0.0);
  EXPECT_EQ(LrLambda(5, 10, 100), 0.5);
  EXPECT_EQ(LrLambda(10, 10, 100), 1.0);
  EXPECT_EQ(LrLambda(55, 10, 100), 0.5);
  EXPECT_EQ(LrLambda(99, 10, 100), 1.0 / 90.0);
  EXPECT_EQ(LrLambda(100, 10, 100), 0.0);
  EXPECT_EQ(LrLambda(120, 10, 100), 0.0);  // past the end: clamped, never negative
  // No warmup: full rate at the first update.
  EXPECT_EQ(LrLambda(0, 0, 4), 1.0);
  EXPECT_EQ(LrLambda(3, 0, 4), 0.25);
  // Warmup as long as the run: no division by zero in the decay.
  EXPECT_EQ(LrLambda(4, 4, 4), 0.0);
}

TEST(ScheduleTest, UpdatesPerEpochRoundUpAndMaxStepsWins) {
  data::TrainingSpec s;
  s.batch_size = 3;
  s.grad_accum = 2;
  s.epochs = 1.5;
  // 10 rows: 4 batches of 3 (the last holds 1), 2 updates per epoch; 1.5 epochs: 3 updates.
  Schedule p = PlanSchedule(s, 10, 1);
  EXPECT_EQ(p.batches_per_epoch, 4);
  EXPECT_EQ(p.updates_per_epoch, 2);
  EXPECT_EQ(p.total_updates, 3);
  EXPECT_EQ(p.warmup_updates, 0);
  // 7 rows: 3 batches; the third update-worth is a lone micro-batch, and it is an update.
  EXPECT_EQ(PlanSchedule(s, 7, 1).updates_per_epoch, 2);
  // Two ranks: a global batch of 6, so 10 rows are 2 batches, 1 update per epoch, 2 in all.
  p = PlanSchedule(s, 10, 2);
  EXPECT_EQ(p.updates_per_epoch, 1);
  EXPECT_EQ(p.total_updates, 2);
  s.max_steps = 17;
  EXPECT_EQ(PlanSchedule(s, 10, 1).total_updates, 17);
}

TEST(ScheduleTest, WarmupStepsWinAndTheRatioRoundsUp) {
  data::TrainingSpec s;
  s.max_steps = 25;
  s.warmup_ratio = 0.1;
  EXPECT_EQ(PlanSchedule(s, 100, 1).warmup_updates, 3);  // ceil(2.5), as HF's get_warmup_steps
  s.warmup_steps = 7;
  EXPECT_EQ(PlanSchedule(s, 100, 1).warmup_updates, 7);
}

}  // namespace
}  // namespace berth::train
