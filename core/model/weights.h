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
  std::string Summary() const;
};

// Copies every parameter and buffer of `module` from `file`, converting F16/BF16/F64 to the
// parameter's dtype. Old names (LayerNorm.gamma/beta) are accepted as weight/bias.
// Fails if anything is mismatched; missing and unexpected names are reported, and they fail
// too unless listed in `allow_missing_prefixes` (e.g. "classifier." for a fresh head).
absl::Status LoadWeights(torch::nn::Module& module, const SafetensorsFile& file,
                         const std::vector<std::string>& allow_missing_prefixes,
                         LoadReport* report);

// Writes every parameter and persistent buffer of `module` as F32 (or the tensor's own
// dtype), with {"format": "pt"} metadata so transformers loads the file.
absl::Status SaveWeights(const torch::nn::Module& module, const std::string& path);

}  // namespace berth

#endif  // BERTH_CORE_MODEL_WEIGHTS_H_
