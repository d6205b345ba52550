// The Hugging Face routes (TEI's and the Hub Inference API's), over the inference facade.
#include "server/http/routes.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/service/model_ref.h"
#include "core/util/status_macros.h"
#include "server/http/openapi.h"
#include "server/status.h"

namespace berth::server::http {

absl::StatusOr<std::optional<Principal>> CheckAccess(const HttpContext& ctx, const HttpRequest& req,
                                                     Permission need, const std::string& model) {
  if (ctx.auth == nullptr) return std::optional<Principal>();
  auto header = req.Header("authorization");
  ASSIGN_OR_RETURN(Principal p, ctx.auth->Authenticate(header));
  RETURN_IF_ERROR(Authorize(p, need, service::ModelRefName(model)));
  return std::optional<Principal>(p);
}

absl::StatusOr<Json> ParseBody(const HttpRequest& req) {
  Json j = Json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return MalformedRequest("request body: not valid JSON");
  if (!j.is_object()) return MalformedRequest("request body: must be a JSON object");
  return j;
}

absl::StatusOr<std::string> RouteModel(const HttpContext& ctx, const HttpRequest& req) {
  auto it = req.params.find("model");
  if (it != req.params.end()) return it->second;
  if (ctx.default_model.empty()) {
    return absl::NotFoundError(
        "this server has no default model (berth-server --default-model NAME): name one in the "
        "path, /models/NAME/...");
  }
  return ctx.default_model;
}

service::CallContext CallOf(const HttpRequest& req) {
  service::CallContext call;
  call.cancelled = req.client_gone;
  return call;
}

absl::StatusOr<bool> OptionalBool(const Json& j, const char* key, bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) return MalformedRequest(absl::StrCat(key, ": must be true or false"));
  return j[key].get<bool>();
}

absl::StatusOr<std::string> OptionalString(const Json& j, const std::string& field,
                                           const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::string();
  if (!j[key].is_string()) return MalformedRequest(absl::StrCat(field, key, ": must be a string"));
  return j[key].get<std::string>();
}

absl::StatusOr<service::Truncation> TeiTruncation(const Json& body) {
  ASSIGN_OR_RETURN(bool truncate, OptionalBool(body, "truncate", false));
  ASSIGN_OR_RETURN(std::string direction, OptionalString(body, "", "truncation_direction"));
  if (!direction.empty() && direction != "Left" && direction != "Right")
    return MalformedRequest("truncation_direction: must be Left or Right");
  return !truncate             ? service::Truncation::kNone
         : direction == "Left" ? service::Truncation::kLeft
                               : service::Truncation::kRight;
}

namespace {

// TEI's `inputs` of /predict: a string, a pair [string, string], or a batch of both kinds
// ([[string], [string, string], ...]); `batch` says which form it had.
struct PredictInputs {
  std::vector<std::pair<std::string, std::optional<std::string>>> items;
  bool batch = false;
};

absl::StatusOr<PredictInputs> ReadPredictInputs(const Json& body) {
  const char* kShape =
      "inputs: must be a string, a pair of strings [string, string] or a batch of them "
      "[[string], [string, string], ...]";
  if (!body.contains("inputs")) return MalformedRequest("inputs: required");
  const Json& in = body["inputs"];
  PredictInputs out;
  if (in.is_string()) {
    out.items.emplace_back(in.get<std::string>(), std::nullopt);
    return out;
  }
  if (!in.is_array()) return MalformedRequest(kShape);
  out.batch = true;
  if (in.empty()) return out;  // an empty batch: the facade's rules answer it
  if (in[0].is_string()) {     // one sequence: a text, or a pair
    out.batch = false;
    if (in.size() > 2 || !in.back().is_string()) return MalformedRequest(kShape);
    out.items.emplace_back(in[0].get<std::string>(), std::nullopt);
    if (in.size() == 2) out.items.back().second = in[1].get<std::string>();
    return out;
  }
  for (const Json& seq : in) {
    if (!seq.is_array() || seq.empty() || seq.size() > 2 || !seq[0].is_string() ||
        !seq.back().is_string()) {
      return MalformedRequest(kShape);
    }
    out.items.emplace_back(seq[0].get<std::string>(), std::nullopt);
    if (seq.size() == 2) out.items.back().second = seq[1].get<std::string>();
  }
  return out;
}

// Classifies singles and pairs (one facade call each: a batch may mix them) in input order.
absl::StatusOr<std::vector<ClassifyResult>> ClassifyItems(
    const HttpContext& ctx, const HttpRequest& req, service::ClassifyRequest base,
    const std::vector<std::pair<std::string, std::optional<std::string>>>& items,
    std::vector<std::string>* labels) {
  std::vector<ClassifyResult> out(items.size());
  for (bool pairs : {false, true}) {
    service::ClassifyRequest r = base;
    std::vector<size_t> where;
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].second.has_value() != pairs) continue;
      where.push_back(i);
      r.texts.push_back(items[i].first);
      if (pairs) r.text_pairs.push_back(*items[i].second);
    }
    // An empty batch still goes to the facade once, whose rules answer it.
    if (where.empty() && (pairs || !items.empty())) continue;
    ASSIGN_OR_RETURN(service::ClassifyReply reply, ctx.inference->Classify(r, CallOf(req)));
    *labels = reply.labels;
    for (size_t k = 0; k < where.size(); ++k) out[where[k]] = std::move(reply.results[k]);
  }
  return out;
}

