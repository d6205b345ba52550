// inference.GRPCInferenceService (the Open Inference Protocol over gRPC) onto the inference
// facade: the protocol's rules are server/oip/protocol.h's, its messages server/oip/
// grpc_convert.h's; what touches a model runs on the request pool.
#include "core/util/status_macros.h"
#include "server/oip/grpc_convert.h"
#include "server/oip/protocol.h"
#include "server/services.h"
#include "server/status.h"

namespace berth::server {

grpc::ServerUnaryReactor* OipServiceImpl::ServerLive(grpc::CallbackServerContext* context,
                                                     const inference::ServerLiveRequest*,
                                                     inference::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishWith(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OipServiceImpl::ServerReady(grpc::CallbackServerContext* context,
                                                      const inference::ServerReadyRequest*,
                                                      inference::ServerReadyResponse* response) {
  response->set_ready(!ctx_.draining->load());
  return FinishWith(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OipServiceImpl::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name(oip::kPlatform);
  response->set_version(version_);
  for (const std::string& e : oip::kExtensions) response->add_extensions(e);
  return FinishWith(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OipServiceImpl::ModelReady(grpc::CallbackServerContext* context,
                                                     const inference::ModelReadyRequest* request,
                                                     inference::ModelReadyResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify, request->name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  return RunOnPool(context, ctx_.pool, [this, request, response] {
    response->set_ready(
        ctx_.inference->Describe(oip::SelectorOf(request->name(), request->version())).ok());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* OipServiceImpl::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify, request->name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  return RunOnPool(context, ctx_.pool, [this, request, response] {
    ASSIGN_OR_RETURN(service::ModelInfo info, ctx_.inference->Describe(oip::SelectorOf(
                                                  request->name(), request->version())));
    oip::ToProto(oip::MetadataOf(info), response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* OipServiceImpl::ModelConfig(grpc::CallbackServerContext* context,
                                                      const inference::ModelConfigRequest* request,
                                                      inference::ModelConfigResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify, request->name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  return RunOnPool(context, ctx_.pool, [this, request, response] {
    ASSIGN_OR_RETURN(service::ModelInfo info, ctx_.inference->Describe(oip::SelectorOf(
                                                  request->name(), request->version())));
    oip::ToProto(oip::ConfigOf(info, ctx_.inference->limits().max_texts),
                 response->mutable_config());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* OipServiceImpl::ModelStatistics(
    grpc::CallbackServerContext* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify, request->name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  return RunOnPool(context, ctx_.pool, [this, request, response] {
    ASSIGN_OR_RETURN(service::ModelStatistics stats, ctx_.inference->Statistics(oip::SelectorOf(
                                                         request->name(), request->version())));
    oip::ToProto(stats, response->add_model_stats());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* OipServiceImpl::ModelInfer(grpc::CallbackServerContext* context,
                                                     const inference::ModelInferRequest* request,
                                                     inference::ModelInferResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify, request->model_name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  return RunOnPool(context, ctx_.pool, [this, request, response, call = CallOf(context)] {
    ASSIGN_OR_RETURN(std::vector<oip::InputTensor> inputs, oip::InputsOf(*request));
    ASSIGN_OR_RETURN(
        service::ClassifyRequest classify,
        oip::ClassifyRequestOf(oip::SelectorOf(request->model_name(), request->model_version()),
                               std::move(inputs), oip::RequestedNames(*request)));
    ASSIGN_OR_RETURN(service::ClassifyReply reply, ctx_.inference->Classify(classify, call));
    ASSIGN_OR_RETURN(std::vector<oip::OutputTensor> outputs,
                     oip::OutputsOf(reply, oip::RequestedNames(*request)));
    oip::ToProto(reply, request->id(), outputs, response);
    return absl::OkStatus();
  });
}

}  // namespace berth::server
