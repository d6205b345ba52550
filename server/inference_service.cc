// berth.v1.InferenceService: classification and tokenization, over the inference facade.
#include "core/service/model_ref.h"
#include "core/util/status_macros.h"
#include "server/convert.h"
#include "server/services.h"
#include "server/status.h"

namespace berth::server {
namespace {

// One request at a time per stream: read, answer on the pool (Classify or Embed), write, read
// the next.
template <typename Request, typename Response>
class StreamReactor final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  StreamReactor(grpc::CallbackServerContext* context, const ServiceContext& ctx)
      : context_(context), ctx_(ctx) {
    auto caller = CheckAccess(ctx_, *context_, Permission::kClassify, "");
    absl::StatusOr<service::Slots::Held> slot =
        caller.ok() ? ctx_.inference->OpenStream() : caller.status();
    if (!slot.ok()) {
      Finish(ToGrpcStatus(slot.status()));
      return;
    }
    caller_ = *caller;
    slot_ = std::move(*slot);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::OK);  // the client closed its side (or went away)
    if (caller_) {
      absl::Status s =
          Authorize(*caller_, Permission::kClassify, service::ModelRefName(request_.model()));
      if (!s.ok()) return Finish(ToGrpcStatus(s));
    }
    if (!ctx_.pool->TrySubmit([this] { Answer(); }))
      Finish(ToGrpcStatus(absl::ResourceExhaustedError("the server's request queue is full")));
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(ToGrpcStatus(absl::CancelledError("the client went away")));
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  void Answer() {
    auto reply = Call(FromProto(request_));
    if (!reply.ok()) return Finish(ToGrpcStatus(reply.status()));
    ToProto(*reply, &response_);
    StartWrite(&response_);
  }
  absl::StatusOr<service::ClassifyReply> Call(const service::ClassifyRequest& r) {
    return ctx_.inference->Classify(r, CallOf(context_));
  }
  absl::StatusOr<service::EmbedReply> Call(const service::EmbedRequest& r) {
    return ctx_.inference->Embed(r, CallOf(context_));
  }
  using grpc::ServerBidiReactor<Request, Response>::Finish;
  using grpc::ServerBidiReactor<Request, Response>::StartRead;
  using grpc::ServerBidiReactor<Request, Response>::StartWrite;

  grpc::CallbackServerContext* const context_;
  const ServiceContext ctx_;
  service::Slots::Held slot_;  // one of the server's streams
  std::optional<Principal> caller_;
  Request request_;
  Response response_;
};

}  // namespace

grpc::ServerUnaryReactor* InferenceServiceImpl::Classify(grpc::CallbackServerContext* context,
                                                         const v1::ClassifyRequest* request,
                                                         v1::ClassifyResponse* response) {
  auto caller =
      CheckAccess(ctx_, *context, Permission::kClassify, service::ModelRefName(request->model()));
  if (!caller.ok()) return FinishWith(context, caller.status());
  return RunOnPool(context, ctx_.pool, [this, request, response, call = CallOf(context)] {
    ASSIGN_OR_RETURN(service::ClassifyReply reply,
                     ctx_.inference->Classify(FromProto(*request), call));
    ToProto(reply, response);
    return absl::OkStatus();
  });
}

grpc::ServerBidiReactor<v1::ClassifyRequest, v1::ClassifyResponse>*
InferenceServiceImpl::ClassifyStream(grpc::CallbackServerContext* context) {
  return new StreamReactor<v1::ClassifyRequest, v1::ClassifyResponse>(context, ctx_);
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Tokenize(grpc::CallbackServerContext* context,
                                                         const v1::TokenizeRequest* request,
                                                         v1::TokenizeResponse* response) {
  auto caller =
      CheckAccess(ctx_, *context, Permission::kClassify, service::ModelRefName(request->model()));
  if (!caller.ok()) return FinishWith(context, caller.status());
  return RunOnPool(context, ctx_.pool, [this, request, response] {
    ASSIGN_OR_RETURN(service::TokenizeReply reply, ctx_.inference->Tokenize(FromProto(*request)));
    ToProto(reply, response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Embed(grpc::CallbackServerContext* context,
                                                      const v1::EmbedRequest* request,
                                                      v1::EmbedResponse* response) {
  auto caller =
      CheckAccess(ctx_, *context, Permission::kClassify, service::ModelRefName(request->model()));
  if (!caller.ok()) return FinishWith(context, caller.status());
  return RunOnPool(context, ctx_.pool, [this, request, response, call = CallOf(context)] {
    ASSIGN_OR_RETURN(service::EmbedReply reply, ctx_.inference->Embed(FromProto(*request), call));
    ToProto(reply, response);
    return absl::OkStatus();
  });
}

grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse>* InferenceServiceImpl::EmbedStream(
    grpc::CallbackServerContext* context) {
  return new StreamReactor<v1::EmbedRequest, v1::EmbedResponse>(context, ctx_);
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Rerank(grpc::CallbackServerContext* context,
                                                       const v1::RerankRequest* request,
                                                       v1::RerankResponse* response) {
  auto caller =
      CheckAccess(ctx_, *context, Permission::kClassify, service::ModelRefName(request->model()));
  if (!caller.ok()) return FinishWith(context, caller.status());
  return RunOnPool(context, ctx_.pool, [this, request, response, call = CallOf(context)] {
    ASSIGN_OR_RETURN(service::RerankReply reply, ctx_.inference->Rerank(FromProto(*request), call));
    ToProto(reply, response);
    return absl::OkStatus();
  });
}

}  // namespace berth::server