// Every label with its score, best first (TEI's and the Inference API's order).
Json Ranked(const ClassifyResult& c, const std::vector<std::string>& labels, size_t keep) {
  std::vector<size_t> order(c.scores.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return c.scores[a] > c.scores[b]; });
  Json out = Json::array();
  for (size_t i = 0; i < order.size() && i < keep; ++i) {
    out.push_back({{"score", c.scores[order[i]]},
                   {"label", order[i] < labels.size() ? labels[order[i]] : ""}});
  }
  return out;
}

HttpResponse Predict(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(std::string model, RouteModel(ctx, req));
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, model).status());
    ASSIGN_OR_RETURN(Json body, ParseBody(req));
    ASSIGN_OR_RETURN(PredictInputs inputs, ReadPredictInputs(body));
    ASSIGN_OR_RETURN(bool raw, OptionalBool(body, "raw_scores", false));
    service::ClassifyRequest r;
    r.model.model = model;
    ASSIGN_OR_RETURN(r.truncation, TeiTruncation(body));
    if (raw) r.activation = service::Activation::kNone;
    std::vector<std::string> labels;
    ASSIGN_OR_RETURN(std::vector<ClassifyResult> results,
                     ClassifyItems(ctx, req, r, inputs.items, &labels));
    Json out = Json::array();
    for (const ClassifyResult& c : results) out.push_back(Ranked(c, labels, c.scores.size()));
    return JsonResponse(200, CompactJson(inputs.batch ? out : out[0]));
  });
}

// The Hub Inference API's text classification: {"inputs": text or [texts], "parameters":
// {"top_k", "function_to_apply"}} -> one list of {label, score} per text, even for one.
HttpResponse InferenceApi(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(std::string model, RouteModel(ctx, req));
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, model).status());
    ASSIGN_OR_RETURN(Json body, ParseBody(req));
    std::vector<std::pair<std::string, std::optional<std::string>>> items;
    const Json in = body.value("inputs", Json());
    if (in.is_string()) {
      items.emplace_back(in.get<std::string>(), std::nullopt);
    } else if (in.is_array() &&
               std::all_of(in.begin(), in.end(), [](const Json& x) { return x.is_string(); })) {
      for (const Json& t : in) items.emplace_back(t.get<std::string>(), std::nullopt);
    } else {
      return MalformedRequest("inputs: must be a string or a list of strings");
    }
    const Json params = body.value("parameters", Json::object());
    if (!params.is_object()) return MalformedRequest("parameters: must be an object");
    size_t keep = SIZE_MAX;
    if (params.contains("top_k") && !params["top_k"].is_null()) {
      if (!params["top_k"].is_number_integer() || params["top_k"].get<int64_t>() < 1)
        return MalformedRequest("parameters.top_k: must be a positive integer");
      keep = static_cast<size_t>(params["top_k"].get<int64_t>());
    }
    service::ClassifyRequest r;
    r.model.model = model;
    ASSIGN_OR_RETURN(std::string fn, OptionalString(params, "parameters.", "function_to_apply"));
    if (fn == "sigmoid")
      r.activation = service::Activation::kSigmoid;
    else if (fn == "softmax")
      r.activation = service::Activation::kSoftmax;
    else if (fn == "none")
      r.activation = service::Activation::kNone;
    else if (!fn.empty())
      return MalformedRequest("parameters.function_to_apply: must be sigmoid, softmax or none");
    std::vector<std::string> labels;
    ASSIGN_OR_RETURN(std::vector<ClassifyResult> results,
                     ClassifyItems(ctx, req, r, items, &labels));
    Json out = Json::array();
    for (const ClassifyResult& c : results) {
      Json ranked = Ranked(c, labels, keep);
      for (Json& e : ranked) e = {{"label", e["label"]}, {"score", e["score"]}};
      out.push_back(std::move(ranked));
    }
    return JsonResponse(200, CompactJson(out));
  });
}

HttpResponse Tokenize(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(std::string model, RouteModel(ctx, req));
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, model).status());
    ASSIGN_OR_RETURN(Json body, ParseBody(req));
    service::TokenizeRequest r;
    r.model.model = model;
    const Json in = body.value("inputs", Json());
    if (in.is_string()) {
      r.texts.push_back(in.get<std::string>());
    } else if (in.is_array() &&
               std::all_of(in.begin(), in.end(), [](const Json& x) { return x.is_string(); })) {
      for (const Json& t : in) r.texts.push_back(t.get<std::string>());
    } else {
      return MalformedRequest("inputs: must be a string or a list of strings");
    }
    ASSIGN_OR_RETURN(r.add_special_tokens, OptionalBool(body, "add_special_tokens", true));
    ASSIGN_OR_RETURN(service::TokenizeReply reply, ctx.inference->Tokenize(r));
    Json out = Json::array();
    for (size_t i = 0; i < reply.encodings.size(); ++i) {
      const text::Encoding& e = reply.encodings[i];
      Json tokens = Json::array();
      for (size_t k = 0; k < e.input_ids.size(); ++k) {
        // Berth's tokenizers keep no character offsets: start and stop are null (TEI gives them).
        tokens.push_back({{"id", e.input_ids[k]},
                          {"text", k < e.tokens.size() ? e.tokens[k] : ""},
                          {"special", static_cast<bool>(reply.special[i][k])},
                          {"start", nullptr},
                          {"stop", nullptr}});
      }
      out.push_back(std::move(tokens));
    }
    return JsonResponse(200, CompactJson(out));
  });
}

