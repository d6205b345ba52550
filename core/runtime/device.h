// Where tensors live: "cpu", "cuda" or "cuda:N", as torch spells devices.
#ifndef BERTH_CORE_RUNTIME_DEVICE_H_
#define BERTH_CORE_RUNTIME_DEVICE_H_

#include <c10/core/Device.h>

#include <string>

#include "absl/status/statusor.h"

namespace berth {

// Parses and checks a device: CUDA needs a LibTorch built with it (the pinned wheel is) and a
// visible GPU with that index. `field` names the flag or field in errors.
absl::StatusOr<c10::Device> ParseDevice(const std::string& spec,
                                        const std::string& field = "device");

}  // namespace berth

#endif  // BERTH_CORE_RUNTIME_DEVICE_H_
