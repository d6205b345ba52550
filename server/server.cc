// Wiring of the Berth server.
#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/server_interceptor.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/service/model_ref.h"
#include "core/store/database.h"
#include "core/util/files.h"
#include "core/util/log.h"
#include "core/util/status_macros.h"
#include "server/http/routes.h"

namespace berth::server {
namespace {

const char* const kServices[] = {"berth.v1.TrainingService", "berth.v1.InferenceService",
                                 "berth.v1.ModelService"};

// The health service's name for a preloaded model: "model:" and the --preload spec.
std::string PreloadHealthName(const std::string& spec) { return "model:" + spec; }

// Sees every call's end: its status, duration and the client's x-request-id, if any.
class CallInterceptor final : public grpc::experimental::Interceptor {
 public:
  using Callback =
      std::function<void(const std::string&, const grpc::Status&, double, const std::string&)>;
  CallInterceptor(const Callback* on_end, std::string method)
      : on_end_(on_end), method_(std::move(method)), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      auto* md = methods->GetRecvInitialMetadata();
      auto it = md->find("x-request-id");
      if (it != md->end())
        request_id_ = std::string(it->second.data(), std::min<size_t>(it->second.size(), 128));
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      (*on_end_)(method_, methods->GetSendStatus(), seconds, request_id_);
    }
    methods->Proceed();
  }

 private:
  const Callback* const on_end_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
  std::string request_id_;
};

}  // namespace

class Server::CallInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallInterceptorFactory(Server* server)
      : on_end_([server](const std::string& method, const grpc::Status& status, double seconds,
                         const std::string& request_id) {
          server->OnCallEnd(method, status, seconds, request_id);
        }) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new CallInterceptor(&on_end_, info->method());
  }

 private:
  const CallInterceptor::Callback on_end_;
};

void Server::OnCallEnd(const std::string& method, const grpc::Status& status, double seconds,
                       const std::string& request_id) {
  metrics_->RecordRequest(method, status.error_code(), seconds);
  if (draining_) (status.ok() ? drained_ok_ : drained_failed_)++;
  // Client mistakes and normal refusals are the caller's to see; log what an operator should.
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::CANCELLED:
      return;
    default:
      break;
  }
  LogEvent("rpc.error", {{"method", method},
                         {"code", std::to_string(status.error_code())},
                         {"message", status.error_message()},
                         {"request_id", request_id},
                         {"seconds", absl::StrCat(seconds)}});
}

static bool IsLoopback(const std::string& listen) {
  const std::string host = listen.substr(0, listen.rfind(':'));
  return host == "localhost" || host == "[::1]" || host == "::1" || host.rfind("127.", 0) == 0;
}

