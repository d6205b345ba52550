// Evaluating a saved classifier on a labelled set through the inference engine (what `berth
// eval` runs): the examples go a window at a time, tokenized across the cores and batched by
// length under the engine's budget, and the loss and metrics are those the Trainer's evaluation
// computes (core/train/evaluate.h) from the same logits.
#ifndef BERTH_CORE_EVAL_EVALUATE_MODEL_H_
#define BERTH_CORE_EVAL_EVALUATE_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/data/metrics.h"
#include "core/infer/engine.h"

namespace berth {

struct EvaluateOptions {
  int max_length = 0;    // tokens per example; 0: the model's
  size_t window = 4096;  // examples tokenized and handed to the engine together
  // After each window: examples done so far, of `total`.
  std::function<void(size_t done, size_t total)> progress;
};

// Loss (cross-entropy, or binary cross-entropy per label for multi-label, in double from the
// fp32 logits) and metrics of the engine's model on `data`; `pairs` encodes text and
// text_pair. A scorer (a regression model, or one label without a problem type: a
// cross-encoder) takes numeric labels and reports its training loss (squared error, or binary
// cross-entropy on graded labels) with Pearson and Spearman of its scores. A label the model
// does not have (a scorer's: not a number, or bce's outside [0, 1]), or text that cannot be
// encoded, is INVALID_ARGUMENT naming the file and line.
absl::StatusOr<data::EvalMetrics> EvaluateWithEngine(const InferenceEngine& engine,
                                                     const data::Dataset& data, bool pairs,
                                                     const EvaluateOptions& options = {});

struct EvaluateModelOptions {
  EngineOptions engine;      // device, precision, batch size and token budget
  EvaluateOptions evaluate;  // max_length, window, progress
};

// Loads `model_dir` into an engine and evaluates it on a labelled file (read with `data`'s
// columns; multi-label as the model's config says).
absl::StatusOr<data::EvalMetrics> EvaluateModel(const std::string& model_dir,
                                                const std::string& data_path,
                                                const data::DatasetOptions& data,
                                                const EvaluateModelOptions& options = {});

// The same on examples already read.
absl::StatusOr<data::EvalMetrics> EvaluateExamples(const std::string& model_dir,
                                                   const data::Dataset& data, bool pairs,
                                                   const EvaluateModelOptions& options = {});

}  // namespace berth

#endif  // BERTH_CORE_EVAL_EVALUATE_MODEL_H_
