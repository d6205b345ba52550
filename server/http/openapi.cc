// The OpenAPI 3 document of every HTTP route (GET /openapi.json). Berth's own API (/v1) is
// described from the berth.v1 messages' descriptors, so the .proto stays its one source; the
// Hugging Face and Open Inference Protocol routes, whose forms are TEI's and KServe's, are
// written out here. server_http_test checks that the document and the router list the same
// routes.
#include "server/http/openapi.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "berth/v1/models.pb.h"
#include "berth/v1/training.pb.h"

namespace berth::server::http {
namespace {

namespace pb = google::protobuf;

Json Ref(const std::string& name) { return Json{{"$ref", "#/components/schemas/" + name}}; }

std::string SchemaName(const pb::Descriptor* d) { return d->full_name(); }

// The proto3 JSON mapping of a field, as protobuf's printer writes it and its parser reads it.
Json FieldSchema(const pb::FieldDescriptor* f, std::set<const pb::Descriptor*>* needed);

Json ScalarSchema(const pb::FieldDescriptor* f, std::set<const pb::Descriptor*>* needed) {
  using F = pb::FieldDescriptor;
  switch (f->cpp_type()) {
    case F::CPPTYPE_INT32:
      return Json{{"type", "integer"}, {"format", "int32"}};
    case F::CPPTYPE_UINT32:
      return Json{{"type", "integer"}, {"format", "int32"}, {"minimum", 0}};
    case F::CPPTYPE_INT64:  // 64-bit integers travel as decimal strings
      return Json{{"type", "string"}, {"format", "int64"}, {"pattern", "^-?[0-9]{1,18}$"}};
    case F::CPPTYPE_UINT64:
      return Json{{"type", "string"}, {"format", "uint64"}, {"pattern", "^[0-9]{1,19}$"}};
    case F::CPPTYPE_DOUBLE:
    case F::CPPTYPE_FLOAT:  // a non-finite value is written as a string
      return Json{{"oneOf",
                   {Json{{"type", "number"}},
                    Json{{"type", "string"}, {"enum", {"NaN", "Infinity", "-Infinity"}}}}}};
    case F::CPPTYPE_BOOL:
      return Json{{"type", "boolean"}};
    case F::CPPTYPE_ENUM: {
      Json names = Json::array();
      for (int i = 0; i < f->enum_type()->value_count(); ++i)
        names.push_back(f->enum_type()->value(i)->name());
      return Json{{"type", "string"}, {"enum", names}};
    }
    case F::CPPTYPE_STRING:
      return f->type() == F::TYPE_BYTES ? Json{{"type", "string"}, {"format", "byte"}}
                                        : Json{{"type", "string"}};
    case F::CPPTYPE_MESSAGE:
      if (f->message_type()->options().map_entry()) {
        return Json{
            {"type", "object"},
            {"additionalProperties", FieldSchema(f->message_type()->FindFieldByNumber(2), needed)}};
      }
      needed->insert(f->message_type());
      return Ref(SchemaName(f->message_type()));
  }
  return Json::object();
}

Json FieldSchema(const pb::FieldDescriptor* f, std::set<const pb::Descriptor*>* needed) {
  Json s = ScalarSchema(f, needed);
  if (f->is_repeated() && !f->is_map()) return Json{{"type", "array"}, {"items", s}};
  return s;
}

Json MessageSchema(const pb::Descriptor* d, std::set<const pb::Descriptor*>* needed) {
  Json props = Json::object();
  for (int i = 0; i < d->field_count(); ++i) {
    props[d->field(i)->name()] = FieldSchema(d->field(i), needed);
  }
  return Json{{"type", "object"}, {"properties", props}, {"additionalProperties", false}};
}

// Every message `roots` reach, as components.
Json MessageSchemas(const std::vector<const pb::Descriptor*>& roots) {
  std::set<const pb::Descriptor*> needed(roots.begin(), roots.end()), done;
  Json out = Json::object();
  while (needed.size() > done.size()) {
    for (const pb::Descriptor* d : std::set<const pb::Descriptor*>(needed)) {
      if (done.insert(d).second) out[SchemaName(d)] = MessageSchema(d, &needed);
    }
  }
  return out;
}

Json Nullable(Json s) {
  s["nullable"] = true;
  return s;
}
const Json kString = {{"type", "string"}};
const Json kNumber = {{"type", "number"}};
const Json kInteger = {{"type", "integer"}};
const Json kBool = {{"type", "boolean"}};
Json ArrayOf(Json items) { return Json{{"type", "array"}, {"items", std::move(items)}}; }
Json Object(Json props, Json required = Json::array()) {
  Json o = {{"type", "object"}, {"properties", std::move(props)}};
  if (!required.empty()) o["required"] = std::move(required);
  return o;
}

// The schemas of the Hugging Face and Open Inference Protocol forms.
Json HandWrittenSchemas() {
  Json s;
  s["Error"] = Object({{"error", kString}, {"error_type", kString}}, {"error", "error_type"});
  s["LabelScore"] = Object({{"label", kString}, {"score", kNumber}}, {"label", "score"});
  s["PredictRequest"] = Object(
      {{"inputs",
        {{"oneOf",
          {kString, Json{{"type", "array"}, {"items", kString}, {"minItems", 1}, {"maxItems", 2}},
           ArrayOf(
               Json{{"type", "array"}, {"items", kString}, {"minItems", 1}, {"maxItems", 2}})}}}},
       {"truncate", Nullable(kBool)},
       {"truncation_direction", Nullable(Json{{"type", "string"}, {"enum", {"Left", "Right"}}})},
       {"raw_scores", Nullable(kBool)}},
      {"inputs"});
  s["PredictResponse"] = {
      {"oneOf", {ArrayOf(Ref("LabelScore")), ArrayOf(ArrayOf(Ref("LabelScore")))}}};
  s["InferenceApiRequest"] = Object(
      {{"inputs", {{"oneOf", {kString, ArrayOf(kString)}}}},
       {"parameters",
        Object({{"top_k", Nullable(Json{{"type", "integer"}, {"minimum", 1}})},
                {"function_to_apply",
                 Nullable(Json{{"type", "string"}, {"enum", {"sigmoid", "softmax", "none"}}})}})}},
      {"inputs"});
  s["InferenceApiResponse"] = ArrayOf(ArrayOf(Ref("LabelScore")));
  const Json texts = {{"oneOf", {kString, ArrayOf(kString)}}};
  const Json dimensions = Nullable(Json{{"type", "integer"}, {"minimum", 1}});
  const Json direction = Nullable(Json{{"type", "string"}, {"enum", {"Left", "Right"}}});
  s["EmbedRequest"] = Object({{"inputs", texts},
                              {"normalize", Nullable(kBool)},
                              {"truncate", Nullable(kBool)},
                              {"truncation_direction", direction},
                              {"dimensions", dimensions}},
                             {"inputs"});
  s["EmbedResponse"] = ArrayOf(ArrayOf(kNumber));
  s["RerankRequest"] = Object({{"query", kString},
                               {"texts", ArrayOf(kString)},
                               {"raw_scores", Nullable(kBool)},
                               {"return_text", Nullable(kBool)},
                               {"truncate", Nullable(kBool)},
                               {"truncation_direction", direction}},
                              {"query", "texts"});
  s["RerankResponse"] = ArrayOf(
      Object({{"index", kInteger}, {"score", kNumber}, {"text", kString}}, {"index", "score"}));
  s["OpenAiEmbeddingRequest"] = Object(
      {{"input", texts},
       {"model", kString},
       {"encoding_format", Nullable(Json{{"type", "string"}, {"enum", {"float", "base64"}}})},
       {"dimensions", dimensions},
       {"user", Nullable(kString)}},
      {"input"});
  s["OpenAiError"] = Object({{"error", Object({{"message", kString},
                                               {"type", kString},
                                               {"param", Nullable(kString)},
                                               {"code", Nullable(kString)}},
                                              {"message", "type"})}},
                            {"error"});
  s["OpenAiEmbedding"] = Object({{"object", kString},
                                 {"index", kInteger},
                                 {"embedding", {{"oneOf", {ArrayOf(kNumber), kString}}}}},
                                {"object", "index", "embedding"});
  s["OpenAiEmbeddingResponse"] =
      Object({{"object", kString},
              {"data", ArrayOf(Ref("OpenAiEmbedding"))},
              {"model", kString},
              {"usage", Object({{"prompt_tokens", kInteger}, {"total_tokens", kInteger}})}},
             {"object", "data", "model", "usage"});
  s["TokenizeRequest"] = Object({{"inputs", {{"oneOf", {kString, ArrayOf(kString)}}}},
                                 {"add_special_tokens", Nullable(kBool)}},
                                {"inputs"});
  s["DecodeRequest"] = Object({{"ids",
                                {{"oneOf",
                                  {ArrayOf(Json{{"type", "integer"}, {"minimum", 0}}),
                                   ArrayOf(ArrayOf(Json{{"type", "integer"}, {"minimum", 0}}))}}}},
                               {"skip_special_tokens", Nullable(kBool)}},
                              {"ids"});
  s["Token"] = Object({{"id", kInteger},
                       {"text", kString},
                       {"special", kBool},
                       {"start", Nullable(kInteger)},
                       {"stop", Nullable(kInteger)}},
                      {"id", "text", "special", "start", "stop"});
  s["TokenizeResponse"] = ArrayOf(ArrayOf(Ref("Token")));
  s["Info"] = Object({{"model_id", kString},
                      {"model_sha", Nullable(kString)},
                      {"model_dtype", kString},
                      {"model_type", {{"type", "object"}}},
                      {"max_concurrent_requests", kInteger},
                      {"max_input_length", kInteger},
                      {"max_batch_tokens", kInteger},
                      {"max_batch_requests", Nullable(kInteger)},
                      {"max_client_batch_size", kInteger},
                      {"auto_truncate", kBool},
                      {"tokenization_workers", kInteger},
                      {"version", kString},
                      {"sha", Nullable(kString)},
                      {"docker_label", Nullable(kString)},
                      {"berth", {{"type", "object"}}}},
                     {"model_id", "model_type", "max_input_length", "version"});
  s["Empty"] = {{"type", "object"}};
  // One Server-Sent Event of GET /v1/jobs/{job_id}/events: its data is a berth.v1.JobStatus.
  s["JobEvent"] = Object(
      {{"id", kString},
       {"event", {{"type", "string"}, {"enum", {"state", "progress", "evaluation", "error"}}}},
       {"data", {{"type", "string"}, {"description", "a berth.v1.JobStatus as JSON"}}}},
      {"event", "data"});
  s["ServerMetadata"] =
      Object({{"name", kString}, {"version", kString}, {"extensions", ArrayOf(kString)}},
             {"name", "version", "extensions"});
  s["TensorMetadata"] =
      Object({{"name", kString}, {"datatype", kString}, {"shape", ArrayOf(kInteger)}},
             {"name", "datatype", "shape"});
  s["ModelMetadata"] = Object({{"name", kString},
                               {"versions", ArrayOf(kString)},
                               {"platform", kString},
                               {"inputs", ArrayOf(Ref("TensorMetadata"))},
                               {"outputs", ArrayOf(Ref("TensorMetadata"))}},
                              {"name", "platform", "inputs", "outputs"});
  s["ModelReady"] = Object({{"name", kString}, {"ready", kBool}}, {"name", "ready"});
  s["ModelConfig"] = Object({{"name", kString}, {"max_batch_size", kInteger}}, {"name"});
  s["ModelStatistics"] = Object({{"model_stats", ArrayOf({{"type", "object"}})}}, {"model_stats"});
  const Json data = {{"type", "array"}};
  s["InferInput"] = Object({{"name", kString},
                            {"shape", ArrayOf(kInteger)},
                            {"datatype", kString},
                            {"parameters", {{"type", "object"}}},
                            {"data", data}},
                           {"name", "shape", "datatype"});
  s["InferRequestedOutput"] =
      Object({{"name", kString}, {"parameters", {{"type", "object"}}}}, {"name"});
  s["InferRequest"] = Object({{"id", kString},
                              {"parameters", {{"type", "object"}}},
                              {"inputs", ArrayOf(Ref("InferInput"))},
                              {"outputs", ArrayOf(Ref("InferRequestedOutput"))}},
                             {"inputs"});
  s["InferOutput"] = Object({{"name", kString},
                             {"shape", ArrayOf(kInteger)},
                             {"datatype", kString},
                             {"parameters", {{"type", "object"}}},
                             {"data", data}},
                            {"name", "shape", "datatype"});
  s["InferResponse"] = Object({{"model_name", kString},
                               {"model_version", kString},
                               {"id", kString},
                               {"parameters", {{"type", "object"}}},
                               {"outputs", ArrayOf(Ref("InferOutput"))}},
                              {"model_name", "outputs"});
  return s;
}

Json JsonContent(const Json& schema) { return Json{{"application/json", {{"schema", schema}}}}; }

// The errors any route may answer, each with the JSON error body (server/status.h).
Json ErrorResponses(Json responses, const std::string& error = "Error") {
  for (const char* code :
       {"400", "401", "403", "404", "409", "413", "422", "424", "429", "499", "503", "504"}) {
    responses[code] = {{"$ref", "#/components/responses/" + error}};
  }
  return responses;
}

struct Op {
  std::string method, path, summary, tag;
  Json request;    // the requestBody object, or null
  Json responses;  // the success responses
  Json query;      // extra query parameters
};

Json PathParams(const std::string& path) {
  Json out = Json::array();
  size_t at = 0;
  while ((at = path.find('{', at)) != std::string::npos) {
    const size_t end = path.find('}', at);
    out.push_back({{"name", path.substr(at + 1, end - at - 1)},
                   {"in", "path"},
                   {"required", true},
                   {"schema", {{"type", "string"}, {"minLength", 1}, {"pattern", "^[^/]+$"}}}});
    at = end;
  }
  return out;
}

Json QueryParam(const std::string& name, Json schema, const std::string& description) {
  return Json{{"name", name},
              {"in", "query"},
              {"required", false},
              {"schema", schema},
              {"description", description}};
}

Json Ok(const Json& schema, const std::string& code = "200") {
  return Json{{code, {{"description", "OK"}, {"content", JsonContent(schema)}}}};
}

std::vector<Op> Operations() {
  const Json json = JsonContent(Json());
  auto body = [](const Json& schema, bool required = true) {
    return Json{{"required", required}, {"content", JsonContent(schema)}};
  };
  std::vector<Op> ops;
  // Hugging Face: TEI and the Hub Inference API, for the default model and for any model.
  for (const std::string prefix : {"", "/models/{model}"}) {
    const std::string tag = "Hugging Face";
    const std::string which =
        prefix.empty() ? "the default model" : "a model (NAME, NAME:VERSION, NAME@ALIAS)";
    ops.push_back({"post", prefix + "/predict", "Classify texts or pairs (TEI) with " + which, tag,
                   body(Ref("PredictRequest")), Ok(Ref("PredictResponse")), Json()});
    ops.push_back({"post", prefix + "/tokenize", "Tokenize texts (TEI) with " + which, tag,
                   body(Ref("TokenizeRequest")), Ok(Ref("TokenizeResponse")), Json()});
    ops.push_back({"post", prefix + "/decode", "Token ids back to text (TEI) with " + which, tag,
                   body(Ref("DecodeRequest")), Ok(ArrayOf(kString)), Json()});
    ops.push_back({"get", prefix + "/info", "The model, its labels and limits (TEI)", tag, Json(),
                   Ok(Ref("Info")), Json()});
    for (const std::string path : {"/embed", "/pipeline/feature-extraction"}) {
      ops.push_back({"post", prefix + path,
                     "Sentence embeddings (TEI; the Hub's feature extraction) with " + which, tag,
                     body(Ref("EmbedRequest")), Ok(Ref("EmbedResponse")), Json()});
    }
    ops.push_back({"post", prefix + "/rerank",
                   "Rank texts against a query with a cross-encoder (TEI) with " + which, tag,
                   body(Ref("RerankRequest")), Ok(Ref("RerankResponse")), Json()});
    ops.push_back({"post", prefix.empty() ? "/" : prefix,
                   "Text classification in the Hub Inference API's form with " + which, tag,
                   body(Ref("InferenceApiRequest")), Ok(Ref("InferenceApiResponse")), Json()});
  }
  ops.push_back({"get", "/health", "Serving (503 while draining)", "Hugging Face", Json(),
                 Ok(Ref("Empty")), Json()});
  ops.push_back({"post", "/v1/embeddings",
                 "Embeddings in OpenAI's form (model: NAME, NAME:VERSION or NAME@ALIAS; none: the "
                 "default model)",
                 "OpenAI", body(Ref("OpenAiEmbeddingRequest")), Ok(Ref("OpenAiEmbeddingResponse")),
                 Json()});
  // The Open Inference Protocol.
  const std::string oip = "Open Inference Protocol";
  ops.push_back({"get", "/v2", "Server metadata", oip, Json(), Ok(Ref("ServerMetadata")), Json()});
  ops.push_back({"get", "/v2/health/live", "Live", oip, Json(), Ok(Ref("Empty")), Json()});
  ops.push_back({"get", "/v2/health/ready", "Ready (503 while draining)", oip, Json(),
                 Ok(Ref("Empty")), Json()});
  for (const std::string prefix : {"/v2/models/{model}", "/v2/models/{model}/versions/{version}"}) {
    ops.push_back({"get", prefix, "Model metadata", oip, Json(), Ok(Ref("ModelMetadata")), Json()});
    ops.push_back(
        {"get", prefix + "/ready", "Model readiness", oip, Json(), Ok(Ref("ModelReady")), Json()});
    ops.push_back({"get", prefix + "/config", "Model configuration (Triton's)", oip, Json(),
                   Ok(Ref("ModelConfig")), Json()});
    ops.push_back({"get", prefix + "/stats", "Model statistics (Triton's extension)", oip, Json(),
                   Ok(Ref("ModelStatistics")), Json()});
    Json infer_ok = Ok(Ref("InferResponse"));
    infer_ok["200"]["content"]["application/octet-stream"] = {
        {"schema", {{"type", "string"}, {"format", "binary"}}}};
    ops.push_back({"post", prefix + "/infer",
                   "Inference: a BYTES tensor of texts in (JSON, or the binary tensor extension)",
                   oip, body(Ref("InferRequest")), infer_ok, Json()});
  }
  // Berth's own API.
  const std::string v1 = "Berth v1";
  auto msg = [](const pb::Descriptor* d) { return Ref(SchemaName(d)); };
  const Json file = {{"schema", {{"type", "string"}}}};
  Json created = Ok(msg(v1::UploadDatasetResponse::descriptor()), "201");
  created.update(Ok(msg(v1::UploadDatasetResponse::descriptor())));
  ops.push_back(
      {"post", "/v1/datasets",
       "Upload a labelled CSV, TSV or JSONL file (the body); 201 stored, 200 already present", v1,
       Json{{"required", true},
            {"content",
             {{"text/csv", file},
              {"text/tab-separated-values", file},
              {"application/x-ndjson", file},
              {"application/octet-stream", file}}}},
       created,
       Json::array({QueryParam("file_name", kString,
                               "its extension (.csv, .tsv, .jsonl, .json) picks the parser"),
                    QueryParam("text_column", kString, "default: text or sentence"),
                    QueryParam("text_pair_column", kString, "for pairs"),
                    QueryParam("label_column", kString, "default: label"),
                    QueryParam("multi_label", kBool, "labels are lists"),
                    QueryParam("sha256", kString, "the file's digest, checked")})});
  Json job_created = Ok(msg(v1::StartTrainingResponse::descriptor()), "201");
  job_created.update(Ok(msg(v1::StartTrainingResponse::descriptor())));
  Op create{"post",
            "/v1/jobs",
            "Start a fine-tuning job; 200 when its Idempotency-Key was seen",
            v1,
            body(msg(v1::StartTrainingRequest::descriptor())),
            job_created,
            Json::array()};
  create.query.push_back({{"name", "Idempotency-Key"},
                          {"in", "header"},
                          {"required", false},
                          {"schema", kString},
                          {"description", "the job's request_id: a retry returns the same job"}});
  ops.push_back(create);
  ops.push_back(
      {"get", "/v1/jobs", "Jobs, newest first", v1, Json(),
       Ok(msg(v1::ListJobsResponse::descriptor())),
       Json::array(
           {QueryParam("state", kString, "queued, running, succeeded, failed or cancelled"),
            QueryParam("page_size", Json{{"type", "integer"}, {"minimum", 0}, {"maximum", 1000}},
                       "0: 50"),
            QueryParam("page_token", kString, "from the previous page")})});
  ops.push_back({"get", "/v1/jobs/{job_id}", "A job's status", v1, Json(),
                 Ok(msg(v1::JobStatus::descriptor())), Json()});
  ops.push_back({"post", "/v1/jobs/{job_id}/cancel", "Cancel a job", v1, Json(),
                 Ok(msg(v1::JobStatus::descriptor())), Json()});
  ops.push_back({"get", "/v1/training-defaults",
                 "Every option a job gets when its request leaves it unset", v1, Json(),
                 Ok(msg(v1::StartTrainingRequest::descriptor())), Json()});
  ops.push_back({"get", "/v1/loaded-models",
                 "The model versions loaded for inference now, with their queues and counts", v1,
                 Json(), Ok(msg(v1::ListLoadedModelsResponse::descriptor())), Json()});
  ops.push_back(
      {"get", "/v1/jobs/{job_id}/log",
       "A job's history, oldest first: state changes, errors and progress points (its curves)", v1,
       Json(), Ok(msg(v1::ListJobEventsResponse::descriptor())),
       Json::array(
           {QueryParam("after_id", Json{{"type", "integer"}, {"minimum", 0}},
                       "the last event id seen; 0: from the start"),
            QueryParam("page_size", Json{{"type", "integer"}, {"minimum", 0}, {"maximum", 10000}},
                       "0: 1000")})});
  ops.push_back({"get", "/v1/jobs/{job_id}/events",
                 "Server-Sent Events (state, progress, evaluation), each with the job's status as "
                 "its data, until the job ends",
                 v1, Json(),
                 Json{{"200",
                       {{"description", "an event stream"},
                        {"content", {{"text/event-stream", {{"schema", Ref("JobEvent")}}}}}}}},
                 Json()});
  ops.push_back({"get", "/v1/models", "Every model version", v1, Json(),
                 Ok(msg(v1::ListModelsResponse::descriptor())), Json()});
  ops.push_back({"get", "/v1/models/{model}", "A model version (NAME, NAME:VERSION, NAME@ALIAS)",
                 v1, Json(), Ok(msg(v1::ModelVersion::descriptor())), Json()});
  ops.push_back({"delete", "/v1/models/{name}", "Delete every version of a model", v1, Json(),
                 Ok(msg(v1::DeleteModelResponse::descriptor())), Json()});
  ops.push_back({"delete", "/v1/models/{name}/versions/{version}", "Delete one version", v1, Json(),
                 Ok(msg(v1::DeleteModelResponse::descriptor())), Json()});
  ops.push_back({"put", "/v1/models/{name}/aliases/{alias}", "Point an alias at a version", v1,
                 body(Object({{"version", {{"type", "string"}, {"pattern", "^[0-9]{1,18}$"}}}})),
                 Ok(msg(v1::SetAliasResponse::descriptor())), Json()});
  ops.push_back(
      {"post", "/v1/models/{name}/versions",
       "Import a Hugging Face classifier as the next version: a tar archive as the body, or JSON "
       "naming a directory under --model-roots or a Hub id",
       v1,
       Json{{"required", true},
            {"content",
             {{"application/x-tar", {{"schema", {{"type", "string"}, {"format", "binary"}}}}},
              {"application/json",
               {{"schema", Object({{"directory", kString}, {"hub_id", kString}})}}}}}},
       Ok(msg(v1::ModelVersion::descriptor()), "201"),
       Json::array({QueryParam("sha256", kString, "the archive's digest, checked")})});
  ops.push_back(
      {"get", "/v1/models/{model}/export", "A version's files as a tar archive", v1, Json(),
       Json{
           {"200",
            {{"description", "a tar archive"},
             {"content",
              {{"application/x-tar", {{"schema", {{"type", "string"}, {"format", "binary"}}}}}}}}}},
       Json()});
  ops.push_back({"get", "/openapi.json", "This document", "Berth v1", Json(),
                 Ok(Json{{"type", "object"}}), Json()});
  return ops;
}

}  // namespace

Json OpenApiDocument(const std::string& version) {
  Json paths = Json::object();
  for (const Op& op : Operations()) {
    Json params = PathParams(op.path);
    if (op.query.is_array()) {
      for (const Json& q : op.query) params.push_back(q);
    }
    // The OpenAI-compatible route answers errors in OpenAI's form, which its clients read.
    const std::string error = op.tag == "OpenAI" ? "OpenAiError" : "Error";
    Json o = {{"summary", op.summary},
              {"tags", {op.tag}},
              {"responses", ErrorResponses(op.responses, error)}};
    if (!params.empty()) o["parameters"] = params;
    if (!op.request.is_null()) o["requestBody"] = op.request;
    paths[op.path][op.method] = o;
  }
  Json schemas = HandWrittenSchemas();
  schemas.update(MessageSchemas(
      {v1::UploadDatasetResponse::descriptor(), v1::StartTrainingRequest::descriptor(),
       v1::StartTrainingResponse::descriptor(), v1::JobStatus::descriptor(),
       v1::ListJobsResponse::descriptor(), v1::ListJobEventsResponse::descriptor(),
       v1::ListLoadedModelsResponse::descriptor(), v1::ListModelsResponse::descriptor(),
       v1::ModelVersion::descriptor(), v1::DeleteModelResponse::descriptor(),
       v1::SetAliasResponse::descriptor()}));
  return Json{
      {"openapi", "3.0.3"},
      {"info",
       {{"title", "Berth"},
        {"version", version},
        {"description",
         "Fine-tunes and serves BERT-family text classifiers: the Hugging Face (TEI and Inference "
         "API) routes, the Open Inference Protocol (KServe v2), and Berth's own API (/v1, the "
         "berth.v1 messages in the proto3 JSON mapping). Errors are {\"error\", "
         "\"error_type\"}."}}},
      {"paths", paths},
      {"components",
       {{"schemas", schemas},
        {"responses",
         {{"Error",
           {{"description", "an error: its status says what kind (docs/http.md)"},
            {"content", JsonContent(Ref("Error"))}}},
          {"OpenAiError",
           {{"description", "an error in OpenAI's form"},
            {"content", JsonContent(Ref("OpenAiError"))}}}}},
        {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}},
      {"security", Json::array({Json::object(), Json{{"bearer", Json::array()}}})}};
}

std::vector<std::pair<std::string, std::string>> DocumentedRoutes(const Json& document) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [path, item] : document["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      out.emplace_back(absl::AsciiStrToUpper(method), path);
    }
  }
  return out;
}

}  // namespace berth::server::http
