// Training flags shared by `berth finetune` (offline) and `berth train` (remote), so the two
// take the same options with the same defaults (the Hugging Face Trainer's).
#ifndef BERTH_CLIENT_CLI_SPEC_FLAGS_H_
#define BERTH_CLIENT_CLI_SPEC_FLAGS_H_

#include <CLI/CLI.hpp>
#include <string>

#include "absl/status/status.h"
#include "core/data/training_spec.h"

namespace berth::cli {

struct DataFlags {
  std::string text_column, text_pair_column, label_column = "label";
};

void AddDataFlags(CLI::App* cmd, DataFlags* d);

struct SpecFlags {
  data::TrainingSpec spec;
  DataFlags data;
  std::string precision = "fp32";
  std::string class_weights;
  std::string device;  // "": cpu offline, the server's --device remotely
};

// Hyperparameters, data columns, --multi-label, --precision, ... (not the paths).
void AddSpecFlags(CLI::App* cmd, SpecFlags* f);
// Applies the string and negative flags to `spec`; the message names a bad flag.
absl::Status FinishSpecFlags(SpecFlags* f);

}  // namespace berth::cli

#endif  // BERTH_CLIENT_CLI_SPEC_FLAGS_H_
