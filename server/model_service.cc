// berth.v1.ModelService: the registry of fine-tuned model versions and their aliases.
#include <string>

#include "absl/strings/str_cat.h"
#include "core/service/base_model.h"
#include "core/util/files.h"
#include "core/util/log.h"
#include "core/util/status_macros.h"
#include "server/convert.h"
#include "server/services.h"
#include "server/status.h"

namespace berth::server {
namespace {

std::string ReadConfig(const store::Store& store, const store::ModelRecord& m) {
  auto text = ReadFileToString(JoinPath(store.data_dir(), JoinPath(m.path, "config.json")));
  return text.ok() ? *text : "";
}

}  // namespace

grpc::ServerUnaryReactor* ModelServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                       const v1::ListModelsRequest* /*request*/,
                                                       v1::ListModelsResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify, "");
  if (!caller.ok()) return FinishWith(context, caller.status());
  auto models = ctx_.store->ListModels();
  if (models.ok()) {
    for (const store::ModelRecord& m : *models) {
      // A token limited to a model prefix sees only those models.
      if (*caller && !Authorize(**caller, Permission::kClassify, m.name).ok()) continue;
      ToProto(m, "", response->add_models());
    }
  }
  return FinishWith(context, models.status());
}

grpc::ServerUnaryReactor* ModelServiceImpl::GetModel(grpc::CallbackServerContext* context,
                                                     const v1::GetModelRequest* request,
                                                     v1::ModelVersion* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify,
                            request->model().substr(0, request->model().find_first_of(":@")));
  if (!caller.ok()) return FinishWith(context, caller.status());
  auto ref =
      service::ParseModelRef(request->model(), request->version(), request->alias(), "model");
  if (!ref.ok()) return FinishWith(context, ref.status());
  auto m = ctx_.store->GetModel(ref->name, ref->version, ref->alias);
  if (m.ok()) ToProto(*m, ReadConfig(*ctx_.store, *m), response);
  return FinishWith(context, m.status());
}

grpc::ServerUnaryReactor* ModelServiceImpl::DeleteModel(grpc::CallbackServerContext* context,
                                                        const v1::DeleteModelRequest* request,
                                                        v1::DeleteModelResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kAdmin, request->name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  absl::Status s = store::ValidateName(request->name(), "name");
  if (s.ok() && request->version() < 0)
    s = absl::InvalidArgumentError("version: must not be negative");
  if (!s.ok()) return FinishWith(context, s);
  // Evicting joins the model's batcher thread and removing files takes time: on the pool.
  return RunOnPool(context, ctx_.pool, [this, request, response]() -> absl::Status {
    std::vector<store::ModelRecord> victims;
    ASSIGN_OR_RETURN(std::vector<store::ModelRecord> all, ctx_.store->ListModels());
    for (const store::ModelRecord& m : all) {
      if (m.name == request->name() &&
          (request->version() == 0 || m.version == request->version())) {
        victims.push_back(m);
      }
    }
    RETURN_IF_ERROR(ctx_.store->DeleteModel(
        request->name(), request->version(), [request](const std::string& base) {
          return service::BaseModelUses(base, request->name(), request->version());
        }));
    ctx_.registry->Evict(request->name(), request->version());
    for (const store::ModelRecord& m : victims) {
      response->add_deleted_versions(m.version);
      // The rows are gone, so nothing can find these files any more; a failure leaves garbage,
      // never a dangling version.
      LogIfError(RemoveAll(JoinPath(ctx_.store->data_dir(), m.path)), "model.cleanup_failed",
                 {{"model", m.name}, {"version", std::to_string(m.version)}});
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ModelServiceImpl::SetAlias(grpc::CallbackServerContext* context,
                                                     const v1::SetAliasRequest* request,
                                                     v1::SetAliasResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kAdmin, request->name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  absl::Status s = store::ValidateName(request->name(), "name");
  if (s.ok()) s = store::ValidateName(request->alias(), "alias");
  if (s.ok() && request->version() <= 0)
    s = absl::InvalidArgumentError("version: must be a positive version number");
  if (!s.ok()) return FinishWith(context, s);
  auto previous = ctx_.store->GetModel(request->name(), 0, request->alias());
  s = ctx_.store->SetAlias(request->name(), request->alias(), request->version());
  if (s.ok()) response->set_previous_version(previous.ok() ? previous->version : 0);
  return FinishWith(context, s);
}

}  // namespace berth::server
