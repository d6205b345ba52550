#include "core/runtime/device.h"

#include <torch/cuda.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/runtime/runtime.h"

namespace berth {

absl::StatusOr<c10::Device> ParseDevice(const std::string& spec, const std::string& field) {
  if (spec.empty() || spec == "cpu") return c10::Device(c10::kCPU);
  int index = 0;
  if (spec != "cuda" &&
      !(spec.rfind("cuda:", 0) == 0 && absl::SimpleAtoi(spec.substr(5), &index) && index >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", spec, "' is not cpu, cuda or cuda:N"));
  }
  if (absl::Status s = LoadCudaLibraries(); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": ", spec, " asked for, but ", s.message()));
  }
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, ": ", spec, " asked for, but no GPU is visible (no device, or no NVIDIA driver)"));
  }
  const int count = static_cast<int>(torch::cuda::device_count());
  if (index >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": ", spec, " asked for, but ", count, " GPU(s) are visible"));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace berth
