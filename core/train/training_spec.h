// A fine-tuning job's hyperparameters: a plain struct with no torch, so that the thin client and
// the service can carry it.
#ifndef BERTH_CORE_TRAIN_TRAINING_SPEC_H_
#define BERTH_CORE_TRAIN_TRAINING_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

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

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_TRAINING_SPEC_H_
