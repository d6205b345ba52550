// A minimal HTTP/1.1 endpoint serving GET /metrics for Prometheus. prometheus-cpp's own
// exposer (civetweb) cannot start in a process that links libtorch_cuda: it binds, then
// pthread_create fails for every thread it starts (civetweb logs "Cannot create threads"),
// because Debian's civetweb gives its threads 100 KB stacks and the static TLS of the CUDA
// libraries the torch wheel loads (cuBLASLt alone 92 KB, libtorch_cpu 26 KB, ~170 KB in all)
// does not fit in them. So Berth serves the text format itself, on a default-sized stack.
#ifndef BERTH_SERVER_METRICS_HTTP_H_
#define BERTH_SERVER_METRICS_HTTP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace berth::server {

class MetricsHttpServer {
 public:
  // `listen` is "HOST:PORT" (IPv4 or a host name; port 0: any free port). `render` produces
  // the body of each GET /metrics.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen, std::function<std::string()> render);
  ~MetricsHttpServer();

  int port() const { return port_; }

 private:
  MetricsHttpServer(int fd, int port, std::function<std::string()> render)
      : fd_(fd), port_(port), render_(std::move(render)) {}
  void Loop();
  void Serve(int client);

  const int fd_;
  const int port_;
  const std::function<std::string()> render_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace berth::server

#endif  // BERTH_SERVER_METRICS_HTTP_H_
