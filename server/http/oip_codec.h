// The Open Inference Protocol's (KServe v2) tensors over HTTP: an inference request's JSON, with
// or without the binary tensor data extension (the JSON header's length in
// Inference-Header-Content-Length, the tensors' bytes after it), and the reply in the form the
// request asked for. BYTES elements are 4-byte little-endian lengths and their bytes in binary,
// strings in JSON. Pure functions over bytes (no model, no network): what the fuzz target
// drives.
#ifndef BERTH_SERVER_HTTP_OIP_CODEC_H_
#define BERTH_SERVER_HTTP_OIP_CODEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/util/json.h"

namespace berth::server::http::oip {

struct InputTensor {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
  std::vector<std::string> bytes;  // BYTES elements
};

struct RequestedOutput {
  std::string name;
  bool binary = false;
};

struct InferRequest {
  std::string id;
  std::vector<InputTensor> inputs;
  std::vector<RequestedOutput> outputs;  // empty: every output
  bool binary_outputs = false;           // parameters.binary_data_output
};

// Reads a request body; `header_length` is Inference-Header-Content-Length (nullopt: all JSON).
// Only BYTES inputs are read (Berth's models take text). Errors name the field (400).
absl::StatusOr<InferRequest> ParseInferRequest(absl::string_view body,
                                               std::optional<int64_t> header_length);

struct OutputTensor {
  std::string name;
  std::string datatype;  // FP32 or BYTES
  std::vector<int64_t> shape;
  std::vector<float> fp32;
  std::vector<std::string> bytes;
};

// The reply: JSON alone, or JSON followed by the binary outputs. `header_length` is set when
// the body carries binary data (the reply's Inference-Header-Content-Length).
struct EncodedReply {
  std::string body;
  std::optional<int64_t> header_length;
};
EncodedReply EncodeInferReply(const std::string& model, const std::string& version,
                              const std::string& id, const std::vector<OutputTensor>& outputs,
                              const InferRequest& request);

// A BYTES tensor's binary form and back (4-byte little-endian length, then the bytes).
std::string EncodeBytes(const std::vector<std::string>& elements);
absl::StatusOr<std::vector<std::string>> DecodeBytes(absl::string_view data, int64_t count,
                                                     absl::string_view field);

}  // namespace berth::server::http::oip

#endif  // BERTH_SERVER_HTTP_OIP_CODEC_H_
