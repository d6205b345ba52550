#include "server/oip/protocol.h"

#include <algorithm>
#include <climits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace berth::server::oip {
namespace {

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

std::string TritonType(const std::string& datatype) {
  return datatype == "BYTES" ? "TYPE_STRING" : "TYPE_" + datatype;
}

}  // namespace

ModelMetadata MetadataOf(const service::ModelInfo& info) {
  const int64_t labels = static_cast<int64_t>(info.labels.size());
  ModelMetadata m;
  m.name = info.name;
  m.versions = {std::to_string(info.version)};
  m.platform = kPlatform;
  // Rows of one text each, as Triton shows a batching model's input ([-1] and the config's dims
  // [1]; perf_analyzer reads them so); a flat [N] tensor is taken as well.
  m.inputs = {{kTextInput, "BYTES", {-1, 1}, false}, {kPairInput, "BYTES", {-1, 1}, true}};
  m.outputs = {{kProbabilitiesOutput, "FP32", {-1, labels}, false},
               {kLabelOutput, "BYTES", {-1}, false},
               {kEmbeddingOutput, "FP32", {-1, info.embedding_dimension}, true}};
  return m;
}

ModelConfig ConfigOf(const service::ModelInfo& info, int64_t max_texts) {
  const ModelMetadata meta = MetadataOf(info);
  ModelConfig c;
  c.name = info.name;
  c.platform = c.backend = kPlatform;
  c.version = info.version;
  c.max_batch_size = static_cast<int32_t>(std::min<int64_t>(max_texts, INT32_MAX));
  // Triton's dims leave out the batch dimension; a [N] tensor is one element per row.
  auto tensors = [](const std::vector<TensorMeta>& from) {
    std::vector<ModelConfig::Tensor> out;
    for (const TensorMeta& t : from) {
      ModelConfig::Tensor c{t.name, TritonType(t.datatype), {1}, t.optional};
      if (t.shape.size() > 1) c.dims.assign(t.shape.begin() + 1, t.shape.end());
      out.push_back(std::move(c));
    }
    return out;
  };
  c.inputs = tensors(meta.inputs);
  c.outputs = tensors(meta.outputs);
  return c;
}

service::ModelSelector SelectorOf(const std::string& model, const std::string& version) {
  service::ModelSelector m;
  m.model = model;
  if (!version.empty() && !absl::SimpleAtoi(version, &m.version)) m.alias = version;
  return m;
}

absl::StatusOr<service::ClassifyRequest> ClassifyRequestOf(
    service::ModelSelector model, std::vector<InputTensor> inputs,
    const std::vector<std::string>& requested) {
  service::ClassifyRequest r;
  r.model = std::move(model);
  r.embed = std::find(requested.begin(), requested.end(), kEmbeddingOutput) != requested.end();
  bool have_text = false, have_pair = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    InputTensor& t = inputs[i];
    const std::string field = absl::StrCat("inputs[", i, "]");
    const bool text = t.name == kTextInput;
    if (!text && t.name != kPairInput) {
      return Bad(field + ".name", absl::StrCat("'", t.name, "' is not an input (", kTextInput, ", ",
                                               kPairInput, ")"));
    }
    if ((text && have_text) || (!text && have_pair))
      return Bad(field + ".name", "'" + t.name + "' given twice");
    if (t.datatype != "BYTES")
      return Bad(field + ".datatype", "'" + t.datatype + "': Berth's models take BYTES (text)");
    if (t.shape.empty() || t.shape.size() > 2 || (t.shape.size() == 2 && t.shape[1] != 1)) {
      return Bad(field + ".shape", absl::StrCat("[", absl::StrJoin(t.shape, ", "),
                                                "]: must be [N] or [N, 1], one text per row"));
    }
    (text ? have_text : have_pair) = true;
    (text ? r.texts : r.text_pairs) = std::move(t.bytes);
  }
  if (!have_text) return Bad("inputs", absl::StrCat("needs a '", kTextInput, "' tensor"));
  if (have_pair && r.text_pairs.size() != r.texts.size()) {
    return Bad("inputs", absl::StrCat("'", kPairInput, "' has ", r.text_pairs.size(),
                                      " elements and '", kTextInput, "' ", r.texts.size()));
  }
  return r;
}

absl::StatusOr<std::vector<OutputTensor>> OutputsOf(const service::ClassifyReply& reply,
                                                    const std::vector<std::string>& requested) {
  const int64_t n = static_cast<int64_t>(reply.results.size());
  OutputTensor probs{
      kProbabilitiesOutput, "FP32", {n, static_cast<int64_t>(reply.labels.size())}, {}, {}};
  OutputTensor labels{kLabelOutput, "BYTES", {n}, {}, {}};
  const int64_t dims =
      reply.results.empty() ? 0 : static_cast<int64_t>(reply.results[0].embedding.size());
  OutputTensor embedding{kEmbeddingOutput, "FP32", {n, dims}, {}, {}};
  for (const ClassifyResult& c : reply.results) {
    probs.fp32.insert(probs.fp32.end(), c.scores.begin(), c.scores.end());
    labels.bytes.push_back(c.label);
    embedding.fp32.insert(embedding.fp32.end(), c.embedding.begin(), c.embedding.end());
  }
  if (requested.empty()) return std::vector<OutputTensor>{std::move(probs), std::move(labels)};
  std::vector<OutputTensor> out;
  for (size_t i = 0; i < requested.size(); ++i) {
    if (requested[i] == kProbabilitiesOutput) {
      out.push_back(probs);
    } else if (requested[i] == kLabelOutput) {
      out.push_back(labels);
    } else if (requested[i] == kEmbeddingOutput) {
      out.push_back(embedding);
    } else {
      return Bad(absl::StrCat("outputs[", i, "].name"),
                 absl::StrCat("'", requested[i], "' is not an output (", kProbabilitiesOutput, ", ",
                              kLabelOutput, ", ", kEmbeddingOutput, ")"));
    }
  }
  return out;
}

}  // namespace berth::server::oip
