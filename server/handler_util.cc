// Small helpers shared by the unary handlers.
#include "absl/strings/str_cat.h"
#include "server/metrics.h"
#include "server/services.h"
#include "server/status.h"

namespace berth::server {

bool TryAcquire(std::atomic<int>* counter, int limit) {
  int now = counter->load();
  while (now < limit) {
    if (counter->compare_exchange_weak(now, now + 1)) return true;
  }
  return false;
}

absl::Status AcquireUploadSlot(const ServiceContext& ctx) {
  if (TryAcquire(&ctx.live->uploads, ctx.limits.max_concurrent_uploads)) return absl::OkStatus();
  ctx.metrics->RecordRefusal("concurrent_uploads");
  return absl::ResourceExhaustedError(absl::StrCat("this server takes at most ",
                                                   ctx.limits.max_concurrent_uploads,
                                                   " uploads at once; retry later"));
}

absl::Status AcquireStreamSlot(const ServiceContext& ctx) {
  if (TryAcquire(&ctx.live->streams, ctx.limits.max_streams)) return absl::OkStatus();
  ctx.metrics->RecordRefusal("streams");
  return absl::ResourceExhaustedError(absl::StrCat(
      "this server keeps at most ", ctx.limits.max_streams, " streams open; retry later"));
}

absl::Status AppendUploadChunk(const ServiceContext& ctx, const std::string& chunk,
                               absl::string_view what, std::string* buffer) {
  constexpr int64_t kMaxChunkBytes = 4 << 20;
  if (static_cast<int64_t>(chunk.size()) > kMaxChunkBytes) {
    return absl::InvalidArgumentError("data: a chunk is larger than 4 MiB");
  }
  if (static_cast<int64_t>(buffer->size() + chunk.size()) > ctx.limits.max_upload_bytes) {
    ctx.metrics->RecordRefusal("upload_bytes");
    return absl::InvalidArgumentError(absl::StrCat("data: ", what,
                                                   " is larger than the server's limit of ",
                                                   ctx.limits.max_upload_bytes, " bytes"));
  }
  buffer->append(chunk);
  return absl::OkStatus();
}

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
  if (!caller || caller->role == Role::kAdmin || caller->id == created_by) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("token '", caller->id,
                   "' may only see its own jobs (this one was submitted by another token)"));
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
