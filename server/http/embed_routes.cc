// Embeddings and reranking over the inference facade: TEI's /embed and /rerank, the Hub's
// feature-extraction pipeline path, and OpenAI's /v1/embeddings.
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "server/http/routes.h"
#include "server/status.h"

namespace berth::server::http {
namespace {

// `key` as a text or a list of texts; a list holding a list (TEI's pair form) is refused by name.
absl::StatusOr<std::vector<std::string>> Texts(const Json& body, const char* key, bool* batch) {
  const std::string shape = absl::StrCat(key, ": must be a string or a list of strings");
  if (!body.contains(key)) return MalformedRequest(absl::StrCat(key, ": required"));
  const Json& in = body[key];
  std::vector<std::string> out;
  *batch = in.is_array();
  if (in.is_string()) {
    out.push_back(in.get<std::string>());
    return out;
  }
  if (!in.is_array()) return MalformedRequest(shape);
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i].is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, "[", i,
                       "]: an embedding is of one text, not a pair (pairs are for /predict and "
                       "/rerank)"));
    }
    if (!in[i].is_string()) return MalformedRequest(shape);
    out.push_back(in[i].get<std::string>());
  }
  return out;
}

absl::StatusOr<std::optional<int64_t>> Dimensions(const Json& body) {
  if (!body.contains("dimensions") || body["dimensions"].is_null()) return std::nullopt;
  if (!body["dimensions"].is_number_integer())
    return MalformedRequest("dimensions: must be an integer");
  return body["dimensions"].get<int64_t>();
}

// TEI's /embed (and the Hub's feature-extraction, whose payload is the same): {"inputs": text or
// [texts], "normalize", "truncate", "truncation_direction", "dimensions"} -> [[float, ...], ...].
HttpResponse Embed(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(std::string model, RouteModel(ctx, req));
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, model).status());
    ASSIGN_OR_RETURN(Json body, ParseBody(req));
    service::EmbedRequest r;
    r.model.model = model;
    bool batch = false;
    ASSIGN_OR_RETURN(r.texts, Texts(body, "inputs", &batch));
    ASSIGN_OR_RETURN(r.truncation, TeiTruncation(body));
    if (body.contains("normalize") && !body["normalize"].is_null()) {
      ASSIGN_OR_RETURN(bool normalize, OptionalBool(body, "normalize", true));
      r.normalize = normalize;
    }
    ASSIGN_OR_RETURN(r.dimensions, Dimensions(body));
    ASSIGN_OR_RETURN(service::EmbedReply reply, ctx.inference->Embed(r, CallOf(req)));
    Json out = Json::array();
    for (const ClassifyResult& c : reply.results) out.push_back(c.embedding);
    return JsonResponse(200, CompactJson(out));
  });
}

// TEI's /rerank: {"query", "texts", "raw_scores", "return_text", "truncate",
// "truncation_direction"} -> [{"index", "score"[, "text"]}, ...], best first.
HttpResponse Rerank(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(std::string model, RouteModel(ctx, req));
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, model).status());
    ASSIGN_OR_RETURN(Json body, ParseBody(req));
    service::RerankRequest r;
    r.model.model = model;
    if (!body.contains("query") || !body["query"].is_string())
      return MalformedRequest("query: required, a string");
    r.query = body["query"].get<std::string>();
    bool batch = false;
    ASSIGN_OR_RETURN(r.texts, Texts(body, "texts", &batch));
    ASSIGN_OR_RETURN(r.raw_scores, OptionalBool(body, "raw_scores", false));
    ASSIGN_OR_RETURN(bool return_text, OptionalBool(body, "return_text", false));
    ASSIGN_OR_RETURN(r.truncation, TeiTruncation(body));
    ASSIGN_OR_RETURN(service::RerankReply reply, ctx.inference->Rerank(r, CallOf(req)));
    Json out = Json::array();
    for (const service::RerankResult& x : reply.results) {
      Json item = {{"index", x.index}, {"score", x.score}};
      if (return_text) item["text"] = r.texts[static_cast<size_t>(x.index)];
      out.push_back(std::move(item));
    }
    return JsonResponse(200, CompactJson(out));
  });
}

// OpenAI's embeddings: {"model", "input": text or [texts], "encoding_format": "float" or
// "base64", "dimensions", "user"} -> {"object": "list", "data": [{"object": "embedding",
// "index", "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}. "base64" is the
// little-endian float32 bytes, as OpenAI's (and its Python client's default).
HttpResponse OpenAiEmbeddings(const HttpContext& ctx, HttpRequest& req) {
  absl::StatusOr<HttpResponse> r = [&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(Json body, ParseBody(req));
    ASSIGN_OR_RETURN(std::string model, OptionalString(body, "", "model"));
    if (model.empty()) {
      ASSIGN_OR_RETURN(model, RouteModel(ctx, req));
    }
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, model).status());
    service::EmbedRequest e;
    e.model.model = model;
    bool batch = false;
    ASSIGN_OR_RETURN(e.texts, Texts(body, "input", &batch));
    ASSIGN_OR_RETURN(e.dimensions, Dimensions(body));
    ASSIGN_OR_RETURN(std::string format, OptionalString(body, "", "encoding_format"));
    if (!format.empty() && format != "float" && format != "base64")
      return MalformedRequest("encoding_format: must be float or base64");
    // OpenAI refuses an input over the model's length; so does this route.
    e.truncation = service::Truncation::kNone;
    ASSIGN_OR_RETURN(service::EmbedReply reply, ctx.inference->Embed(e, CallOf(req)));
    Json data = Json::array();
    int64_t tokens = 0;
    for (size_t i = 0; i < reply.results.size(); ++i) {
      const std::vector<float>& v = reply.results[i].embedding;
      tokens += reply.results[i].num_tokens;
      Json item = {{"object", "embedding"}, {"index", i}};
      if (format == "base64") {
        std::string bytes(v.size() * sizeof(float), '\0');
        std::memcpy(bytes.data(), v.data(), bytes.size());  // x86-64 and ARM64: little-endian
        item["embedding"] = absl::Base64Escape(bytes);
      } else {
        item["embedding"] = v;
      }
      data.push_back(std::move(item));
    }
    Json out = {{"object", "list"},
                {"data", std::move(data)},
                {"model", model},
                {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
    return JsonResponse(200, CompactJson(out));
  }();
  return r.ok() ? std::move(*r) : OpenAiErrorResponse(r.status());
}

}  // namespace

void AddEmbedRoutes(const HttpContext& ctx, Router* router) {
  auto route = [&ctx](HttpResponse (*f)(const HttpContext&, HttpRequest&)) {
    return [ctx, f](HttpRequest& req) { return f(ctx, req); };
  };
  for (const std::string prefix : {"", "/models/{model}"}) {
    router->Add("POST", prefix + "/embed", route(Embed));
    router->Add("POST", prefix + "/pipeline/feature-extraction", route(Embed));
    router->Add("POST", prefix + "/rerank", route(Rerank));
  }
  router->Add("POST", "/v1/embeddings", route(OpenAiEmbeddings));
}

}  // namespace berth::server::http