// Plaintext, TLS, or mutual TLS. gRPC watches the staged copies (see TlsFiles) every second.
static absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeCredentials(
    const ServerOptions& o, std::unique_ptr<TlsFiles>* tls) {
  if (o.tls_cert.empty() && o.tls_key.empty()) {
    if (!o.tls_client_ca.empty())
      return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
    return grpc::InsecureServerCredentials();
  }
  if (o.tls_cert.empty() || o.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  ASSIGN_OR_RETURN(
      *tls, TlsFiles::Create(o.tls_cert, o.tls_key, o.tls_client_ca, JoinPath(o.data_dir, "tls")));
  const TlsFiles& f = **tls;
  auto provider = o.tls_client_ca.empty()
                      ? std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                            f.key_path(), f.cert_path(), 1)
                      : std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                            f.key_path(), f.cert_path(), f.client_ca_path(), 1);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (o.tls_client_ca.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

// Authentication, or a reason to refuse serving without it; the role.
static absl::Status CheckSecurity(const ServerOptions& options) {
  if (options.auth_tokens_file.empty() && !IsLoopback(options.listen) &&
      options.tls_client_ca.empty()) {
    if (!options.allow_insecure) {
      return absl::FailedPreconditionError(
          absl::StrCat("refusing to serve ", options.listen,
                       " without authentication: give --auth-tokens FILE or --tls-client-ca FILE "
                       "(mTLS), or --allow-insecure if "
                       "the network is trusted"));
    }
    LogEvent("server.insecure",
             {{"listen", options.listen},
              {"warning",
               "serving a non-loopback address with no authentication: anyone who "
               "can reach it may train, read and delete models"}});
  }
  if (options.role != "all" && options.role != "serve" && options.role != "train") {
    return absl::InvalidArgumentError(
        absl::StrCat("--role must be all, serve or train, not '", options.role, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  RETURN_IF_ERROR(CheckSecurity(options));
  std::unique_ptr<Server> s(new Server());
  s->options_ = options;
  if (!options.auth_tokens_file.empty()) {
    ASSIGN_OR_RETURN(s->auth_, TokenAuthenticator::Load(options.auth_tokens_file));
  }
  RETURN_IF_ERROR(s->Assemble());
  std::vector<std::pair<std::string, service::ModelRef>> preload;
  for (const std::string& spec : options.preload) {
    ASSIGN_OR_RETURN(service::ModelRef ref, service::ParseModelRef(spec, 0, "", "--preload"));
    preload.emplace_back(spec, ref);
  }
  // Recovery (jobs a dead process left RUNNING go back to the queue) happens before the port
  // opens, so nothing is served from a half-recovered state.
  RETURN_IF_ERROR(s->runner_->Start());
  RETURN_IF_ERROR(s->StartRpc());
  RETURN_IF_ERROR(s->StartHttp());
  s->StartPreloads(std::move(preload));
  if (s->options_.training.watch_poll.count() > 0) s->StartRegistrySyncer();
  if (s->tls_ != nullptr && options.tls_reload_seconds > 0) s->StartTlsReloader();
  LogEvent(
      "server.start",
      {{"auth", s->auth_ ? absl::StrCat(s->auth_->size(), " tokens") : "off"},
       {"tls", options.tls_cert.empty()        ? "off"
               : options.tls_client_ca.empty() ? "on"
                                               : "mutual"},
       {"listen", absl::StrCat(options.listen.substr(0, options.listen.rfind(':')), ":", s->port_)},
       {"metrics_port", std::to_string(s->metrics_port())},
       {"http_port", std::to_string(s->http_port())},
       {"data_dir", options.data_dir},
       {"store", s->store_->backend()},
       {"role", options.role}});
  return s;
}

absl::Status Server::Assemble() {
  const ServerOptions& options = options_;
  ASSIGN_OR_RETURN(metrics_, Metrics::Create(options.metrics_listen));
  ASSIGN_OR_RETURN(store_, store::Store::Open(options.data_dir, options.store));
  Metrics* metrics = metrics_.get();
  store_->set_statement_observer([metrics](double seconds, const absl::Status& status) {
    metrics->RecordStatement(seconds, status.ok());
  });
  service::RegistryOptions models = options.models;
  models.batch_observer = [metrics](const std::string&, int64_t) {
    return metrics->MakeBatchObserver();
  };
  models.on_load = [metrics](double seconds, bool ok) { metrics->RecordModelLoad(seconds, ok); };
  registry_ = std::make_unique<service::ModelRegistry>(store_.get(), models);
  jobs::JobRunnerOptions& training = options_.training;
  training.claim_jobs = options.role != "serve";
  // Jobs watched here may run in another process: their watchers hear of changes by reading
  // the store (a job trained here also tells them at once).
  if (options.role != "all" || store_->backend() != "sqlite")
    training.watch_poll = std::chrono::milliseconds(500);
  runner_ = std::make_unique<jobs::JobRunner>(store_.get(), training);
  runner_->set_state_observer([metrics](const store::JobRecord& job) {
    metrics->OnJobState(job);
    LogFields f = {{"job_id", job.id},
                   {"state", std::string(store::JobStateName(job.state))},
                   {"model", job.model_name},
                   {"base_model", job.base_model}};
    if (!job.request_id.empty()) f.emplace_back("request_id", job.request_id);
    if (job.model_version > 0) f.emplace_back("version", std::to_string(job.model_version));
    if (!job.error.empty()) f.emplace_back("error", job.error);
    LogEvent("job.state", f);
  });
  runner_->set_progress_observer([metrics](const std::string& job_id, const data::Progress& p) {
    metrics->OnProgress(job_id, p);
  });
  runner_->set_lease_observer(
      [metrics](const std::string& event) { metrics->RecordLeaseEvent(event); });
  importer_ = std::make_unique<service::ModelImporter>(store_.get(), &runner_->base_models());
  importer_->SweepStaging(/*shared=*/training.watch_poll.count() > 0);
  streams_ = service::Slots::Streams(options.limits.max_streams, metrics);
  uploads_ = service::Slots::Uploads(options.limits.max_concurrent_uploads, metrics);
  inference_ = std::make_unique<service::Inference>(registry_.get(), options.limits, streams_.get(),
                                                    metrics);
  models_ =
      std::make_unique<service::Models>(store_.get(), registry_.get(), importer_.get(),
                                        options.limits, streams_.get(), uploads_.get(), metrics);
  training_ = std::make_unique<jobs::Training>(store_.get(), runner_.get(), options.limits,
                                               streams_.get(), uploads_.get(), metrics);
  pool_ = std::make_unique<ThreadPool>(options.request_threads, options.max_queued_requests);
  const ServiceContext ctx{inference_.get(), models_.get(), training_.get(),
                           pool_.get(),      &draining_,    auth_.get()};
  training_service_ = std::make_unique<TrainingServiceImpl>(ctx);
  inference_service_ = std::make_unique<InferenceServiceImpl>(ctx);
  model_service_ = std::make_unique<ModelServiceImpl>(ctx);
  oip_service_ = std::make_unique<OipServiceImpl>(ctx, BERTH_VERSION_STRING);
  metrics->SetSources(store_.get(), registry_.get());
  return absl::OkStatus();
}

absl::Status Server::StartRpc() {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   MakeCredentials(options_, &tls_));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, credentials, &port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
  builder.RegisterService(training_service_.get());
  builder.RegisterService(inference_service_.get());
  builder.RegisterService(model_service_.get());
  builder.RegisterService(oip_service_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<CallInterceptorFactory>(this));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen));
  }
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(true);
  for (const char* name : kServices) health->SetServingStatus(name, true);
  for (const std::string& spec : options_.preload)
    health->SetServingStatus(PreloadHealthName(spec), false);
  return absl::OkStatus();
}