// TEI's /decode: {"ids": [id, ...] or [[id, ...], ...], "skip_special_tokens": true} -> one text
// per sequence, a list even for one.
HttpResponse Decode(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(std::string model, RouteModel(ctx, req));
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, model).status());
    ASSIGN_OR_RETURN(Json body, ParseBody(req));
    service::DecodeRequest r;
    r.model.model = model;
    const char* kShape = "ids: must be a list of token ids or a list of such lists";
    const Json in = body.value("ids", Json());
    if (!in.is_array()) return MalformedRequest(kShape);
    const bool batch = !in.empty() && in[0].is_array();
    for (const Json& seq : batch ? in : Json::array({in})) {
      if (!seq.is_array()) return MalformedRequest(kShape);
      std::vector<int32_t> ids;
      for (const Json& id : seq) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
          return MalformedRequest("ids: token ids are integers from 0");
        ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
      }
      r.ids.push_back(std::move(ids));
    }
    ASSIGN_OR_RETURN(r.skip_special_tokens, OptionalBool(body, "skip_special_tokens", true));
    ASSIGN_OR_RETURN(service::DecodeReply reply, ctx.inference->Decode(r));
    return JsonResponse(200, CompactJson(Json(reply.texts)));
  });
}

HttpResponse Info(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(std::string model, RouteModel(ctx, req));
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, model).status());
    ASSIGN_OR_RETURN(service::ModelInfo info, ctx.inference->Describe({model, 0, ""}));
    Json id2label = Json::object(), label2id = Json::object();
    for (size_t i = 0; i < info.labels.size(); ++i) {
      id2label[std::to_string(i)] = info.labels[i];
      label2id[info.labels[i]] = i;
    }
    const char* kind = info.labels.size() == 1 ? "reranker" : "classifier";
    Json out = {{"model_id", absl::StrCat(info.name, ":", info.version)},
                {"model_sha", nullptr},
                {"model_dtype", info.dtype},
                {"model_type", {{kind, {{"id2label", id2label}, {"label2id", label2id}}}}},
                {"max_concurrent_requests", 1024},
                {"max_input_length", info.max_length},
                {"max_batch_tokens", info.max_batch_tokens},
                {"max_batch_requests", nullptr},
                {"max_client_batch_size", ctx.inference->limits().max_texts},
                {"auto_truncate", false},
                {"tokenization_workers", 1},
                {"version", ctx.version},
                {"sha", nullptr},
                {"docker_label", nullptr},
                {"berth",
                 {{"name", info.name},
                  {"version", info.version},
                  {"labels", info.labels},
                  {"multi_label", info.multi_label},
                  {"model_type", info.model_type},
                  {"max_text_bytes", ctx.inference->limits().max_text_bytes}}}};
    return JsonResponse(200, CompactJson(out));
  });
}

}  // namespace

std::shared_ptr<Router> MakeRouter(const HttpContext& ctx) {
  auto router = std::make_shared<Router>();
  auto route = [&ctx](HttpResponse (*f)(const HttpContext&, HttpRequest&)) {
    return [ctx, f](HttpRequest& req) { return f(ctx, req); };
  };
  for (const std::string prefix : {"", "/models/{model}"}) {
    router->Add("POST", prefix + "/predict", route(Predict));
    router->Add("POST", prefix + "/tokenize", route(Tokenize));
    router->Add("POST", prefix + "/decode", route(Decode));
    router->Add("GET", prefix + "/info", route(Info));
    router->Add("POST", prefix.empty() ? "/" : prefix, route(InferenceApi));
  }
  router->Add(
      "GET", "/health",
      [ctx](HttpRequest&) {
        if (ctx.ready && !ctx.ready()) {
          return ErrorResponse(absl::UnavailableError("the server is shutting down"));
        }
        return JsonResponse(200, "{}");
      },
      RouteOptions{/*blocking=*/false});
  AddEmbedRoutes(ctx, router.get());
  AddOipRoutes(ctx, router.get());
  AddV1Routes(ctx, router.get());
  AddUiRoutes(router.get());
  auto document = std::make_shared<const std::string>(CompactJson(OpenApiDocument(ctx.version)));
  router->Add(
      "GET", "/openapi.json", [document](HttpRequest&) { return JsonResponse(200, *document); },
      RouteOptions{/*blocking=*/false});
  return router;
}

}  // namespace berth::server::http
