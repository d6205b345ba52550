// libFuzzer target: pytorch_model.bin (the zip reader, the restricted unpickler and the tensor
// copies out of their storages) on arbitrary bytes. Seeds: the torch.save fixtures.
#include <cstdint>
#include <string>

#include "core/model/pytorch_bin.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = berth::ReadPytorchBin(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  if (file.ok()) {
    for (const berth::TensorView& t : (*file)->tensors()) {
      volatile uint8_t sink = 0;
      for (size_t i = 0; i < t.nbytes; ++i) sink ^= t.data[i];
    }
  }
  return 0;
}
