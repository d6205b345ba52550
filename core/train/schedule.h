// How many optimizer updates a run makes, how many of them warm up, and the learning-rate
// multiplier of each: transformers' get_linear_schedule_with_warmup.
#ifndef BERTH_CORE_TRAIN_SCHEDULE_H_
#define BERTH_CORE_TRAIN_SCHEDULE_H_

#include <cstdint>

#include "core/data/training_spec.h"

namespace berth::train {

struct Schedule {
  int64_t batches_per_epoch = 0;  // global batches (batch_size x world rows)
  int64_t updates_per_epoch = 0;
  int64_t total_updates = 0;
  int64_t warmup_updates = 0;
};

// For `examples` training rows split over `world` ranks. An epoch ends with an update even when
// its batch count is not a multiple of grad_accum (HF's floor would drop that partial update),
// so it has ceil(batches / grad_accum) updates; max_steps > 0 wins over epochs; warmup_steps > 0
// wins over warmup_ratio, which rounds up as HF's get_warmup_steps does.
Schedule PlanSchedule(const data::TrainingSpec& spec, int64_t examples, int world);

// The multiplier of the peak learning rate after `step` updates: step / warmup during warmup,
// then a linear decay to 0 at `total`.
double LrLambda(int64_t step, int64_t warmup, int64_t total);

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_SCHEDULE_H_
