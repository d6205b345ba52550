#include "server/http/oip_codec.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace berth::server::oip {
namespace {

absl::Status Bad(const std::string& field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

// The JSON `data` of a BYTES tensor: strings, possibly nested as the shape is.
absl::Status FlattenStrings(const Json& data, const std::string& field,
                            std::vector<std::string>* out) {
  if (data.is_string()) {
    out->push_back(data.get<std::string>());
    return absl::OkStatus();
  }
  if (!data.is_array()) return Bad(field, "BYTES data must be strings");
  for (const Json& d : data) {
    if (absl::Status s = FlattenStrings(d, field, out); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HttpInferRequest> ParseHttpInferRequest(absl::string_view body,
                                                       std::optional<int64_t> header_length) {
  absl::string_view json = body, binary;
  if (header_length) {
    if (*header_length < 0 || static_cast<uint64_t>(*header_length) > body.size())
      return Bad("Inference-Header-Content-Length", "not within the body");
    json = body.substr(0, static_cast<size_t>(*header_length));
    binary = body.substr(static_cast<size_t>(*header_length));
  }
  const Json j = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad("request body", "not valid JSON");
  if (!j.is_object()) return Bad("request body", "must be a JSON object");
  HttpInferRequest r;
  if (j.contains("id")) {
    if (!j["id"].is_string()) return Bad("id", "must be a string");
    r.id = j["id"].get<std::string>();
  }
  if (j.contains("parameters")) {
    const Json& p = j["parameters"];
    if (!p.is_object()) return Bad("parameters", "must be an object");
    if (p.contains("binary_data_output")) {
      if (!p["binary_data_output"].is_boolean())
        return Bad("parameters.binary_data_output", "must be true or false");
      r.binary_outputs = p["binary_data_output"].get<bool>();
    }
  }
  if (!j.contains("inputs") || !j["inputs"].is_array())
    return Bad("inputs", "must be a list of tensors");
  size_t offset = 0;
  for (size_t i = 0; i < j["inputs"].size(); ++i) {
    const Json& t = j["inputs"][i];
    const std::string field = absl::StrCat("inputs[", i, "]");
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string())
      return Bad(field, "needs a name");
    InputTensor in;
    in.name = t["name"].get<std::string>();
    if (!t.contains("datatype") || !t["datatype"].is_string())
      return Bad(field + ".datatype", "required");
    in.datatype = t["datatype"].get<std::string>();
    // Only BYTES data is read; a tensor of another type goes on without it, for the protocol's
    // rules (ClassifyRequestOf) to refuse by its datatype.
    const bool bytes = in.datatype == "BYTES";
    if (!t.contains("shape") || !t["shape"].is_array())
      return Bad(field + ".shape", "must be a list of sizes");
    for (const Json& d : t["shape"]) {
      if (!d.is_number_integer()) return Bad(field + ".shape", "sizes must be integers");
      in.shape.push_back(d.get<int64_t>());
    }
    absl::StatusOr<int64_t> elements = ElementCount(in.shape, field + ".shape");
    if (!elements.ok()) return elements.status();
    const int64_t count = *elements;
    const Json params = t.value("parameters", Json::object());
    if (!params.is_object()) return Bad(field + ".parameters", "must be an object");
    if (params.contains("binary_data_size")) {
      const Json& size = params["binary_data_size"];
      if (!size.is_number_integer() || size.get<int64_t>() < 0)
        return Bad(field + ".parameters.binary_data_size", "must be a size in bytes");
      const uint64_t n = size.get<uint64_t>();
      if (n > binary.size() - offset)
        return Bad(field + ".parameters.binary_data_size", "larger than the binary data sent");
      if (bytes) {
        auto decoded = DecodeBytes(binary.substr(offset, n), count, field);
        if (!decoded.ok()) return decoded.status();
        in.bytes = std::move(*decoded);
      }
      offset += n;
    } else if (!t.contains("data")) {
      return Bad(field + ".data", "required (or binary data)");
    } else if (bytes) {
      if (absl::Status s = FlattenStrings(t["data"], field + ".data", &in.bytes); !s.ok()) return s;
      if (static_cast<int64_t>(in.bytes.size()) != count) {
        return Bad(field + ".data",
                   absl::StrCat(in.bytes.size(), " elements, the shape says ", count));
      }
    }
    r.inputs.push_back(std::move(in));
  }
  if (offset != binary.size()) return Bad("request body", "binary data that no input claims");
  if (j.contains("outputs")) {
    if (!j["outputs"].is_array()) return Bad("outputs", "must be a list");
    for (size_t i = 0; i < j["outputs"].size(); ++i) {
      const Json& o = j["outputs"][i];
      const std::string field = absl::StrCat("outputs[", i, "]");
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string())
        return Bad(field, "needs a name");
      RequestedOutput out{o["name"].get<std::string>(), r.binary_outputs};
      const Json params = o.value("parameters", Json::object());
      if (!params.is_object()) return Bad(field + ".parameters", "must be an object");
      if (params.contains("binary_data")) {
        if (!params["binary_data"].is_boolean())
          return Bad(field + ".parameters.binary_data", "must be true or false");
        out.binary = params["binary_data"].get<bool>();
      }
      r.outputs.push_back(std::move(out));
    }
  }
  return r;
}

std::vector<std::string> RequestedNames(const HttpInferRequest& request) {
  std::vector<std::string> names;
  for (const RequestedOutput& o : request.outputs) names.push_back(o.name);
  return names;
}

EncodedReply EncodeHttpInferReply(const std::string& model, const std::string& version,
                                  const std::vector<OutputTensor>& outputs,
                                  const HttpInferRequest& request) {
  Json out = {{"model_name", model}, {"model_version", version}, {"outputs", Json::array()}};
  if (!request.id.empty()) out["id"] = request.id;
  std::string binary;
  for (const OutputTensor& t : outputs) {
    bool as_binary = request.binary_outputs;
    for (const RequestedOutput& r : request.outputs) {
      if (r.name == t.name) as_binary = r.binary;
    }
    Json o = {{"name", t.name}, {"datatype", t.datatype}, {"shape", t.shape}};
    if (as_binary) {
      std::string data;
      if (t.datatype == "FP32") {
        data.resize(t.fp32.size() * sizeof(float));
        if (!t.fp32.empty()) std::memcpy(data.data(), t.fp32.data(), data.size());
      } else {
        data = EncodeBytes(t.bytes);
      }
      o["parameters"] = {{"binary_data_size", data.size()}};
      binary += data;
    } else if (t.datatype == "FP32") {
      o["data"] = t.fp32;
    } else {
      o["data"] = t.bytes;
    }
    out["outputs"].push_back(std::move(o));
  }
  EncodedReply reply;
  reply.body = out.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (!binary.empty()) {
    reply.header_length = static_cast<int64_t>(reply.body.size());
    reply.body += binary;
  }
  return reply;
}

}  // namespace berth::server::oip