void Server::StartPreloads(std::vector<std::pair<std::string, service::ModelRef>> preload) {
  if (preload.empty()) return;
  preloader_ = std::thread([this, preload = std::move(preload)] {
    for (const auto& [spec, ref] : preload) {
      const auto start = std::chrono::steady_clock::now();
      absl::StatusOr<service::ModelHandle> h = registry_->Acquire(ref);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      LogEvent(h.ok() ? "model.preloaded" : "model.preload_failed",
               {{"model", spec},
                {"seconds", absl::StrCat(seconds)},
                {"error", h.ok() ? "" : std::string(h.status().message())}});
      if (h.ok() && !draining_)
        server_->GetHealthCheckService()->SetServingStatus(PreloadHealthName(spec), true);
    }
  });
}

// Other replicas delete models and move aliases in the store; an alias is read at every call,
// but a loaded version another replica deleted would stay in memory until evicted. PostgreSQL
// tells of changes at once (LISTEN/NOTIFY); the reads every second are the fallback for what a
// broken listener connection missed, and all there is elsewhere.
void Server::StartRegistrySyncer() {
  registry_syncer_ = std::thread([this, metrics = metrics_.get()] {
    std::unique_ptr<store::Listener> listener = store_->ListenRegistry();
    while (true) {
      if (listener != nullptr) {
        auto heard = listener->Wait(std::chrono::seconds(1));
        if (heard.ok()) {
          for (const std::string& change : *heard)
            metrics->RecordRegistryNotification(change.substr(0, change.find(' ')));
        }
      }
      {
        absl::MutexLock lock(&background_mu_);
        if (listener == nullptr) {
          background_mu_.AwaitWithTimeout(absl::Condition(&background_stop_), absl::Seconds(1));
        }
        if (background_stop_) return;
      }
      for (const auto& [name, version] : registry_->DropDeleted()) {
        metrics->RecordRegistryChange("deleted");
        LogEvent("model.unloaded",
                 {{"model", absl::StrCat(name, ":", version)}, {"reason", "deleted"}});
      }
    }
  });
}

void Server::StartTlsReloader() {
  tls_reloader_ = std::thread([this] {
    absl::MutexLock lock(&background_mu_);
    const absl::Duration every = absl::Seconds(options_.tls_reload_seconds);
    while (!background_mu_.AwaitWithTimeout(absl::Condition(&background_stop_), every)) {
      (void)ReloadTls();  // logs its outcome; on an error the old certificates stay
    }
  });
}

int Server::metrics_port() const { return metrics_ ? metrics_->port() : 0; }
int Server::http_port() const { return http_ ? http_->port() : 0; }

