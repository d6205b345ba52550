// The Open Inference Protocol's gRPC messages (package inference) to and from the
// transport-neutral forms of server/oip/protocol.h.
#ifndef BERTH_SERVER_OIP_GRPC_CONVERT_H_
#define BERTH_SERVER_OIP_GRPC_CONVERT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/service/inference.h"
#include "inference/grpc_service.pb.h"
#include "server/oip/protocol.h"

namespace berth::server::oip {

// A request's input tensors: each one's elements from raw_input_contents (one entry per input,
// in order, when any is sent) or else from contents.bytes_contents. Only BYTES tensors' data is
// read; INVALID_ARGUMENT names the input when its data does not match its shape.
absl::StatusOr<std::vector<InputTensor>> InputsOf(const inference::ModelInferRequest& request);
// The outputs a request names, in order (empty: every output).
std::vector<std::string> RequestedNames(const inference::ModelInferRequest& request);

// The reply with every output's data in raw_output_contents (FP32 little-endian, BYTES
// length-prefixed), which is where tritonclient.grpc reads it.
void ToProto(const service::ClassifyReply& reply, const std::string& id,
             const std::vector<OutputTensor>& outputs, inference::ModelInferResponse* out);
void ToProto(const ModelMetadata& metadata, inference::ModelMetadataResponse* out);
void ToProto(const ModelConfig& config, inference::ModelConfig* out);
void ToProto(const service::ModelStatistics& stats, inference::ModelStatistics* out);

}  // namespace berth::server::oip

#endif  // BERTH_SERVER_OIP_GRPC_CONVERT_H_
