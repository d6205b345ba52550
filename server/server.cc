// Wiring of the Berth server.
#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace berth::server {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  std::unique_ptr<Server> s(new Server());
  ASSIGN_OR_RETURN(s->store_, store::Store::Open(options.data_dir));
  s->registry_ = std::make_unique<service::ModelRegistry>(s->store_.get(), options.models);
  s->runner_ = std::make_unique<service::JobRunner>(s->store_.get(), options.training);
  s->pool_ = std::make_unique<ThreadPool>(options.request_threads, options.max_queued_requests);
  ServiceContext ctx{s->store_.get(), s->runner_.get(), s->registry_.get(), s->pool_.get(), options.limits};
  s->training_ = std::make_unique<TrainingServiceImpl>(ctx);
  s->inference_ = std::make_unique<InferenceServiceImpl>(ctx);
  s->models_ = std::make_unique<ModelServiceImpl>(ctx);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &s->port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  builder.RegisterService(s->training_.get());
  builder.RegisterService(s->inference_.get());
  builder.RegisterService(s->models_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  RETURN_IF_ERROR(s->runner_->Start());
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  return s;
}

void Server::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  server_->GetHealthCheckService()->SetServingStatus(false);
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  pool_.reset();  // runs what is still queued
  runner_->Stop();
}

Server::~Server() {
  if (server_ != nullptr) Shutdown();
}

}  // namespace berth::server
