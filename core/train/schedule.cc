// The linear warmup / decay schedule.
#include "core/train/schedule.h"

#include <algorithm>
#include <cmath>

namespace berth::train {

Schedule PlanSchedule(const data::TrainingSpec& s, int64_t examples, int world) {
  Schedule out;
  const int64_t global_batch = s.batch_size * world;
  out.batches_per_epoch = (examples + global_batch - 1) / global_batch;
  out.updates_per_epoch = (out.batches_per_epoch + s.grad_accum - 1) / s.grad_accum;
  out.total_updates =
      s.max_steps > 0
          ? s.max_steps
          : static_cast<int64_t>(std::ceil(s.epochs * static_cast<double>(out.updates_per_epoch)));
  out.warmup_updates =
      s.warmup_steps > 0 ? s.warmup_steps
                         : static_cast<int64_t>(
                               std::ceil(s.warmup_ratio * static_cast<double>(out.total_updates)));
  return out;
}

double LrLambda(int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup)
    return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  return std::max(0.0, static_cast<double>(total - step) /
                           static_cast<double>(std::max<int64_t>(1, total - warmup)));
}

}  // namespace berth::train
