// libFuzzer target: the safetensors reader's validation (8-byte header size, JSON header,
// dtypes, shapes, offsets) over arbitrary bytes. Accepted files must describe tensors that lie
// inside the data and whose byte size matches their shape.
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/model/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  auto file = berth::SafetensorsFile::FromBytes(bytes, "fuzz.safetensors");
  if (!file.ok()) {
    berth::fuzz::CheckError(file.status());
    return 0;
  }
  for (const berth::TensorView& t : (*file)->tensors()) {
    BERTH_FUZZ_CHECK(t.nbytes == static_cast<size_t>(t.numel()) * berth::DTypeSize(t.dtype),
                     t.name);
    // The data lies inside the buffer the file holds; read every byte (ASan checks the bounds).
    unsigned sum = 0;
    for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
    (void)sum;
    BERTH_FUZZ_CHECK((*file)->Find(t.name) != nullptr, t.name);
  }
  return 0;
}
