// The Open Inference Protocol (KServe v2, what Triton, KServe and MLServer speak, and what
// tritonclient calls) over HTTP, onto the inference facade. A Berth model is a v2 model: its
// versions are the protocol's versions, and an alias may stand where a version does
// (/v2/models/NAME/versions/prod). It takes BYTES inputs `text` (and optionally `text_pair`) of
// shape [N] and answers `probabilities` (FP32 [N, labels]) and `label` (BYTES [N]).
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "server/http/oip_codec.h"
#include "server/http/routes.h"
#include "server/status.h"

namespace berth::server::http {
namespace {

template <typename F>
HttpResponse Answer(F&& body) {
  absl::StatusOr<HttpResponse> r = body();
  return r.ok() ? std::move(*r) : ErrorResponse(r.status());
}

// The path's model and version as a selector: a numeric version is one, any other an alias.
service::ModelSelector Selector(const HttpRequest& req) {
  service::ModelSelector m;
  m.model = req.params.at("model");
  auto v = req.params.find("version");
  if (v != req.params.end() && !absl::SimpleAtoi(v->second, &m.version)) m.alias = v->second;
  return m;
}

std::string ModelOf(const HttpRequest& req) { return req.params.at("model"); }

Json Metadata(const service::ModelInfo& info) {
  const int64_t labels = static_cast<int64_t>(info.labels.size());
  return Json{
      {"name", info.name},
      {"versions", {std::to_string(info.version)}},
      {"platform", "berth"},
      {"inputs",
       {{{"name", "text"}, {"datatype", "BYTES"}, {"shape", {-1}}},
        {{"name", "text_pair"}, {"datatype", "BYTES"}, {"shape", {-1}}, {"optional", true}}}},
      {"outputs",
       {{{"name", "probabilities"}, {"datatype", "FP32"}, {"shape", {-1, labels}}},
        {{"name", "label"}, {"datatype", "BYTES"}, {"shape", {-1}}}}}};
}

// Triton's model configuration (what tritonclient's get_model_config and perf_analyzer read).
Json Config(const service::ModelInfo& info, int max_batch) {
  return Json{
      {"name", info.name},
      {"platform", "berth"},
      {"backend", "berth"},
      {"max_batch_size", max_batch},
      {"input",
       {{{"name", "text"}, {"data_type", "TYPE_STRING"}, {"dims", {1}}},
        {{"name", "text_pair"}, {"data_type", "TYPE_STRING"}, {"dims", {1}}, {"optional", true}}}},
      {"output",
       {{{"name", "probabilities"},
         {"data_type", "TYPE_FP32"},
         {"dims", {static_cast<int64_t>(info.labels.size())}}},
        {{"name", "label"}, {"data_type", "TYPE_STRING"}, {"dims", {1}}}}},
      {"version_policy", {{"specific", {{"versions", {info.version}}}}}}};
}

HttpResponse ModelMetadata(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, ModelOf(req)).status());
    ASSIGN_OR_RETURN(service::ModelInfo info, ctx.inference->Describe(Selector(req)));
    return JsonResponse(200, CompactJson(Metadata(info)));
  });
}

HttpResponse ModelReady(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, ModelOf(req)).status());
    ASSIGN_OR_RETURN(service::ModelInfo info, ctx.inference->Describe(Selector(req)));
    return JsonResponse(200, CompactJson(Json{{"name", info.name}, {"ready", true}}));
  });
}

HttpResponse ModelConfig(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, ModelOf(req)).status());
    ASSIGN_OR_RETURN(service::ModelInfo info, ctx.inference->Describe(Selector(req)));
    return JsonResponse(200, CompactJson(Config(info, ctx.inference->limits().max_texts)));
  });
}

HttpResponse Infer(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, ModelOf(req)).status());
    std::optional<int64_t> header_length;
    if (auto h = req.Header("inference-header-content-length"); h) {
      int64_t n = 0;
      if (!absl::SimpleAtoi(*h, &n))
        return MalformedRequest("Inference-Header-Content-Length: not a length");
      header_length = n;
    }
    auto parsed = oip::ParseInferRequest(req.body, header_length);
    if (!parsed.ok()) return MalformedRequest(parsed.status().message());
    service::ClassifyRequest r;
    r.model = Selector(req);
    for (oip::InputTensor& t : parsed->inputs) {
      if (t.name == "text")
        r.texts = std::move(t.bytes);
      else if (t.name == "text_pair")
        r.text_pairs = std::move(t.bytes);
      else
        return MalformedRequest("inputs: '" + t.name + "' is not an input (text, text_pair)");
    }
    ASSIGN_OR_RETURN(service::ClassifyReply reply, ctx.inference->Classify(r, CallOf(req)));
    const int64_t n = static_cast<int64_t>(reply.results.size());
    oip::OutputTensor probs{
        "probabilities", "FP32", {n, static_cast<int64_t>(reply.labels.size())}, {}, {}};
    oip::OutputTensor labels{"label", "BYTES", {n}, {}, {}};
    for (const ClassifyResult& c : reply.results) {
      probs.fp32.insert(probs.fp32.end(), c.scores.begin(), c.scores.end());
      labels.bytes.push_back(c.label);
    }
    oip::EncodedReply encoded = oip::EncodeInferReply(
        reply.model, std::to_string(reply.model_version), parsed->id, {probs, labels}, *parsed);
    HttpResponse out = JsonResponse(200, std::move(encoded.body));
    if (encoded.header_length) {
      out.content_type = "application/octet-stream";
      out.headers.emplace_back("Inference-Header-Content-Length",
                               std::to_string(*encoded.header_length));
    }
    return out;
  });
}

}  // namespace

void AddOipRoutes(const HttpContext& ctx, Router* router) {
  auto route = [&ctx](HttpResponse (*f)(const HttpContext&, HttpRequest&)) {
    return [ctx, f](HttpRequest& req) { return f(ctx, req); };
  };
  router->Add(
      "GET", "/v2",
      [ctx](HttpRequest&) {
        return JsonResponse(200, CompactJson(Json{{"name", "berth"},
                                                  {"version", ctx.version},
                                                  {"extensions", {"binary_tensor_data"}}}));
      },
      RouteOptions{/*blocking=*/false});
  router->Add(
      "GET", "/v2/health/live", [](HttpRequest&) { return JsonResponse(200, "{}"); },
      RouteOptions{/*blocking=*/false});
  router->Add(
      "GET", "/v2/health/ready",
      [ctx](HttpRequest&) {
        return ctx.ready && !ctx.ready()
                   ? ErrorResponse(absl::UnavailableError("the server is shutting down"))
                   : JsonResponse(200, "{}");
      },
      RouteOptions{/*blocking=*/false});
  for (const std::string prefix : {"/v2/models/{model}", "/v2/models/{model}/versions/{version}"}) {
    router->Add("GET", prefix, route(ModelMetadata));
    router->Add("GET", prefix + "/ready", route(ModelReady));
    router->Add("GET", prefix + "/config", route(ModelConfig));
    router->Add("POST", prefix + "/infer", route(Infer));
  }
}

}  // namespace berth::server::http
