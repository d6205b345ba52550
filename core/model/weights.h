// Moving weights between torch modules and safetensors files, name for name with Hugging Face.
#ifndef BERTH_CORE_MODEL_WEIGHTS_H_
#define BERTH_CORE_MODEL_WEIGHTS_H_

#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/model/safetensors.h"

namespace berth {

// What a load found, by tensor name.
struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     // parameters the file does not have
  std::vector<std::string> unexpected;  // tensors in the file the model does not have
  std::vector<std::string> mismatched;  // "name: file [a, b] vs model [c, d]" / dtype problems
  // Parameters under skip_prefixes: not read from the file, left at their fresh initial values
  // (what transformers calls "newly initialized").
  std::vector<std::string> initialized;
  std::string Summary() const;
};

struct LoadWeightsOptions {
  // Parameters under these prefixes keep their initial values and file tensors under them are
  // ignored (a fresh classification head: "classifier.").
  std::vector<std::string> skip_prefixes;
  // Tensors the model does not have (a pre-training head such as "cls.") are reported, not fatal.
  bool allow_unexpected = false;
  // Files saved from the bare encoder lack this prefix on every name; it is added when the
  // model's names have it and the file's do not (transformers' base_model_prefix). Empty: the
  // first component of the model's first parameter ("bert.", "distilbert.", "roberta.").
  std::string base_model_prefix;
  // Parameters whose dtype the file has, at torch's own 64-byte alignment, alias the file's
  // mapping instead of being copied (when the file is mapped, and the parameter on the CPU):
  // no copy, and processes that load the same file share its pages. The file must then not be
  // truncated or rewritten in place while the model lives (a replacement renamed over it is
  // fine, as Berth, transformers and the Hub cache write files); a write to such a parameter
  // copies its page and never reaches the file. Inference loads use it.
  bool share_file_memory = false;
};

// Copies every parameter and buffer of `module` from `file`, converting F16/BF16/F64 to the
// parameter's dtype. Old names (LayerNorm.gamma/beta) are accepted as weight/bias.
// Fails naming every missing, unexpected or mismatched tensor.
absl::Status LoadWeights(torch::nn::Module& module, const SafetensorsFile& file,
                         const LoadWeightsOptions& options, LoadReport* report);

// Writes every parameter and persistent buffer of `module` as F32 (or the tensor's own
// dtype), with {"format": "pt"} metadata so transformers loads the file.
absl::Status SaveWeights(const torch::nn::Module& module, const std::string& path);

}  // namespace berth

#endif  // BERTH_CORE_MODEL_WEIGHTS_H_
