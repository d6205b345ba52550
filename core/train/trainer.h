// Fine-tuning with Hugging Face Trainer semantics: AdamW, linear warmup/decay, clipping,
// accumulation, evaluation, best-model selection, early stopping, checkpoints and resume.
#ifndef BERTH_CORE_TRAIN_TRAINER_H_
#define BERTH_CORE_TRAIN_TRAINER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/train/dataset.h"
#include "core/train/distributed.h"
#include "core/train/metrics.h"

namespace berth::train {

enum class Precision { kFp32, kBf16 };

// Hyperparameters; defaults are the Hugging Face Trainer's unless noted.
struct TrainingSpec {
  double epochs = 3;            // used when max_steps == 0
  int64_t max_steps = 0;        // > 0: total optimizer updates, overriding epochs
  int64_t batch_size = 8;       // examples per micro-batch
  int64_t eval_batch_size = 8;
  double learning_rate = 5e-5;
  double weight_decay = 0.0;    // decoupled; never on biases or LayerNorm weights
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;   // <= 0 disables clipping
  int64_t warmup_steps = 0;     // > 0 wins over warmup_ratio
  double warmup_ratio = 0.0;
  int64_t grad_accum = 1;
  int64_t max_length = 128;     // tokens per example including special tokens
  bool pad_to_max_length = false;  // pad every batch to max_length instead of its longest row
  uint64_t seed = 42;
  bool shuffle = true;
  // Off, as the Trainer: grouping pads less (faster) but batches of similar length train a
  // worse model (bench/trainer_compare.py; README "Training defaults").
  bool group_by_length = false;
  Precision precision = Precision::kFp32;
  int64_t eval_steps = 0;       // 0: evaluate at the end of every epoch
  int64_t save_steps = 0;       // 0: checkpoint at every evaluation and epoch end
  int early_stopping_patience = 0;  // 0: off; else stop after this many evals without improvement
  std::string metric_for_best;  // "": accuracy (single-label) or micro_f1 (multi-label)
  bool multi_label = false;
  std::vector<double> class_weights;  // per label in label order; empty: unweighted
  double label_smoothing = 0.0;
  double multi_label_threshold = 0.5;
  int num_threads = 0;          // 0: one per core
  // "cpu", "cuda" or "cuda:N": the model, optimizer state and batches live there; batches are
  // copied from pinned host memory without waiting, and bf16 autocasts on that device.
  std::string device = "cpu";
};

// Checks ranges; the message names the offending field.
absl::Status ValidateSpec(const TrainingSpec& spec);

// Reported after every optimizer update (and with `eval` after every evaluation).
struct Progress {
  int64_t update = 0;
  int64_t total_updates = 0;
  double epoch = 0;        // fractional epochs completed
  double loss = 0;         // mean of this update's micro-batch losses
  double lr = 0;           // learning rate this update used
  double grad_norm = 0;    // total L2 norm before clipping
  double samples_per_second = 0;
  double eta_seconds = 0;
  const EvalMetrics* eval = nullptr;  // set on evaluation events only
  bool checkpointed = false;
  // Data-parallel runs: ranks in the group, and the share of this update's time spent
  // averaging gradients across them.
  int world_size = 1;
  double allreduce_share = 0;
};
using ProgressCallback = std::function<void(const Progress&)>;

struct TrainResult {
  int64_t updates = 0;
  int64_t total_updates = 0;
  double epochs_completed = 0;
  double train_loss = 0;  // mean loss over all updates
  double train_seconds = 0;
  double samples_per_second = 0;
  std::vector<EvalMetrics> evals;      // in order
  std::optional<EvalMetrics> best;     // the evaluation of the saved model
  int64_t best_update = 0;
  bool cancelled = false;              // stopped by the cancel flag; a checkpoint was written
  bool early_stopped = false;
  std::vector<std::string> labels;
  std::string output_dir;
  int world_size = 1;
  double allreduce_seconds = 0;  // this rank's time in gradient all-reduce
};

// A complete fine-tuning run, from files to a saved Hugging Face model directory.
struct FineTuneJob {
  // A local HF model directory, a Hub id (bert-base-uncased, org/name, org/name@revision;
  // HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE, HF_TOKEN apply), or config:NAME (bert-tiny,
  // bert-mini, bert-small, bert-medium, bert-base) for a randomly initialised model with the
  // bert-base-uncased vocabulary.
  std::string base_model;
  std::string train_path;
  std::string validation_path;    // optional
  double validation_split = 0.0;  // if no validation_path: fraction of train held out (seeded)
  DatasetOptions data;
  TrainingSpec spec;
  std::string output_dir;
  std::string checkpoint_dir;  // "": <output_dir>.checkpoints
  bool resume = false;         // continue from checkpoint_dir's latest checkpoint
  bool keep_checkpoints = false;  // else removed after a successful run
  std::string log_jsonl;       // optional: one JSON object per update
  // Data-parallel training: this process is one rank of `group` (not owned; null or a world of
  // 1: a single process). Every rank runs the same job with the same files; spec.batch_size is
  // per rank, so N ranks train like one process with batch N x batch_size. Only rank 0 writes
  // checkpoints, the log and the model; every rank resumes from rank 0's checkpoint.
  DistributedGroup* group = nullptr;
};

// Runs the job. Cancellation (the flag becoming true) is checked before every micro-batch:
// the run writes a checkpoint at the last completed update and returns cancelled = true.
absl::StatusOr<TrainResult> RunFineTune(const FineTuneJob& job, const ProgressCallback& progress,
                                        const std::atomic<bool>* cancel);

// Evaluates a saved model directory on a labelled file (loss and all metrics).
absl::StatusOr<EvalMetrics> EvaluateModel(const std::string& model_dir, const std::string& data_path,
                                          const DatasetOptions& data, int64_t max_length,
                                          int64_t batch_size, const std::string& device = "cpu");

// Evaluates a saved model directory on examples already read (the labels must be the model's).
absl::StatusOr<EvalMetrics> EvaluateExamples(const std::string& model_dir, const Dataset& data,
                                             bool pairs, int64_t max_length, int64_t batch_size,
                                             const std::string& device = "cpu");

// Where Berth keeps data files it ships (the bert-base-uncased vocabulary): $BERTH_SHARE_DIR,
// else the source tree's data/ directory.
std::string BerthDataDir();

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_TRAINER_H_
