// How each epoch's examples are split into micro-batches: one process, or one rank of a
// data-parallel group. Torch-free, so that the sharding is tested on its own.
#ifndef BERTH_CORE_TRAIN_SHARDING_H_
#define BERTH_CORE_TRAIN_SHARDING_H_

#include <cstdint>
#include <vector>

#include "core/train/trainer.h"

namespace berth::train {

// SplitMix64 over two values: the seeds of epoch shuffles and of per-rank dropout streams.
uint64_t Mix(uint64_t a, uint64_t b);

// The micro-batches (example indices) of one epoch for examples of these token lengths:
// sequential, shuffled (seeded by spec.seed and the epoch), or shuffled and grouped by length
// (transformers' LengthGroupedSampler: mega-batches of up to 50 batches sorted by length, the
// longest batch first).
std::vector<std::vector<int64_t>> EpochBatches(const std::vector<int64_t>& lengths,
                                               const data::TrainingSpec& spec, int64_t epoch);

// Rank `rank` of `world`'s micro-batches, with the semantics of PyTorch's DistributedSampler
// over the batches one process with batch world x spec.batch_size would run: each such global
// batch is padded to a multiple of the world size with the epoch's first examples (only the
// last batch can be short), and rank r takes its rows r, r + world, ... So in every step the
// ranks together see exactly the global batch, and over an epoch every example exactly once
// (plus the padding when the dataset is not a multiple of the world size).
std::vector<std::vector<int64_t>> RankBatches(const std::vector<int64_t>& lengths,
                                              const data::TrainingSpec& spec, int64_t epoch,
                                              int world, int rank);

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_SHARDING_H_
