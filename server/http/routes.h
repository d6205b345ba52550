// Berth's HTTP routes: each is a thin translation onto a facade (core/service, core/jobs), like
// the gRPC handlers: check access, convert, one facade call, convert back. The request rules
// (limits, messages, model resolution) are the facades', so a change there shows on every door.
//
//   Hugging Face Text Embeddings Inference (TEI):  POST /predict, POST /tokenize, POST /decode,
//                                                  GET /info, GET /health
//   embeddings and reranking (embed_routes.cc):    POST /embed, POST /rerank (TEI),
//                                                  POST /pipeline/feature-extraction (the Hub),
//                                                  POST /v1/embeddings (OpenAI)
//   the Hub Inference API's form:                  POST /
//   the same for any registered model:             /models/{model}/predict, .../tokenize,
//                                                  .../decode, .../info, POST /models/{model}
//   the Open Inference Protocol (KServe v2):       /v2/... (oip_routes.cc)
//   Berth's own API (datasets, jobs, models):      /v1/... (v1_routes.cc)
//   the OpenAPI document of them all:              GET /openapi.json (openapi.cc)
//   the web console, a client of the above:        GET /ui/ (ui_routes.cc, server/ui/)
//
// {model} is NAME, NAME:VERSION or NAME@ALIAS; the routes without it use --default-model.
#ifndef BERTH_SERVER_HTTP_ROUTES_H_
#define BERTH_SERVER_HTTP_ROUTES_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/jobs/training.h"
#include "core/service/inference.h"
#include "core/service/models.h"
#include "core/util/json.h"
#include "server/auth.h"
#include "server/http/http_server.h"

namespace berth::server::http {

struct HttpContext {
  service::Inference* inference;
  service::Models* models;
  jobs::Training* training;
  const TokenAuthenticator* auth;  // nullptr: authentication is off
  std::string default_model;       // the model of the routes that name none ("": none)
  std::string version;             // Berth's
  std::function<bool()> ready;     // serving (not draining)
  int64_t max_upload_bytes = 0;    // the body limit of dataset uploads and model archives
  // Server-Sent Event streams open at once: each waits for its job on a request-pool thread, so
  // they may hold only this many of them (a quarter of the pool); beyond, 429.
  int max_event_streams = 4;
};

std::shared_ptr<Router> MakeRouter(const HttpContext& ctx);

// What the route files share.
// A route's body: the response, or the error as the JSON error body.
template <typename F>
HttpResponse Answer(F&& body) {
  absl::StatusOr<HttpResponse> r = body();
  return r.ok() ? std::move(*r) : ErrorResponse(r.status());
}
// The caller (nullopt with authentication off) if it may do `need` on `model`.
absl::StatusOr<std::optional<Principal>> CheckAccess(const HttpContext& ctx, const HttpRequest& req,
                                                     Permission need, const std::string& model);
// The request's JSON object; malformed JSON (or not an object) is a 400 naming the problem.
absl::StatusOr<Json> ParseBody(const HttpRequest& req);
// The model a route serves: its {model} path segment, else the default model.
absl::StatusOr<std::string> RouteModel(const HttpContext& ctx, const HttpRequest& req);
// The call context of a request: cancelled once its client has gone.
service::CallContext CallOf(const HttpRequest& req);

// A body's optional fields: absent or null gives the fallback (or ""), another type a 400 naming
// the field (`field` prefixes the key, e.g. "parameters.").
absl::StatusOr<bool> OptionalBool(const Json& j, const char* key, bool fallback);
absl::StatusOr<std::string> OptionalString(const Json& j, const std::string& field,
                                           const char* key);
// TEI's truncate (default false: an over-long text is refused) and truncation_direction.
absl::StatusOr<service::Truncation> TeiTruncation(const Json& body);

void AddEmbedRoutes(const HttpContext& ctx, Router* router);
void AddOipRoutes(const HttpContext& ctx, Router* router);
void AddV1Routes(const HttpContext& ctx, Router* router);
// The web console's files under /ui/ (ui_routes.cc).
void AddUiRoutes(Router* router);

}  // namespace berth::server::http

#endif  // BERTH_SERVER_HTTP_ROUTES_H_
