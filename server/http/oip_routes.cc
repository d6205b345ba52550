// The Open Inference Protocol (KServe v2, what Triton, KServe and MLServer speak, and what
// tritonclient calls) over HTTP, onto the inference facade: the JSON forms of what
// server/oip/protocol.h decides (the gRPC service, server/oip_service.cc, is the other form).
// An alias may stand where a version does (/v2/models/NAME/versions/prod).
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "server/http/oip_codec.h"
#include "server/http/routes.h"
#include "server/oip/protocol.h"
#include "server/status.h"

namespace berth::server::http {
namespace {

service::ModelSelector Selector(const HttpRequest& req) {
  auto v = req.params.find("version");
  return oip::SelectorOf(req.params.at("model"), v == req.params.end() ? "" : v->second);
}

std::string ModelOf(const HttpRequest& req) { return req.params.at("model"); }

Json TensorsJson(const std::vector<oip::TensorMeta>& tensors) {
  Json out = Json::array();
  for (const oip::TensorMeta& t : tensors) {
    Json j = {{"name", t.name}, {"datatype", t.datatype}, {"shape", t.shape}};
    if (t.optional) j["optional"] = true;
    out.push_back(std::move(j));
  }
  return out;
}

Json Metadata(const service::ModelInfo& info) {
  const oip::ModelMetadata m = oip::MetadataOf(info);
  return Json{{"name", m.name},
              {"versions", m.versions},
              {"platform", m.platform},
              {"inputs", TensorsJson(m.inputs)},
              {"outputs", TensorsJson(m.outputs)}};
}

// Triton's model configuration (what tritonclient's get_model_config and perf_analyzer read).
Json Config(const oip::ModelConfig& c) {
  auto tensors = [](const std::vector<oip::ModelConfig::Tensor>& from) {
    Json out = Json::array();
    for (const oip::ModelConfig::Tensor& t : from) {
      Json j = {{"name", t.name}, {"data_type", t.data_type}, {"dims", t.dims}};
      if (t.optional) j["optional"] = true;
      out.push_back(std::move(j));
    }
    return out;
  };
  return Json{{"name", c.name},
              {"platform", c.platform},
              {"backend", c.backend},
              {"max_batch_size", c.max_batch_size},
              {"input", tensors(c.inputs)},
              {"output", tensors(c.outputs)},
              {"version_policy", {{"specific", {{"versions", {c.version}}}}}}};
}

Json DurationJson(const service::Duration& d) { return Json{{"count", d.count}, {"ns", d.ns}}; }

// Triton's statistics extension (GET /v2/models/NAME/stats).
Json Statistics(const service::ModelStatistics& s) {
  return Json{{"model_stats",
               {{{"name", s.name},
                 {"version", std::to_string(s.version)},
                 {"last_inference", s.last_inference_ms},
                 {"inference_count", s.inference_count},
                 {"execution_count", s.execution_count},
                 {"inference_stats",
                  {{"success", DurationJson(s.success)},
                   {"fail", DurationJson(s.fail)},
                   {"queue", DurationJson(s.queue)},
                   {"compute_input", DurationJson(s.compute_input)},
                   {"compute_infer", DurationJson(s.compute_infer)},
                   {"compute_output", DurationJson(s.compute_output)},
                   {"cache_hit", DurationJson({})},
                   {"cache_miss", DurationJson({})}}},
                 {"batch_stats", Json::array()}}}}};
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
    return JsonResponse(
        200, CompactJson(Config(oip::ConfigOf(info, ctx.inference->limits().max_texts))));
  });
}

HttpResponse ModelStats(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, ModelOf(req)).status());
    ASSIGN_OR_RETURN(service::ModelStatistics stats, ctx.inference->Statistics(Selector(req)));
    return JsonResponse(200, CompactJson(Statistics(stats)));
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
    auto parsed = oip::ParseHttpInferRequest(req.body, header_length);
    if (!parsed.ok()) return MalformedRequest(parsed.status().message());
    auto request = oip::ClassifyRequestOf(Selector(req), std::move(parsed->inputs),
                                          oip::RequestedNames(*parsed));
    if (!request.ok()) return MalformedRequest(request.status().message());
    ASSIGN_OR_RETURN(service::ClassifyReply reply, ctx.inference->Classify(*request, CallOf(req)));
    auto outputs = oip::OutputsOf(reply, oip::RequestedNames(*parsed));
    if (!outputs.ok()) return MalformedRequest(outputs.status().message());
    oip::EncodedReply encoded = oip::EncodeHttpInferReply(
        reply.model, std::to_string(reply.model_version), *outputs, *parsed);
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
                                                  {"extensions", oip::kExtensions}}));
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
    router->Add("GET", prefix + "/stats", route(ModelStats));
    router->Add("POST", prefix + "/infer", route(Infer));
  }
}

}  // namespace berth::server::http
