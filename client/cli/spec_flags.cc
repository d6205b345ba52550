// Training flags shared by the offline and remote training commands.
#include "client/cli/spec_flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace berth::cli {

void AddDataFlags(CLI::App* cmd, DataFlags* d) {
  cmd->add_option("--text-column", d->text_column,
                  "Column/field with the text (default: text, or sentence when there is no text)");
  cmd->add_option("--text-pair-column", d->text_pair_column,
                  "Second text column: sentence-pair classification");
  cmd->add_option("--label-column", d->label_column, "Column/field with the label")->capture_default_str();
}

void AddSpecFlags(CLI::App* cmd, SpecFlags* f) {
  cmd->add_option("--epochs", f->spec.epochs, "Training epochs")->capture_default_str();
  cmd->add_option("--max-steps", f->spec.max_steps, "Total optimizer updates; overrides --epochs when > 0")
      ->capture_default_str();
  cmd->add_option("--batch-size", f->spec.batch_size, "Examples per micro-batch")->capture_default_str();
  cmd->add_option("--eval-batch-size", f->spec.eval_batch_size, "Examples per evaluation batch")->capture_default_str();
  cmd->add_option("--lr", f->spec.learning_rate, "Peak learning rate")->capture_default_str();
  cmd->add_option("--weight-decay", f->spec.weight_decay, "AdamW decoupled weight decay (not on biases/LayerNorm)")
      ->capture_default_str();
  cmd->add_option("--warmup-steps", f->spec.warmup_steps, "Linear warmup updates (wins over --warmup-ratio)")
      ->capture_default_str();
  cmd->add_option("--warmup-ratio", f->spec.warmup_ratio, "Linear warmup as a fraction of all updates")
      ->capture_default_str();
  cmd->add_option("--grad-accum", f->spec.grad_accum, "Micro-batches accumulated per update")->capture_default_str();
  cmd->add_option("--max-grad-norm", f->spec.max_grad_norm, "Gradient clipping norm (0: off)")->capture_default_str();
  cmd->add_option("--max-length", f->spec.max_length, "Tokens per example, special tokens included")
      ->capture_default_str();
  cmd->add_option("--seed", f->spec.seed, "Seed for initialisation, shuffling and dropout")->capture_default_str();
  cmd->add_option("--precision", f->precision, "fp32, or bf16 autocast (weights and optimizer stay fp32)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--device", f->device,
                  "cpu, cuda or cuda:N (default cpu; remotely, the server's --device)");
  cmd->add_option("--eval-steps", f->spec.eval_steps, "Evaluate every N updates (0: every epoch)")->capture_default_str();
  cmd->add_option("--save-steps", f->spec.save_steps, "Checkpoint every N updates (0: at every evaluation/epoch)")
      ->capture_default_str();
  cmd->add_option("--early-stopping-patience", f->spec.early_stopping_patience,
                 "Stop after N evaluations without improvement (0: off)")
      ->capture_default_str();
  cmd->add_option("--metric-for-best", f->spec.metric_for_best,
                 "Metric that picks the saved model: accuracy, macro_f1, micro_f1, loss, ... "
                 "(default: accuracy; micro_f1 for --multi-label)");
  AddDataFlags(cmd, &f->data);
  cmd->add_flag("--multi-label", f->spec.multi_label,
               "Rows carry several labels (JSON arrays, or ';'-separated in CSV/TSV); BCE loss, 0.5 threshold");
  cmd->add_option("--class-weights", f->class_weights,
                 "Comma-separated loss weight per label, in label order");
  cmd->add_option("--label-smoothing", f->spec.label_smoothing, "Label smoothing factor")->capture_default_str();
  cmd->add_flag("--no-shuffle", f->no_shuffle, "Keep the file order (no shuffling)");
  cmd->add_flag("--group-by-length,!--no-group-by-length", f->spec.group_by_length,
                "Batches of similar length (less padding, faster; off by default, as in the Trainer: "
                "it costs accuracy)")
      ->capture_default_str();
  cmd->add_flag("--pad-to-max-length", f->spec.pad_to_max_length, "Pad every batch to --max-length");
}

absl::Status FinishSpecFlags(SpecFlags* f) {
  f->spec.precision = f->precision == "bf16" ? train::Precision::kBf16 : train::Precision::kFp32;
  f->spec.device = f->device.empty() ? "cpu" : f->device;
  f->spec.shuffle = !f->no_shuffle;
  f->spec.class_weights.clear();
  if (!f->class_weights.empty()) {
    for (absl::string_view w : absl::StrSplit(f->class_weights, ',')) {
      double v;
      if (!absl::SimpleAtod(w, &v)) {
        return absl::InvalidArgumentError(absl::StrCat("--class-weights: '", w, "' is not a number"));
      }
      f->spec.class_weights.push_back(v);
    }
  }
  return absl::OkStatus();
}

}  // namespace berth::cli
