// The loss of a batch and the evaluation of a model on a labelled set: what the Trainer does
// after every eval interval (`berth eval` runs a saved model through the inference engine
// instead: core/eval/evaluate_model.h).
#ifndef BERTH_CORE_TRAIN_EVALUATE_H_
#define BERTH_CORE_TRAIN_EVALUATE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/data/metrics.h"
#include "core/data/training_spec.h"
#include "core/model/bert.h"
#include "core/train/batches.h"
#include "core/train/distributed.h"

namespace berth::train {

// The mean loss of a batch's logits, in float32: cross-entropy with label smoothing, or
// binary cross-entropy for multi-label; `class_weights` may be undefined.
at::Tensor ComputeLoss(const at::Tensor& logits, const Batch& b, const data::TrainingSpec& s,
                       const at::Tensor& class_weights);

// RAII: autocast to bf16 for the forward pass when asked for (CPU or CUDA autocast).
class AutocastGuard {
 public:
  AutocastGuard(bool on, const c10::Device& device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool on_;
  at::DeviceType type_;
  bool prev_ = false;
};

// Loss and metrics of `model` on `data`, in batches of spec.eval_batch_size sorted by length.
// With a group, rank r evaluates batches r, r + world, ... and the per-example results are
// summed across ranks (each example is filled in by exactly one rank), so every rank ends with
// the metrics one process would compute.
data::EvalMetrics Evaluate(SequenceClassifierModule& model, const Encoded& data,
                           const std::vector<std::string>& labels, const data::TrainingSpec& s,
                           int32_t pad_id, const at::Tensor& class_weights,
                           const c10::Device& device, DistributedGroup* group = nullptr);

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_EVALUATE_H_
