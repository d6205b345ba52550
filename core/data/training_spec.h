// A fine-tuning job's hyperparameters: a plain struct with no torch, so that the thin client and
// the service can carry it.
#ifndef BERTH_CORE_DATA_TRAINING_SPEC_H_
#define BERTH_CORE_DATA_TRAINING_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/data/multi_label.h"

namespace berth::data {

enum class Precision { kFp32, kBf16 };

// Hyperparameters; defaults are the Hugging Face Trainer's unless noted.
struct TrainingSpec {
  double epochs = 3;       // used when max_steps == 0
  int64_t max_steps = 0;   // > 0: total optimizer updates, overriding epochs
  int64_t batch_size = 8;  // examples per micro-batch
  int64_t eval_batch_size = 8;
  double learning_rate = 5e-5;
  double weight_decay = 0.0;  // decoupled; never on biases or LayerNorm weights
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;  // <= 0 disables clipping
  int64_t warmup_steps = 0;    // > 0 wins over warmup_ratio
  double warmup_ratio = 0.0;
  int64_t grad_accum = 1;
  int64_t max_length = 128;        // tokens per example including special tokens
  bool pad_to_max_length = false;  // pad every batch to max_length instead of its longest row
  uint64_t seed = 42;
  bool shuffle = true;
  // Off, as the Trainer: grouping pads less (faster) but batches of similar length train a
  // worse model (bench/trainer_compare.py; docs/training.md, "Training defaults").
  bool group_by_length = false;
  Precision precision = Precision::kFp32;
  int64_t eval_steps = 0;           // 0: evaluate at the end of every epoch
  int64_t save_steps = 0;           // 0: checkpoint at every evaluation and epoch end
  int early_stopping_patience = 0;  // 0: off; else stop after this many evals without improvement
  std::string metric_for_best;      // "": accuracy (single-label) or micro_f1 (multi-label)
  bool multi_label = false;
  // "": the labels are classes. "bce" or "mse": a one-logit scorer (a cross-encoder, when the rows
  // are pairs) trained on numeric labels: "bce" is binary cross-entropy on the logit with labels
  // in [0, 1] (sentence-transformers' CrossEncoder; served with the sigmoid), "mse" the squared
  // error of the logit itself (transformers' regression, problem_type "regression").
  std::string score_loss;
  std::vector<double> class_weights;  // per label in label order; empty: unweighted
  double label_smoothing = 0.0;
  double multi_label_threshold = kDefaultMultiLabelThreshold;
  int num_threads = 0;  // 0: one per core
  // "cpu", "cuda" or "cuda:N": the model, optimizer state and batches live there; batches are
  // copied from pinned host memory without waiting, and bf16 autocasts on that device.
  std::string device = "cpu";
};

// The hyperparameters a job carries under one name everywhere: the TrainingSpec member, the
// `optional` scalar of the proto's Hyperparameters (unset keeps the default), the key in the
// stored job JSON and in training_args.json. X(field, flags, help): `flags` and `help` make the
// option of `berth finetune` and `berth train` (a bool becomes a flag). Each place that carries
// a spec expands this list, so a field added here reaches all of them. The other members
// (precision, metric_for_best, class_weights, multi_label, score_loss, device, num_threads) take a
// different
// form in some of those places and are handled beside each expansion.
#define BERTH_TRAINING_SPEC_FIELDS(X)                                                         \
  X(epochs, "--epochs", "Training epochs")                                                    \
  X(max_steps, "--max-steps", "Total optimizer updates; overrides --epochs when > 0")         \
  X(batch_size, "--batch-size", "Examples per micro-batch")                                   \
  X(eval_batch_size, "--eval-batch-size", "Examples per evaluation batch")                    \
  X(learning_rate, "--lr,--learning-rate", "Peak learning rate")                              \
  X(weight_decay, "--weight-decay", "AdamW decoupled weight decay (not on biases/LayerNorm)") \
  X(adam_beta1, "--adam-beta1", "AdamW beta1")                                                \
  X(adam_beta2, "--adam-beta2", "AdamW beta2")                                                \
  X(adam_epsilon, "--adam-epsilon", "AdamW epsilon")                                          \
  X(max_grad_norm, "--max-grad-norm", "Gradient clipping norm (0: off)")                      \
  X(warmup_steps, "--warmup-steps", "Linear warmup updates (wins over --warmup-ratio)")       \
  X(warmup_ratio, "--warmup-ratio", "Linear warmup as a fraction of all updates")             \
  X(grad_accum, "--grad-accum", "Micro-batches accumulated per update")                       \
  X(max_length, "--max-length", "Tokens per example, special tokens included")                \
  X(pad_to_max_length, "--pad-to-max-length", "Pad every batch to --max-length")              \
  X(seed, "--seed", "Seed for initialisation, shuffling and dropout")                         \
  X(shuffle, "--shuffle,!--no-shuffle",                                                       \
    "Shuffle the training rows every epoch (--no-shuffle: file order)")                       \
  X(group_by_length, "--group-by-length,!--no-group-by-length",                               \
    "Batches of similar length (less padding, faster; off by default, as in the Trainer: it " \
    "costs accuracy)")                                                                        \
  X(eval_steps, "--eval-steps", "Evaluate every N updates (0: every epoch)")                  \
  X(save_steps, "--save-steps", "Checkpoint every N updates (0: at every evaluation/epoch)")  \
  X(early_stopping_patience, "--early-stopping-patience",                                     \
    "Stop after N evaluations without improvement (0: off)")                                  \
  X(label_smoothing, "--label-smoothing", "Label smoothing factor")                           \
  X(multi_label_threshold, "--multi-label-threshold",                                         \
    "Probability over which a label is predicted (--multi-label)")

}  // namespace berth::data

#endif  // BERTH_CORE_DATA_TRAINING_SPEC_H_
