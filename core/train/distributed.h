// Data-parallel training across processes and hosts on torch's c10d: a TCPStore rendezvous and
// a Gloo process group, joined with torchrun's conventions (MASTER_ADDR, MASTER_PORT,
// WORLD_SIZE, RANK, LOCAL_RANK). The trainer uses the group to start every rank from rank 0's
// parameters, average gradients after backward, shard the data like PyTorch's
// DistributedSampler and reduce evaluation results; only rank 0 writes files.
// This header is torch-free; the tensor operations are in distributed_ops.h.
#ifndef BERTH_CORE_TRAIN_DISTRIBUTED_H_
#define BERTH_CORE_TRAIN_DISTRIBUTED_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace berth::train {

struct DistributedOptions {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int world_size = 1;
  int rank = 0;
  int local_rank = 0;
  int local_world_size = 1;           // ranks on this host (threads are shared among them)
  int64_t bucket_bytes = 25 << 20;    // gradients are all-reduced in buckets of this size
  std::chrono::seconds timeout{300};  // rendezvous and each collective
};

// torchrun's variables: WORLD_SIZE (absent or 1: not distributed → nullopt), RANK, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT. Errors name the variable.
absl::StatusOr<std::optional<DistributedOptions>> DistributedOptionsFromEnvironment();

// A TCP port the kernel reports free on 127.0.0.1 (for a local group's rendezvous); 0 if none.
int FreeLoopbackPort();

class DistributedGroup {
 public:
  // Rendezvous through a TCPStore at master_addr:master_port (rank 0 serves it), then a Gloo
  // process group over TCP. Blocks until every rank has joined or the timeout passes.
  static absl::StatusOr<std::unique_ptr<DistributedGroup>> Join(const DistributedOptions& options);
  ~DistributedGroup();

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  const DistributedOptions& options() const { return options_; }
  // Seconds spent in gradient all-reduce so far (for the communication share of step time).
  double allreduce_seconds() const { return allreduce_seconds_; }

  struct Impl;
  Impl& impl() { return *impl_; }
  void AddAllreduceSeconds(double s) { allreduce_seconds_ += s; }

 private:
  DistributedGroup() = default;
  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
  double allreduce_seconds_ = 0;
};

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_DISTRIBUTED_H_
