// The collective operations the trainer runs on a DistributedGroup (torch tensors).
#ifndef BERTH_CORE_TRAIN_DISTRIBUTED_OPS_H_
#define BERTH_CORE_TRAIN_DISTRIBUTED_OPS_H_

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <vector>

#include "core/train/distributed.h"

namespace berth::train {

// Copies rank 0's values into every rank's tensors, in place.
void BroadcastFromRank0(DistributedGroup& g, const std::vector<at::Tensor>& tensors);

// Averages the gradients of `params` across ranks, in buckets of options().bucket_bytes
// flattened in reverse parameter order (the order backward produces them). Every bucket's
// all-reduce is started before the first is waited for, so communication overlaps the packing
// of the next bucket. Parameters without a gradient are skipped (the same on every rank).
void AverageGradients(DistributedGroup& g, const std::vector<at::Tensor>& params);

// Sums a tensor across ranks, in place (every rank gets the same bits).
void AllReduceSum(DistributedGroup& g, at::Tensor& t);

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_DISTRIBUTED_OPS_H_
