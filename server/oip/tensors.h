// The Open Inference Protocol's tensors as Berth reads and writes them, apart from any model
// and transport: what the wire codecs (server/http/oip_codec.h, server/oip/grpc_convert.h)
// fill in and the fuzz target drives. Torch-free.
#ifndef BERTH_SERVER_OIP_TENSORS_H_
#define BERTH_SERVER_OIP_TENSORS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace berth::server::oip {

struct InputTensor {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
  std::vector<std::string> bytes;  // BYTES elements, flattened
};

struct OutputTensor {
  std::string name;
  std::string datatype;  // FP32 or BYTES
  std::vector<int64_t> shape;
  std::vector<float> fp32;
  std::vector<std::string> bytes;
};

// The largest tensor Berth reads: more elements than any limit lets through, few enough that
// counting them cannot overflow.
inline constexpr int64_t kMaxElements = int64_t{1} << 24;
// The elements `shape` holds; INVALID_ARGUMENT naming `field` for a negative or huge size.
absl::StatusOr<int64_t> ElementCount(const std::vector<int64_t>& shape, absl::string_view field);

// BYTES in binary (4-byte little-endian length, then the bytes, per element) and back; the
// decoder wants exactly `count` elements and names `field` when they are not there.
std::string EncodeBytes(const std::vector<std::string>& elements);
absl::StatusOr<std::vector<std::string>> DecodeBytes(absl::string_view data, int64_t count,
                                                     absl::string_view field);

}  // namespace berth::server::oip

#endif  // BERTH_SERVER_OIP_TENSORS_H_
