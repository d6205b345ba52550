// Small helpers shared by the unary handlers.
#include "server/services.h"
#include "server/status.h"

namespace berth::server {

grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* RunOnPool(grpc::CallbackServerContext* context, ThreadPool* pool,
                                    std::function<absl::Status()> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const bool queued = pool->TrySubmit([reactor, work = std::move(work)] { reactor->Finish(ToGrpcStatus(work())); });
  if (!queued) {
    reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 "the server's request queue is full; retry with backoff"));
  }
  return reactor;
}

}  // namespace berth::server
