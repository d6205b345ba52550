// The preset table.
#include "core/model/presets.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace berth {
namespace {

constexpr ModelPreset kPresets[] = {
    {"bert-tiny", 2, 128, 2, 512},    {"bert-mini", 4, 256, 4, 1024},
    {"bert-small", 4, 512, 8, 2048},  {"bert-medium", 8, 512, 8, 2048},
    {"bert-base", 12, 768, 12, 3072},
};

constexpr absl::string_view kPrefix = "config:";

}  // namespace

absl::Span<const ModelPreset> ModelPresets() { return kPresets; }

const ModelPreset* FindModelPreset(absl::string_view name) {
  for (const ModelPreset& p : kPresets) {
    if (name == p.name) return &p;
  }
  return nullptr;
}

std::optional<std::string> PresetNameOf(absl::string_view base_model) {
  if (!absl::StartsWith(base_model, kPrefix)) return std::nullopt;
  return std::string(base_model.substr(kPrefix.size()));
}

std::string PresetBaseModel(absl::string_view name) { return absl::StrCat(kPrefix, name); }

std::string PresetList() {
  std::string out;
  for (const ModelPreset& p : kPresets)
    absl::StrAppend(&out, out.empty() ? "" : ", ", PresetBaseModel(p.name));
  return out;
}

}  // namespace berth
