// What the handlers share: access, the caller as the facades know it, and finishing calls.
#include "absl/strings/str_cat.h"
#include "server/services.h"
#include "server/status.h"

namespace berth::server {

absl::StatusOr<std::optional<Principal>> CheckAccess(const ServiceContext& ctx,
                                                     const grpc::CallbackServerContext& context,
                                                     Permission need, absl::string_view model) {
  if (ctx.auth == nullptr) return std::optional<Principal>();
  absl::StatusOr<Principal> p = ctx.auth->Authenticate(context);
  if (!p.ok()) return p.status();
  absl::Status s = Authorize(*p, need, model);
  if (!s.ok()) return s;
  return std::optional<Principal>(*p);
}

absl::Status CheckJobOwner(const std::optional<Principal>& caller, const std::string& created_by) {
  if (!caller || caller->role == Role::kAdmin || caller->role == Role::kRead ||
      caller->id == created_by)
    return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("token '", caller->id,
                   "' may only see its own jobs (this one was submitted by another token)"));
}

jobs::Submitter AsSubmitter(const std::optional<Principal>& caller) {
  jobs::Submitter who;
  if (!caller) return who;
  who.id = caller->id;
  who.sees_all_jobs = caller->role == Role::kAdmin || caller->role == Role::kRead;
  who.may_read_model = [p = *caller](const std::string& name) {
    return Authorize(p, Permission::kClassify, name);
  };
  who.may_see_job = [caller](const std::string& created_by) {
    return CheckJobOwner(caller, created_by);
  };
  return who;
}

bool MaySee(const std::optional<Principal>& caller, const std::string& name) {
  return !caller || Authorize(*caller, Permission::kClassify, name).ok();
}

service::CallContext CallOf(grpc::CallbackServerContext* context) {
  service::CallContext call;
  const auto deadline = context->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    call.deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                             deadline - std::chrono::system_clock::now());
  }
  // The batcher drops the call's texts before their forward pass once the client has gone.
  call.cancelled = [context] { return context->IsCancelled(); };
  return call;
}

grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* context,
                                     const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* RunOnPool(grpc::CallbackServerContext* context, ThreadPool* pool,
                                    std::function<absl::Status()> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const bool queued =
      pool->TrySubmit([reactor, work = std::move(work)] { reactor->Finish(ToGrpcStatus(work())); });
  if (!queued) {
    reactor->Finish(ToGrpcStatus(
        absl::ResourceExhaustedError("the server's request queue is full; retry with backoff")));
  }
  return reactor;
}

}  // namespace berth::server
