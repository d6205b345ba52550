// Fine-tuning with Hugging Face Trainer semantics: AdamW, linear warmup/decay, clipping,
// accumulation, evaluation, best-model selection, early stopping, checkpoints and resume.
#ifndef BERTH_CORE_TRAIN_TRAINER_H_
#define BERTH_CORE_TRAIN_TRAINER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/data/metrics.h"
#include "core/data/progress.h"
#include "core/data/training_spec.h"
#include "core/train/distributed.h"

namespace berth::train {

// Checks ranges; the message names the offending field.
absl::Status ValidateSpec(const data::TrainingSpec& spec);

using ProgressCallback = std::function<void(const data::Progress&)>;

struct TrainResult {
  int64_t updates = 0;
  int64_t total_updates = 0;
  double epochs_completed = 0;
  double train_loss = 0;  // mean loss over all updates
  double train_seconds = 0;
  double samples_per_second = 0;
  std::vector<data::EvalMetrics> evals;   // in order
  std::optional<data::EvalMetrics> best;  // the evaluation of the saved model
  int64_t best_update = 0;
  bool cancelled = false;  // stopped by the cancel flag; a checkpoint was written
  bool early_stopped = false;
  std::vector<std::string> labels;
  // The base model's parameters that were not in its checkpoint and start from a fresh
  // initialisation (a new classification head), as transformers lists them.
  std::vector<std::string> newly_initialized;
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
  data::DatasetOptions data;
  data::TrainingSpec spec;
  std::string output_dir;
  std::string checkpoint_dir;     // "": <output_dir>.checkpoints
  bool resume = false;            // continue from checkpoint_dir's latest checkpoint
  bool keep_checkpoints = false;  // else removed after a successful run
  std::string log_jsonl;          // optional: one JSON object per update
  // Data-parallel training: this process is one rank of `group` (not owned; null or a world of
  // 1: a single process). Every rank runs the same job with the same files; spec.batch_size is
  // per rank, so N ranks train like one process with batch N x batch_size. Only rank 0 writes
  // checkpoints, the log and the model; every rank resumes from rank 0's checkpoint.
  DistributedGroup* group = nullptr;
  // Asked before every write to checkpoint_dir or output_dir (a checkpoint, the best weights,
  // the model); an error ends the run with it, writing nothing. The job runner's lease check:
  // a worker that lost its job to another must not overwrite that worker's checkpoints.
  std::function<absl::Status()> may_write;
};

struct TrainerRun;  // everything one run holds: data, model, optimizer, state (trainer.cc)

// The fine-tuning loop of transformers' Trainer, one public method per phase:
//   Create    set-up: reads and encodes the data, builds the model, the optimizer and the
//             schedule, and resumes from the latest checkpoint when the job asks;
//   Step      one optimizer update over up to grad_accum micro-batches;
//   Evaluate  the validation set's metrics, keeping the best weights so far;
//   Checkpoint, and Finish, which saves the model directory (the best evaluation's weights).
// Train runs them in the Trainer's order. Torch errors come back as statuses.
class Trainer {
 public:
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const FineTuneJob& job);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Updates until the schedule or early stopping ends the run, or `cancel` becomes true (checked
  // before every micro-batch; the run then writes a checkpoint at the last completed update and
  // returns cancelled = true); each update and evaluation is reported to `progress`. Then Finish.
  absl::StatusOr<TrainResult> Train(const ProgressCallback& progress,
                                    const std::atomic<bool>* cancel);

  struct Update {
    data::Progress progress;
    bool epoch_end = false;  // the update finished its epoch
  };
  // One optimizer update; nullopt when `cancel` stopped it (after writing the checkpoint).
  absl::StatusOr<std::optional<Update>> Step(const std::atomic<bool>* cancel);
  // Evaluates at the current update (an update is evaluated once), remembers the best weights.
  absl::StatusOr<const data::EvalMetrics*> Evaluate(double epoch);
  // A checkpoint at the current update, unless there is one already (rank 0 only).
  absl::Status Checkpoint();
  // The result; unless cancelled, the model directory, metrics.json and training_args.json.
  absl::StatusOr<TrainResult> Finish();

 private:
  explicit Trainer(std::unique_ptr<TrainerRun> run);
  std::unique_ptr<TrainerRun> run_;
};

// Runs the job: Trainer::Create, then Train.
absl::StatusOr<TrainResult> RunFineTune(const FineTuneJob& job, const ProgressCallback& progress,
                                        const std::atomic<bool>* cancel);

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_TRAINER_H_
