#include "server/oip/grpc_convert.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace berth::server::oip {
namespace {

void SetDuration(const service::Duration& d, inference::StatisticDuration* out) {
  out->set_count(d.count);
  out->set_ns(d.ns);
}

}  // namespace

absl::StatusOr<std::vector<InputTensor>> InputsOf(const inference::ModelInferRequest& request) {
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw_input_contents: ", request.raw_input_contents_size(), " entries for ",
                     request.inputs_size(), " inputs (one per input)"));
  }
  std::vector<InputTensor> inputs;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& t = request.inputs(i);
    const std::string field = absl::StrCat("inputs[", i, "]");
    InputTensor in{t.name(), t.datatype(), {t.shape().begin(), t.shape().end()}, {}};
    absl::StatusOr<int64_t> count = ElementCount(in.shape, field + ".shape");
    if (!count.ok()) return count.status();
    if (in.datatype == "BYTES" && raw) {
      absl::StatusOr<std::vector<std::string>> decoded = DecodeBytes(
          request.raw_input_contents(i), *count, absl::StrCat("raw_input_contents[", i, "]"));
      if (!decoded.ok()) return decoded.status();
      in.bytes = std::move(*decoded);
    } else if (in.datatype == "BYTES") {
      const auto& elements = t.contents().bytes_contents();
      if (elements.size() != *count) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".contents.bytes_contents: ", elements.size(),
                         " elements, the shape says ", *count));
      }
      in.bytes.assign(elements.begin(), elements.end());
    }
    inputs.push_back(std::move(in));
  }
  return inputs;
}

std::vector<std::string> RequestedNames(const inference::ModelInferRequest& request) {
  std::vector<std::string> names;
  for (const auto& o : request.outputs()) names.push_back(o.name());
  return names;
}

void ToProto(const service::ClassifyReply& reply, const std::string& id,
             const std::vector<OutputTensor>& outputs, inference::ModelInferResponse* out) {
  out->set_model_name(reply.model);
  out->set_model_version(std::to_string(reply.model_version));
  out->set_id(id);
  for (const OutputTensor& t : outputs) {
    auto* o = out->add_outputs();
    o->set_name(t.name);
    o->set_datatype(t.datatype);
    for (int64_t d : t.shape) o->add_shape(d);
    std::string* raw = out->add_raw_output_contents();
    if (t.datatype == "FP32") {
      raw->resize(t.fp32.size() * sizeof(float));
      if (!t.fp32.empty()) std::memcpy(raw->data(), t.fp32.data(), raw->size());
    } else {
      *raw = EncodeBytes(t.bytes);
    }
  }
}

void ToProto(const ModelMetadata& metadata, inference::ModelMetadataResponse* out) {
  out->set_name(metadata.name);
  for (const std::string& v : metadata.versions) out->add_versions(v);
  out->set_platform(metadata.platform);
  auto add = [](const TensorMeta& t, auto* m) {
    m->set_name(t.name);
    m->set_datatype(t.datatype);
    for (int64_t d : t.shape) m->add_shape(d);
  };
  for (const TensorMeta& t : metadata.inputs) add(t, out->add_inputs());
  for (const TensorMeta& t : metadata.outputs) add(t, out->add_outputs());
}

void ToProto(const ModelConfig& config, inference::ModelConfig* out) {
  out->set_name(config.name);
  out->set_platform(config.platform);
  out->set_backend(config.backend);
  out->set_max_batch_size(config.max_batch_size);
  out->mutable_version_policy()->mutable_specific()->add_versions(config.version);
  auto type = [](const std::string& name) {
    inference::DataType t = inference::TYPE_INVALID;
    inference::DataType_Parse(name, &t);
    return t;
  };
  for (const ModelConfig::Tensor& t : config.inputs) {
    auto* in = out->add_input();
    in->set_name(t.name);
    in->set_data_type(type(t.data_type));
    for (int64_t d : t.dims) in->add_dims(d);
    in->set_optional(t.optional);
  }
  for (const ModelConfig::Tensor& t : config.outputs) {
    auto* o = out->add_output();
    o->set_name(t.name);
    o->set_data_type(type(t.data_type));
    for (int64_t d : t.dims) o->add_dims(d);
  }
}

void ToProto(const service::ModelStatistics& stats, inference::ModelStatistics* out) {
  out->set_name(stats.name);
  out->set_version(std::to_string(stats.version));
  out->set_last_inference(stats.last_inference_ms);
  out->set_inference_count(stats.inference_count);
  out->set_execution_count(stats.execution_count);
  auto* s = out->mutable_inference_stats();
  SetDuration(stats.success, s->mutable_success());
  SetDuration(stats.fail, s->mutable_fail());
  SetDuration(stats.queue, s->mutable_queue());
  SetDuration(stats.compute_input, s->mutable_compute_input());
  SetDuration(stats.compute_infer, s->mutable_compute_infer());
  SetDuration(stats.compute_output, s->mutable_compute_output());
  s->mutable_cache_hit();
  s->mutable_cache_miss();
}

}  // namespace berth::server::oip
