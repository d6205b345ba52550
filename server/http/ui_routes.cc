// GET /ui/...: the web console, a static page of Berth's own (server/ui/) that drives the HTTP
// API from the browser like any other client. The files are built into the server
// (cmake/EmbedUi.cmake); nothing here reads a request body or touches a facade.
#include <string>

#include "server/http/routes.h"
#include "server/http/ui_assets.h"

namespace berth::server::http {
namespace {

// The console's scripts, styles and fetches are its own files and this origin only: no inline
// script or style, no other origin, no framing. A label or dataset text that holds markup is
// rendered as text by the console, and this stops a script even if one were inserted.
constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

HttpResponse Serve(const std::string& path) {
  const std::string want = path.empty() ? "index.html" : path;
  for (const UiAsset& a : UiAssets()) {
    if (want != a.path) continue;
    HttpResponse r;
    r.content_type = a.content_type;
    r.body.assign(reinterpret_cast<const char*>(a.data), a.size);
    r.headers = {{"Content-Security-Policy", kContentSecurityPolicy},
                 {"X-Content-Type-Options", "nosniff"},
                 {"Referrer-Policy", "no-referrer"},
                 {"Cache-Control", "no-cache"}};
    return r;
  }
  return ErrorResponse(absl::NotFoundError("/ui/" + want + ": no such file in the console"));
}

}  // namespace

void AddUiRoutes(Router* router) {
  const RouteOptions inline_route{/*blocking=*/false};
  router->Add(
      "GET", "/ui", [](HttpRequest&) { return Serve(""); }, inline_route);
  router->Add(
      "GET", "/ui/{path...}", [](HttpRequest& req) { return Serve(req.params.at("path")); },
      inline_route);
}

}  // namespace berth::server::http
