// GET /metrics: one route on an HTTP server of its own (one network thread, no request pool).
#include "server/metrics_http.h"

#include <utility>

#include "core/util/status_macros.h"

namespace berth::server {

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen, std::function<std::string()> render) {
  auto router = std::make_shared<http::Router>();
  router->Add(
      "GET", "/metrics",
      [render = std::move(render)](http::HttpRequest&) {
        http::HttpResponse r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = render();
        return r;
      },
      http::RouteOptions{/*blocking=*/false});
  http::HttpServerOptions o;
  o.listen = listen;
  o.flag = "--metrics-listen";
  o.threads = 1;
  o.max_body_bytes = 1 << 20;
  ASSIGN_OR_RETURN(std::unique_ptr<http::HttpServer> http,
                   http::HttpServer::Start(o, router, /*pool=*/nullptr, /*on_request=*/nullptr));
  return std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(std::move(http)));
}

}  // namespace berth::server
