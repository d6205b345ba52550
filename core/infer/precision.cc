#include "core/infer/precision.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/runtime/runtime.h"

namespace berth {

const std::vector<std::string>& PrecisionChoices() {
  static const std::vector<std::string> choices = {"auto", "fp32", "bf16", "int8"};
  return choices;
}

const char* PrecisionName(InferencePrecision p) {
  switch (p) {
    case InferencePrecision::kBf16:
      return "bf16";
    case InferencePrecision::kInt8:
      return "int8";
    case InferencePrecision::kFp32:
      break;
  }
  return "fp32";
}

absl::StatusOr<InferencePrecision> ParseInferencePrecision(std::string_view name,
                                                           std::string_view field, bool on_gpu) {
  if (name == "fp32") return InferencePrecision::kFp32;
  if (name == "bf16") return InferencePrecision::kBf16;
  if (name == "int8") return InferencePrecision::kInt8;
  if (name == "auto") {
    const CpuFeatures& cpu = HostCpuFeatures();
    return on_gpu || cpu.avx512_bf16 || cpu.amx ? InferencePrecision::kBf16
                                                : InferencePrecision::kFp32;
  }
  return absl::InvalidArgumentError(absl::StrCat(std::string(field), ": unknown precision '",
                                                 std::string(name), "' (one of ",
                                                 absl::StrJoin(PrecisionChoices(), ", "), ")"));
}

}  // namespace berth
