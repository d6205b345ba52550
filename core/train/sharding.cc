// How each epoch's examples are split into micro-batches, for one process or one rank of a group.
#include "core/train/sharding.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <numeric>

namespace berth::train {

uint64_t Mix(uint64_t a, uint64_t b) {  // SplitMix64 over a and b
  uint64_t z = a * 0x9E3779B97F4A7C15ULL + b + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The micro-batches of one epoch: sequential, shuffled, or shuffled and grouped by length
// (transformers' LengthGroupedSampler: mega-batches of 50 batches sorted by length).
std::vector<std::vector<int64_t>> EpochBatches(const std::vector<int64_t>& lengths,
                                               const data::TrainingSpec& s, int64_t epoch) {
  const int64_t n = static_cast<int64_t>(lengths.size());
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (s.shuffle) {
    // PyTorch's DistributedSampler order: torch.randperm(n) from a CPU generator seeded with
    // seed + epoch (the same ATen kernel, so the same permutation; sampler_test checks it
    // against index lists the pinned torch wrote).
    at::Generator gen =
        at::make_generator<at::CPUGeneratorImpl>(s.seed + static_cast<uint64_t>(epoch));
    const at::Tensor perm = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong));
    const int64_t* p = perm.data_ptr<int64_t>();
    order.assign(p, p + n);
    if (s.group_by_length) {
      const int64_t mega =
          s.batch_size * std::max<int64_t>(1, std::min<int64_t>(50, n / (s.batch_size * 4)));
      for (int64_t i = 0; i < n; i += mega) {
        std::stable_sort(order.begin() + i, order.begin() + std::min(n, i + mega),
                         [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
      }
    }
  }
  std::vector<std::vector<int64_t>> batches;
  for (int64_t i = 0; i < n; i += s.batch_size) {
    batches.emplace_back(order.begin() + i, order.begin() + std::min(n, i + s.batch_size));
  }
  if (s.shuffle && s.group_by_length && batches.size() > 1) {
    // Longest batch first, so memory problems show at once.
    size_t longest = 0;
    int64_t best = 0;
    for (size_t i = 0; i < batches.size(); ++i) {
      const int64_t len = lengths[batches[i][0]];
      if (len > best) best = len, longest = i;
    }
    std::swap(batches[0], batches[longest]);
  }
  return batches;
}

// One rank's micro-batches of an epoch, with the semantics of PyTorch's DistributedSampler over
// the batches one process with batch world x batch_size would run: each such global batch is
// padded to a multiple of the world size with the epoch's first examples (only the last one can
// be short), and rank r takes its rows r, r + world, r + 2 world, ... So in every step the
// ranks together see exactly the global batch.
std::vector<std::vector<int64_t>> RankBatches(const std::vector<int64_t>& lengths,
                                              const data::TrainingSpec& s, int64_t epoch, int world,
                                              int rank) {
  data::TrainingSpec global = s;
  global.batch_size = s.batch_size * world;
  std::vector<std::vector<int64_t>> batches = EpochBatches(lengths, global, epoch);
  if (world == 1) return batches;
  std::vector<int64_t> first;  // the epoch's order, for padding
  for (const auto& b : batches) first.insert(first.end(), b.begin(), b.end());
  std::vector<std::vector<int64_t>> mine;
  mine.reserve(batches.size());
  for (auto& b : batches) {
    for (size_t i = 0; b.size() % static_cast<size_t>(world) != 0; ++i)
      b.push_back(first[i % first.size()]);
    std::vector<int64_t> rows;
    for (size_t i = static_cast<size_t>(rank); i < b.size(); i += static_cast<size_t>(world))
      rows.push_back(b[i]);
    mine.push_back(std::move(rows));
  }
  return mine;
}

}  // namespace berth::train
