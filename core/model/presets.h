// The named BERT shapes Berth can create with random weights ("config:bert-tiny" ...): the one
// table the trainer, the job policy, the CLI help and the benchmarks read.
#ifndef BERTH_CORE_MODEL_PRESETS_H_
#define BERTH_CORE_MODEL_PRESETS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace berth {

struct ModelPreset {
  const char* name;
  int64_t layers, hidden, heads, intermediate;
};

// bert-tiny 2 x 128, bert-mini 4 x 256, bert-small 4 x 512, bert-medium 8 x 512, bert-base
// 12 x 768 (Turc et al. 2019's compact BERTs and BERT-base), smallest first.
absl::Span<const ModelPreset> ModelPresets();

// The preset called `name` ("bert-tiny"), or nullptr.
const ModelPreset* FindModelPreset(absl::string_view name);

// "config:NAME" names a preset: NAME when `base_model` has that form (known or not), else nullopt.
std::optional<std::string> PresetNameOf(absl::string_view base_model);

// "config:NAME", the base_model that names preset NAME.
std::string PresetBaseModel(absl::string_view name);

// "config:bert-tiny, config:bert-mini, ..." for error messages and help.
std::string PresetList();

}  // namespace berth

#endif  // BERTH_CORE_MODEL_PRESETS_H_
