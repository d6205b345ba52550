// pytorch_model.bin (torch.save's zip archive, torch >= 1.6) read without executing pickles: a
// restricted unpickler accepts only the opcodes torch.load(weights_only=True) accepts, and of
// its globals only those a state dict needs (collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 and _rebuild_parameter, the typed storages such as
// torch.FloatStorage); anything else is an error naming the opcode or the global. No torch here.
#ifndef BERTH_CORE_MODEL_PYTORCH_BIN_H_
#define BERTH_CORE_MODEL_PYTORCH_BIN_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/safetensors.h"

namespace berth {

// Reads a state dict {name: tensor} from the bytes of a torch.save archive and returns it as an
// in-memory safetensors file (each tensor copied out of its storage, contiguous, in the order of
// the state dict), so that everything that reads safetensors reads it. `what` names the file in
// errors.
absl::StatusOr<std::unique_ptr<SafetensorsFile>> ReadPytorchBin(std::string bytes,
                                                                const std::string& what);

// The same from a file.
absl::StatusOr<std::unique_ptr<SafetensorsFile>> OpenPytorchBin(const std::string& path);

}  // namespace berth

#endif  // BERTH_CORE_MODEL_PYTORCH_BIN_H_
