// A running Berth server: the store, the training workers, the model registry, the request
// pool and the gRPC services (with health checking and reflection) on one listening port.
#ifndef BERTH_SERVER_SERVER_H_
#define BERTH_SERVER_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/jobs/job_runner.h"
#include "core/jobs/training.h"
#include "core/service/model_registry.h"
#include "server/http/http_server.h"
#include "server/metrics.h"
#include "server/services.h"
#include "server/tls_files.h"

namespace grpc {
class Server;
}

namespace berth::server {

struct ServerOptions {
  std::string data_dir = "./berth-data";
  // The database: "" for SQLite at <data_dir>/berth.db, "sqlite:PATH", or a PostgreSQL URL
  // (core/store/store.h). Datasets and models stay under data_dir either way.
  std::string store;
  // "all": serve and train (one process, the default); "serve": answer every RPC but never
  // claim jobs (stateless replicas over a shared database); "train": claim and train jobs.
  std::string role = "all";
  std::string listen = "127.0.0.1:50051";         // port 0: any free port (see Server::port)
  int request_threads = 16;                       // pool for blocking request work
  int max_queued_requests = 1024;                 // beyond this, RESOURCE_EXHAUSTED
  int64_t max_message_bytes = 16 << 20;           // gRPC messages, HTTP request bodies
  std::string metrics_listen = "127.0.0.1:9090";  // Prometheus /metrics; "" disables it
  // HTTP/JSON (TEI, the Hub Inference API and the Open Inference Protocol's routes; see
  // server/http/routes.h): "" disables it; port 0: any free port (see Server::http_port).
  std::string http_listen = "127.0.0.1:8080";
  int http_threads = 2;  // network threads; request work runs on the request pool
  // A request's line and headers must arrive within the first, its body within the second; an
  // idle keep-alive connection is closed after the third. (Its body limit is
  // max_message_bytes, the same as a gRPC message's.)
  std::chrono::milliseconds http_header_timeout{10000}, http_read_timeout{60000},
      http_idle_timeout{75000};
  // The model of the HTTP routes that name none (/predict, /info, POST /): "NAME",
  // "NAME:VERSION" or "NAME@ALIAS"; "": those routes answer 404.
  std::string default_model;
  std::chrono::milliseconds drain_timeout{30000};  // in-flight calls get this long at shutdown
  std::string auth_tokens_file;  // API tokens (see server/auth.h); "": no authentication
  // TLS: PEM files. With tls_client_ca, clients must present a certificate it signed (mTLS).
  // They are re-read by ReloadTls (SIGHUP) and, when tls_reload_seconds > 0, that often;
  // connections already open are kept. Their validated copies live in <data_dir>/tls.
  std::string tls_cert, tls_key, tls_client_ca;
  unsigned int tls_reload_seconds = 0;
  bool allow_insecure = false;  // serve a non-loopback address without authentication
  service::Limits limits;
  jobs::JobRunnerOptions training;
  service::RegistryOptions models;
  // Models to load at start ("NAME", "NAME:VERSION" or "NAME@ALIAS"). Each is loaded in the
  // background once the port is open; the health service reports "model:SPEC" NOT_SERVING
  // until it can answer, then SERVING (a load that fails stays NOT_SERVING and is logged).
  std::vector<std::string> preload;
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();

  int port() const { return port_; }
  int http_port() const;  // 0 when HTTP is off
  int metrics_port() const;
  // Re-reads the API token file (SIGHUP); the old tokens stay in force if it is invalid.
  absl::Status ReloadAuth();
  // Re-reads the TLS files (SIGHUP): new connections get them within about a second; invalid
  // files (unparsable, a key that does not match its certificate) are refused and the old ones
  // stay in force.
  absl::Status ReloadTls();
  // Drains: health goes NOT_SERVING, new calls are refused (UNAVAILABLE), calls in flight get
  // until `grace` (default: the drain timeout) to finish, a running training job writes a
  // checkpoint and goes back to the queue.
  void Shutdown(std::optional<std::chrono::milliseconds> grace = std::nullopt);

  store::Store& store() { return *store_; }
  service::ModelRegistry& registry() { return *registry_; }
  // The facades every door calls (the gRPC services here; other doors in process).
  const service::Inference& inference() const { return *inference_; }
  const Metrics& metrics() const { return *metrics_; }

 private:
  Server() = default;
  // Start's steps, in order: the parts of core and the facades over them (everything the
  // services call), recovery and the job runner, the gRPC server, the background threads.
  absl::Status Assemble();
  absl::Status StartRpc();
  void StartPreloads(std::vector<std::pair<std::string, service::ModelRef>> preload);
  void StartRegistrySyncer();
  void StartTlsReloader();
  absl::Status StartHttp();
  void OnCallEnd(const std::string& method, const grpc::Status& status, double seconds,
                 const std::string& request_id);
  class CallInterceptorFactory;

  ServerOptions options_;
  std::unique_ptr<Metrics> metrics_;  // first in, last out: scrapes read the parts below
  std::unique_ptr<TokenAuthenticator> auth_;
  std::unique_ptr<TlsFiles> tls_;
  // Re-reads the TLS files every tls_reload_seconds (when set) until the server stops.
  std::thread tls_reloader_;
  // Over a shared store: drops loaded models that another replica deleted, every second.
  std::thread registry_syncer_;
  std::thread preloader_;
  absl::Mutex background_mu_;  // the two threads above wait on it for background_stop_
  bool background_stop_ ABSL_GUARDED_BY(background_mu_) = false;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<service::ModelRegistry> registry_;
  std::unique_ptr<jobs::JobRunner> runner_;
  std::unique_ptr<service::ModelImporter> importer_;  // over the store and runner_'s policy
  // What is held open across the service: streams (watch, classify, export) and uploads.
  std::unique_ptr<service::Slots> streams_, uploads_;
  // The facades the handlers call.
  std::unique_ptr<service::Inference> inference_;
  std::unique_ptr<service::Models> models_;
  std::unique_ptr<jobs::Training> training_;
  // Declared before the pool: its routes' work, queued on the pool, refers to it, so it goes
  // after the pool has run that work.
  std::unique_ptr<http::HttpServer> http_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<TrainingServiceImpl> training_service_;
  std::unique_ptr<InferenceServiceImpl> inference_service_;
  std::unique_ptr<ModelServiceImpl> model_service_;
  std::unique_ptr<OipServiceImpl> oip_service_;  // the Open Inference Protocol
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
  // Calls that ended after the drain began, by outcome (logged when the server stops).
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> drained_ok_{0}, drained_failed_{0};
};

}  // namespace berth::server

#endif  // BERTH_SERVER_SERVER_H_
