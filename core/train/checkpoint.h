// Checkpoints of a fine-tuning run: the weights, the optimizer's state, the generators' states
// (CPU, and CUDA on a GPU) and the loop's position, written atomically under <root>/ckpt-<update>
// with <root>/latest naming the newest, so a run resumes at the update boundary it stopped at.
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

// The generators a run draws from: the CPU one, and on a CUDA device that device's (torch's
// dropout kernel draws from it), so that a resumed GPU run draws the masks an uninterrupted
// one would have.
struct RngState {
  at::Tensor cpu;
  at::Tensor cuda;  // undefined off CUDA
};
RngState CaptureRng(const c10::Device& device);
// Sets the generators back (the CUDA one on `device`, when the state has it).
void RestoreRng(const RngState& state, const c10::Device& device);

// Writes ckpt-<state.update> under `root` (through a .partial directory renamed into place),
// points `latest` at it and removes older checkpoints.
absl::Status WriteCheckpoint(const std::string& root, const TrainState& state,
                             const SequenceClassifierModule& model, torch::optim::AdamW& opt,
                             const RngState& rng_state, const FineTuneJob& job,
                             const std::vector<std::string>& labels);

// Reads the checkpoint `latest` names into `state`, `model`, `opt` and the generators (the CUDA
// one of `device` when the checkpoint has its state: one written before it had none); a
// checkpoint made with other labels is FAILED_PRECONDITION.
absl::Status ReadCheckpoint(const std::string& root, TrainState* state,
                            SequenceClassifierModule& model, torch::optim::AdamW& opt,
                            const std::vector<std::string>& labels,
                            const c10::Device& device = c10::Device(c10::kCPU));

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_CHECKPOINT_H_