absl::Status Server::StartHttp() {
  if (options_.http_listen.empty()) return absl::OkStatus();
  http::HttpContext ctx{inference_.get(),
                        models_.get(),
                        training_.get(),
                        auth_.get(),
                        options_.default_model,
                        BERTH_VERSION_STRING,
                        [this] { return !draining_.load(); },
                        options_.limits.max_upload_bytes,
                        std::max(1, options_.request_threads / 4)};
  http::HttpServerOptions o;
  o.listen = options_.http_listen;
  o.threads = options_.http_threads;
  o.max_body_bytes = options_.max_message_bytes;
  o.header_timeout = options_.http_header_timeout;
  o.read_timeout = options_.http_read_timeout;
  o.idle_timeout = options_.http_idle_timeout;
  if (tls_ != nullptr) {
    o.tls_cert = tls_->cert_path();
    o.tls_key = tls_->key_path();
    o.tls_client_ca = tls_->client_ca_path();
  }
  Metrics* metrics = metrics_.get();
  ASSIGN_OR_RETURN(
      http_, http::HttpServer::Start(
                 o, http::MakeRouter(ctx), pool_.get(), [metrics](const http::RequestRecord& r) {
                   metrics->RecordHttpRequest(r.route, r.status, r.seconds);
                   // The access line: never the Authorization header.
                   LogEvent("http.request", {{"method", r.method},
                                             {"route", r.route},
                                             {"target", r.target},
                                             {"status", std::to_string(r.status)},
                                             {"seconds", absl::StrCat(r.seconds)},
                                             {"bytes_in", std::to_string(r.bytes_in)},
                                             {"bytes_out", std::to_string(r.bytes_out)},
                                             {"peer", r.peer},
                                             {"request_id", r.request_id}});
                 }));
  return absl::OkStatus();
}

absl::Status Server::ReloadAuth() {
  if (auth_ == nullptr)
    return absl::FailedPreconditionError("authentication is off (no --auth-tokens)");
  absl::Status s = auth_->Reload();
  LogEvent("auth.reload", {{"ok", s.ok() ? "true" : "false"},
                           {"tokens", std::to_string(auth_->size())},
                           {"error", std::string(s.message())}});
  return s;
}

absl::Status Server::ReloadTls() {
  if (tls_ == nullptr) return absl::FailedPreconditionError("TLS is off (no --tls-cert)");
  const int before = tls_->generation();
  absl::Status s = tls_->Reload();
  if (s.ok() && http_ != nullptr) s = http_->ReloadTls();
  LogEvent("tls.reload", {{"ok", s.ok() ? "true" : "false"},
                          {"changed", tls_->generation() != before ? "true" : "false"},
                          {"error", std::string(s.message())}});
  return s;
}

void Server::Shutdown(std::optional<std::chrono::milliseconds> grace) {
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&background_mu_);
    background_stop_ = true;  // the threads' Await sees it when the lock is released
  }
  if (tls_reloader_.joinable()) tls_reloader_.join();
  if (registry_syncer_.joinable()) registry_syncer_.join();
  if (preloader_.joinable()) preloader_.join();  // a load in progress finishes first
  const auto started = std::chrono::steady_clock::now();
  if (server_ != nullptr) {
    // Calls that end from here on count as drained; set before the log line, which says so.
    draining_ = true;
    LogEvent(
        "server.draining",
        {{"grace_seconds", absl::StrCat(grace.value_or(options_.drain_timeout).count() / 1000.0)}});
    server_->GetHealthCheckService()->SetServingStatus(false);
    runner_->NotifyAll();  // open WatchJob streams end now (UNAVAILABLE) instead of at the deadline
    if (http_ != nullptr) http_->BeginDrain();  // 503 to new requests; those in flight finish
    server_->Shutdown(std::chrono::system_clock::now() + grace.value_or(options_.drain_timeout));
  }
  if (http_ != nullptr) {
    const auto left = grace.value_or(options_.drain_timeout) -
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - started);
    http_->Stop(std::max(left, std::chrono::milliseconds(0)));
  }
  pool_.reset();  // runs what is still queued
  if (runner_) runner_->Stop();
  if (metrics_) metrics_->SetSources(nullptr, nullptr);
  if (server_ == nullptr) return;  // never served
  LogEvent(
      "server.stopped",
      {{"drain_seconds",
        absl::StrCat(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count())},
       {"drained_ok", std::to_string(drained_ok_)},
       {"drained_failed", std::to_string(drained_failed_)}});
}

Server::~Server() { Shutdown(); }

}  // namespace berth::server
