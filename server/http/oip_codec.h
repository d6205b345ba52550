// The Open Inference Protocol's (KServe v2) tensors over HTTP: an inference request's JSON, with
// or without the binary tensor data extension (the JSON header's length in
// Inference-Header-Content-Length, the tensors' bytes after it), and the reply in the form the
// request asked for. BYTES elements are 4-byte little-endian lengths and their bytes in binary,
// strings in JSON (server/oip/protocol.h). Pure functions over bytes (no model, no network): what
// the fuzz target drives.
#ifndef BERTH_SERVER_HTTP_OIP_CODEC_H_
#define BERTH_SERVER_HTTP_OIP_CODEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/util/json.h"
#include "server/oip/tensors.h"

namespace berth::server::oip {

struct RequestedOutput {
  std::string name;
  bool binary = false;
};

struct HttpInferRequest {
  std::string id;
  std::vector<InputTensor> inputs;
  std::vector<RequestedOutput> outputs;  // empty: every output
  bool binary_outputs = false;           // parameters.binary_data_output
};

// Reads a request body; `header_length` is Inference-Header-Content-Length (nullopt: all JSON).
// Only BYTES tensors' data is read (Berth's models take text; ClassifyRequestOf refuses any
// other type by name). Errors name the field (400).
absl::StatusOr<HttpInferRequest> ParseHttpInferRequest(absl::string_view body,
                                                       std::optional<int64_t> header_length);

// The names a request asks for, in order (empty: every output).
std::vector<std::string> RequestedNames(const HttpInferRequest& request);

// The reply: JSON alone, or JSON followed by the binary outputs. `header_length` is set when
// the body carries binary data (the reply's Inference-Header-Content-Length).
struct EncodedReply {
  std::string body;
  std::optional<int64_t> header_length;
};
EncodedReply EncodeHttpInferReply(const std::string& model, const std::string& version,
                                  const std::vector<OutputTensor>& outputs,
                                  const HttpInferRequest& request);

}  // namespace berth::server::oip

#endif  // BERTH_SERVER_HTTP_OIP_CODEC_H_
