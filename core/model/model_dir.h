// Hugging Face model directories: config.json + model.safetensors + tokenizer files.
#ifndef BERTH_CORE_MODEL_MODEL_DIR_H_
#define BERTH_CORE_MODEL_MODEL_DIR_H_

#include <torch/nn/module.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/bert.h"
#include "core/model/config.h"
#include "core/model/pooling.h"
#include "core/model/weights.h"
#include "core/text/tokenizer.h"

namespace berth {

// A classifier loaded from disk, ready for inference or fine-tuning.
struct LoadedModel {
  ModelConfig config;
  std::shared_ptr<SequenceClassifierModule> module;
  std::unique_ptr<text::Tokenizer> tokenizer;
  LoadReport report;
  PoolingConfig pooling;  // how it embeds (sentence-transformers' files, or mean)
  // False for a base checkpoint loaded with head_optional: its head is freshly initialised, so it
  // embeds but does not classify.
  bool has_head = true;
};

struct LoadModelOptions {
  text::TokenizerOverrides tokenizer;
  // Strict by default: every parameter loaded, nothing unexpected.
  LoadWeightsOptions weights;
  // A file with no tensor under the head's prefixes (a base checkpoint such as
  // all-MiniLM-L6-v2) loads with the head left fresh and has_head false, instead of failing.
  bool head_optional = false;
};

// The weights file of a model directory as from_pretrained picks it: model.safetensors, else
// pytorch_model.bin; "" if it has neither.
std::string ModelWeightsPath(const std::string& dir);
// Opens that file (a .bin is read without running its pickle, see pytorch_bin.h).
absl::StatusOr<std::unique_ptr<SafetensorsFile>> OpenModelWeights(const std::string& dir);

// Loads config.json, the weights (OpenModelWeights) and the tokenizer from `dir`. Every error names
// the directory and the file at fault.
absl::StatusOr<LoadedModel> LoadModelDirectory(const std::string& dir,
                                               const LoadModelOptions& options = {});

// A randomly initialised BERT of a preset shape (core/model/presets.h) with the bert-base-uncased
// vocabulary read from `data_dir`. The module is created by the caller (labels decide the head);
// `module` is left empty here.
absl::StatusOr<LoadedModel> CreateRandomModel(const std::string& name, const std::string& data_dir);

// Writes an HF directory that `transformers` loads unchanged (config.json with id2label,
// model.safetensors with format=pt, tokenizer files). A new directory appears whole: it is
// written beside its final name and renamed into place.
absl::Status SaveModelDirectory(const std::string& dir, const ModelConfig& config,
                                const torch::nn::Module& module, const text::Tokenizer& tokenizer);

}  // namespace berth

#endif  // BERTH_CORE_MODEL_MODEL_DIR_H_
