// GET /metrics for Prometheus, on the metrics port, served by the same HTTP server as the API
// (server/http: Boost.Beast over Asio). prometheus-cpp's own exposer (civetweb) cannot start in
// a process that links libtorch_cuda: it binds, then pthread_create fails for every thread it
// starts (civetweb logs "Cannot create threads"), because Debian's civetweb gives its threads
// 100 KB stacks and the static TLS of the CUDA libraries the torch wheel loads (cuBLASLt alone
// 92 KB, libtorch_cpu 26 KB, ~170 KB in all) does not fit in them. Asio's threads are
// std::threads with the default stack; cuda_libraries_loaded (tests/integration) starts the
// server with LibTorch's CUDA half loaded and scrapes both ports.
#ifndef BERTH_SERVER_METRICS_HTTP_H_
#define BERTH_SERVER_METRICS_HTTP_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/http/http_server.h"

namespace berth::server {

class MetricsHttpServer {
 public:
  // `listen` is "HOST:PORT" (an address or a host name; port 0: any free port). `render`
  // produces the body of each GET /metrics (on the server's network thread: it only formats).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen, std::function<std::string()> render);

  int port() const { return http_->port(); }

 private:
  explicit MetricsHttpServer(std::unique_ptr<http::HttpServer> http) : http_(std::move(http)) {}
  std::unique_ptr<http::HttpServer> http_;
};

}  // namespace berth::server

#endif  // BERTH_SERVER_METRICS_HTTP_H_
