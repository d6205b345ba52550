// The Open Inference Protocol (KServe v2) as Berth speaks it, apart from any transport: what a
// model's metadata and configuration say, how an inference request's tensors become one
// Classify call, and how its reply becomes output tensors. The HTTP routes
// (server/http/oip_routes.cc) and the gRPC service (server/oip_service.cc) only move these
// between their wire forms and the facade, so a rule here holds on both.
//
// A Berth model takes BYTES inputs `text` and, for pairs, `text_pair`, each of shape [N] (or
// [N, 1]), and answers `probabilities` (FP32 [N, labels]) and `label` (BYTES [N]), and, when an
// output list names it, `embedding` (FP32 [N, D]: the sentence embedding of docs/embeddings.md,
// from the same forward pass). Its versions
// are the protocol's versions, and an alias may stand where a version does.
#ifndef BERTH_SERVER_OIP_PROTOCOL_H_
#define BERTH_SERVER_OIP_PROTOCOL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/service/inference.h"
#include "server/oip/tensors.h"

namespace berth::server::oip {

inline constexpr char kTextInput[] = "text";
inline constexpr char kPairInput[] = "text_pair";
inline constexpr char kProbabilitiesOutput[] = "probabilities";
inline constexpr char kLabelOutput[] = "label";
// Only when asked for by name: each text's sentence embedding (FP32 [N, D]).
inline constexpr char kEmbeddingOutput[] = "embedding";
inline constexpr char kPlatform[] = "berth";
// The protocol extensions the server metadata lists (both transports).
inline const std::vector<std::string> kExtensions = {"binary_tensor_data", "model_configuration",
                                                     "statistics"};

struct TensorMeta {
  std::string name;
  std::string datatype;        // the protocol's: BYTES, FP32
  std::vector<int64_t> shape;  // -1: any size (the batch)
  bool optional = false;
};

struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;
  std::string platform;
  std::vector<TensorMeta> inputs, outputs;
};

// Triton's model configuration, as much as Berth fills in.
struct ModelConfig {
  std::string name;
  std::string platform, backend;
  int64_t version = 0;  // the version policy: this one
  int32_t max_batch_size = 0;
  struct Tensor {
    std::string name;
    std::string data_type;      // Triton's: TYPE_STRING, TYPE_FP32
    std::vector<int64_t> dims;  // without the batch dimension
    bool optional = false;
  };
  std::vector<Tensor> inputs, outputs;
};

ModelMetadata MetadataOf(const service::ModelInfo& info);
ModelConfig ConfigOf(const service::ModelInfo& info, int64_t max_texts);

// The model a path or request names: `version` empty is the model's default, a number a
// version, anything else an alias.
service::ModelSelector SelectorOf(const std::string& model, const std::string& version);

// The Classify call a request's inputs ask for. INVALID_ARGUMENT naming the input for an
// unknown or repeated name, a datatype other than BYTES, a shape other than [N] or [N, 1], a
// missing `text`, or a pair tensor of another length.
// `requested` (the output names asked for) says whether embeddings are computed.
absl::StatusOr<service::ClassifyRequest> ClassifyRequestOf(
    service::ModelSelector model, std::vector<InputTensor> inputs,
    const std::vector<std::string>& requested = {});

// The outputs a reply answers with, in the order asked (`requested` empty: every output).
// INVALID_ARGUMENT naming `outputs[i]` for an output the model does not have.
absl::StatusOr<std::vector<OutputTensor>> OutputsOf(const service::ClassifyReply& reply,
                                                    const std::vector<std::string>& requested);

}  // namespace berth::server::oip

#endif  // BERTH_SERVER_OIP_PROTOCOL_H_
