// What a fine-tuning run reports after every optimizer update: the trainer produces it, the
// job runner stores it, the server turns it into metrics. Plain values, no torch.
#ifndef BERTH_CORE_DATA_PROGRESS_H_
#define BERTH_CORE_DATA_PROGRESS_H_

#include <cstdint>

#include "core/data/metrics.h"

namespace berth::data {

// Reported after every optimizer update (and with `eval` after every evaluation).
struct Progress {
  int64_t update = 0;
  int64_t total_updates = 0;
  double epoch = 0;      // fractional epochs completed
  double loss = 0;       // mean of this update's micro-batch losses
  double lr = 0;         // learning rate this update used
  double grad_norm = 0;  // total L2 norm before clipping
  double samples_per_second = 0;
  double eta_seconds = 0;
  const EvalMetrics* eval = nullptr;  // set on evaluation events only
  // Data-parallel runs: ranks in the group, and the share of this update's time spent
  // averaging gradients across them.
  int world_size = 1;
  double allreduce_share = 0;
};

}  // namespace berth::data

#endif  // BERTH_CORE_DATA_PROGRESS_H_
