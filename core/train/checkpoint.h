// Checkpoints of a fine-tuning run: the weights, the optimizer's state, the CPU generator's state
// and the loop's position, written atomically under <root>/ckpt-<update> with <root>/latest
// naming the newest, so a run resumes at the update boundary it stopped at.
#ifndef BERTH_CORE_TRAIN_CHECKPOINT_H_
#define BERTH_CORE_TRAIN_CHECKPOINT_H_

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/bert.h"
#include "core/train/trainer.h"
#include "core/util/json.h"

namespace berth::train {

// Where the loop is, and what it has seen: all a resumed run needs besides the tensors.
struct TrainState {
  int64_t update = 0;      // optimizer updates done
  int64_t epoch = 0;       // epoch of the next micro-batch
  int64_t next_batch = 0;  // index in that epoch's batch list
  double loss_sum = 0;     // over all updates, for the mean train loss
  int64_t samples = 0;     // examples processed
  double best_metric = 0;
  bool has_best = false;
  int64_t best_update = 0;
  int evals_without_improvement = 0;
  std::vector<Json> evals;
  int64_t last_eval_update = -1;

  Json ToJson() const;
  // `what` names the file in the error for a damaged state.
  static absl::StatusOr<TrainState> FromJson(const Json& j, const std::string& what);
};

// The default CPU generator's state (dropout and shuffles draw from it), and setting it back.
at::Tensor CpuRngState();
void SetCpuRngState(const at::Tensor& state);

// Writes ckpt-<state.update> under `root` (through a .partial directory renamed into place),
// points `latest` at it and removes older checkpoints.
absl::Status WriteCheckpoint(const std::string& root, const TrainState& state,
                             const SequenceClassifierModule& model, torch::optim::AdamW& opt,
                             const at::Tensor& rng_state, const FineTuneJob& job,
                             const std::vector<std::string>& labels);

// Reads the checkpoint `latest` names into `state`, `model`, `opt` and the CPU generator; a
// checkpoint made with other labels is FAILED_PRECONDITION.
absl::Status ReadCheckpoint(const std::string& root, TrainState* state,
                            SequenceClassifierModule& model, torch::optim::AdamW& opt,
                            const std::vector<std::string>& labels);

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_CHECKPOINT_H_
