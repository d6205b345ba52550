// Training flags shared by the offline and remote training commands.
#include "client/cli/spec_flags.h"

#include <type_traits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace berth::cli {

void AddDataFlags(CLI::App* cmd, DataFlags* d) {
  cmd->add_option("--text-column", d->text_column,
                  "Column/field with the text (default: text, or sentence when there is no text)");
  cmd->add_option("--text-pair-column", d->text_pair_column,
                  "Second text column: sentence-pair classification");
  cmd->add_option("--label-column", d->label_column, "Column/field with the label")
      ->capture_default_str();
}

namespace {

// One table field as an option (a bool as a flag), its default shown in --help.
template <typename T>
void AddField(CLI::App* cmd, const char* flags, const char* help, T* value) {
  if constexpr (std::is_same_v<T, bool>) {
    cmd->add_flag(flags, *value, help)->capture_default_str();
  } else {
    cmd->add_option(flags, *value, help)->capture_default_str();
  }
}

}  // namespace

void AddSpecFlags(CLI::App* cmd, SpecFlags* f) {
#define BERTH_ADD_FLAG(field, flags, help) AddField(cmd, flags, help, &f->spec.field);
  BERTH_TRAINING_SPEC_FIELDS(BERTH_ADD_FLAG)
#undef BERTH_ADD_FLAG
  cmd->add_option("--precision", f->precision,
                  "fp32, or bf16 autocast (weights and optimizer stay fp32)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--device", f->device,
                  "cpu, cuda or cuda:N (default cpu; remotely, the server's --device)");
  cmd->add_option("--metric-for-best", f->spec.metric_for_best,
                  "Metric that picks the saved model: accuracy, macro_f1, micro_f1, loss, ... "
                  "(default: accuracy; micro_f1 for --multi-label; loss for --score)");
  AddDataFlags(cmd, &f->data);
  cmd->add_flag("--multi-label", f->spec.multi_label,
                "Rows carry several labels (JSON arrays, or ';'-separated in CSV/TSV); BCE loss, "
                "--multi-label-threshold");
  cmd->add_option("--score", f->spec.score_loss,
                  "Train a one-logit scorer on numeric labels (a cross-encoder, with "
                  "--text-pair-column): bce (sentence-transformers' CrossEncoder: labels in "
                  "[0, 1], served with the sigmoid) or mse (transformers' regression)")
      ->check(CLI::IsMember({"bce", "mse"}));
  cmd->add_option("--class-weights", f->class_weights,
                  "Comma-separated loss weight per label, in label order");
}

absl::Status FinishSpecFlags(SpecFlags* f) {
  f->spec.precision = f->precision == "bf16" ? data::Precision::kBf16 : data::Precision::kFp32;
  f->spec.device = f->device.empty() ? "cpu" : f->device;
  f->spec.class_weights.clear();
  if (!f->class_weights.empty()) {
    for (absl::string_view w : absl::StrSplit(f->class_weights, ',')) {
      double v;
      if (!absl::SimpleAtod(w, &v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--class-weights: '", w, "' is not a number"));
      }
      f->spec.class_weights.push_back(v);
    }
  }
  return absl::OkStatus();
}

}  // namespace berth::cli
