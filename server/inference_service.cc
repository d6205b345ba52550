// berth.v1.InferenceService: classification and tokenization against registered models.
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "server/convert.h"
#include "server/metrics.h"
#include "server/services.h"
#include "server/status.h"

namespace berth::server {
namespace {

// The model name of a "NAME[:VERSION|@ALIAS]" reference, for the token's prefix check.
std::string ModelName(const std::string& ref) { return ref.substr(0, ref.find_first_of(":@")); }

absl::Status ValidateTexts(const google::protobuf::RepeatedPtrField<std::string>& texts,
                           const google::protobuf::RepeatedPtrField<std::string>& pairs,
                           const Limits& limits) {
  if (texts.empty()) return absl::InvalidArgumentError("texts: at least one text is required");
  if (texts.size() > limits.max_texts) {
    return absl::InvalidArgumentError(absl::StrCat("texts: ", texts.size(),
                                                   " texts; this server takes at most ",
                                                   limits.max_texts, " per request"));
  }
  if (!pairs.empty() && pairs.size() != texts.size()) {
    return absl::InvalidArgumentError(absl::StrCat("text_pairs: ", pairs.size(), " pairs for ",
                                                   texts.size(),
                                                   " texts (give one per text or none)"));
  }
  for (const auto* list : {&texts, &pairs}) {
    const char* field = list == &texts ? "texts" : "text_pairs";
    for (int i = 0; i < list->size(); ++i) {
      if (static_cast<int64_t>((*list)[i].size()) > limits.max_text_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "]: ", (*list)[i].size(),
                                                       " bytes; this server takes at most ",
                                                       limits.max_text_bytes));
      }
    }
  }
  return absl::OkStatus();
}

// One bound for Classify and Tokenize; 3 fits [CLS], one token and [SEP].
absl::Status ValidateMaxLength(int64_t max_length) {
  if (max_length != 0 && (max_length < 3 || max_length > 8192)) {
    return absl::InvalidArgumentError(
        "max_length: must be 0 (the model's maximum) or in [3, 8192]");
  }
  return absl::OkStatus();
}

absl::Status ValidateClassify(const v1::ClassifyRequest& r, const Limits& limits) {
  RETURN_IF_ERROR(service::ParseModelRef(r.model(), r.version(), r.alias(), "model").status());
  RETURN_IF_ERROR(ValidateTexts(r.texts(), r.text_pairs(), limits));
  if (r.top_k() < 0 || r.top_k() > 1000)
    return absl::InvalidArgumentError("top_k: must be in [0, 1000]");
  RETURN_IF_ERROR(ValidateMaxLength(r.max_length()));
  if (r.stride() < 0) return absl::InvalidArgumentError("stride: must not be negative");
  if (!v1::Truncation_IsValid(r.truncation()))
    return absl::InvalidArgumentError("truncation: unknown mode");
  return absl::OkStatus();
}

SteadyClock::time_point SteadyDeadline(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max())
    return SteadyClock::time_point::max();
  return SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                  deadline - std::chrono::system_clock::now());
}

absl::Status RunClassify(const ServiceContext& ctx, const v1::ClassifyRequest& r,
                         SteadyClock::time_point deadline, grpc::CallbackServerContext* context,
                         v1::ClassifyResponse* response) {
  ASSIGN_OR_RETURN(service::ModelRef ref,
                   service::ParseModelRef(r.model(), r.version(), r.alias(), "model"));
  ASSIGN_OR_RETURN(service::ModelHandle handle, ctx.registry->Acquire(ref));
  ClassifyOptions o;
  switch (r.truncation()) {
    case v1::TRUNCATION_LEFT:
      o.truncation = TruncationMode::kLeft;
      break;
    case v1::TRUNCATION_WINDOW:
      o.truncation = TruncationMode::kWindow;
      break;
    default:
      o.truncation = TruncationMode::kRight;
      break;
  }
  o.max_length = r.max_length();
  if (r.stride() > 0) o.stride = r.stride();
  o.top_k = r.top_k();
  o.return_logits = r.raw_scores();
  o.deadline = deadline;
  // The batcher drops this call's texts before their forward pass once the client has gone
  // (IsCancelled is thread-safe in the callback API; the context outlives the call's wait).
  o.cancelled = [context] { return context->IsCancelled(); };
  std::vector<std::string> texts(r.texts().begin(), r.texts().end());
  std::vector<std::string> pairs(r.text_pairs().begin(), r.text_pairs().end());
  ASSIGN_OR_RETURN(std::vector<ClassifyResult> results, handle.engine->Classify(texts, pairs, o));
  response->set_model(handle.record.name);
  response->set_model_version(handle.record.version);
  for (const std::string& l : handle.engine->model().config().id2label) response->add_labels(l);
  double queue = 0, compute = 0;
  std::vector<double> queue_each;
  queue_each.reserve(results.size());
  for (const ClassifyResult& c : results) {
    ToProto(c, response->add_results());
    queue = std::max(queue, c.queue_seconds);
    compute = std::max(compute, c.compute_seconds);
    queue_each.push_back(c.queue_seconds);
  }
  ctx.metrics->RecordClassify(handle.record.name, static_cast<int64_t>(results.size()), queue_each);
  response->set_queue_seconds(queue);
  response->set_compute_seconds(compute);
  return absl::OkStatus();
}

// One request at a time per stream: read, classify on the pool, write, read the next.
class ClassifyStreamReactor final
    : public grpc::ServerBidiReactor<v1::ClassifyRequest, v1::ClassifyResponse> {
 public:
  ClassifyStreamReactor(grpc::CallbackServerContext* context, const ServiceContext& ctx)
      : context_(context), ctx_(ctx) {
    auto caller = CheckAccess(ctx_, *context_, Permission::kClassify, "");
    if (!caller.ok()) {
      Finish(ToGrpcStatus(caller.status()));
      return;
    }
    caller_ = *caller;
    if (absl::Status slot = AcquireStreamSlot(ctx_); !slot.ok()) {
      Finish(ToGrpcStatus(slot));
      return;
    }
    holds_slot_ = true;
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::OK);  // the client closed its side (or went away)
    if (caller_) {
      if (absl::Status s = Authorize(*caller_, Permission::kClassify, ModelName(request_.model()));
          !s.ok()) {
        return Finish(ToGrpcStatus(s));
      }
    }
    if (absl::Status s = ValidateClassify(request_, ctx_.limits); !s.ok())
      return Finish(ToGrpcStatus(s));
    const bool queued = ctx_.pool->TrySubmit([this] {
      response_.Clear();
      absl::Status s = RunClassify(ctx_, request_, SteadyDeadline(context_), context_, &response_);
      if (!s.ok()) return Finish(ToGrpcStatus(s));
      StartWrite(&response_);
    });
    if (!queued)
      Finish(ToGrpcStatus(absl::ResourceExhaustedError("the server's request queue is full")));
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(ToGrpcStatus(absl::CancelledError("the client went away")));
    StartRead(&request_);
  }

  void OnDone() override {
    if (holds_slot_) --ctx_.live->streams;
    delete this;
  }

 private:
  grpc::CallbackServerContext* const context_;
  const ServiceContext ctx_;
  bool holds_slot_ = false;  // counted in live->streams
  std::optional<Principal> caller_;
  v1::ClassifyRequest request_;
  v1::ClassifyResponse response_;
};

}  // namespace

grpc::ServerUnaryReactor* InferenceServiceImpl::Classify(grpc::CallbackServerContext* context,
                                                         const v1::ClassifyRequest* request,
                                                         v1::ClassifyResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify, ModelName(request->model()));
  if (!caller.ok()) return FinishWith(context, caller.status());
  if (absl::Status s = ValidateClassify(*request, ctx_.limits); !s.ok())
    return FinishWith(context, s);
  const SteadyClock::time_point deadline = SteadyDeadline(context);
  return RunOnPool(context, ctx_.pool, [this, context, request, response, deadline] {
    return RunClassify(ctx_, *request, deadline, context, response);
  });
}

grpc::ServerBidiReactor<v1::ClassifyRequest, v1::ClassifyResponse>*
InferenceServiceImpl::ClassifyStream(grpc::CallbackServerContext* context) {
  return new ClassifyStreamReactor(context, ctx_);
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Tokenize(grpc::CallbackServerContext* context,
                                                         const v1::TokenizeRequest* request,
                                                         v1::TokenizeResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify, ModelName(request->model()));
  if (!caller.ok()) return FinishWith(context, caller.status());
  auto ref =
      service::ParseModelRef(request->model(), request->version(), request->alias(), "model");
  absl::Status s = ref.status();
  if (s.ok()) s = ValidateTexts(request->texts(), request->text_pairs(), ctx_.limits);
  if (s.ok()) s = ValidateMaxLength(request->max_length());
  if (s.ok() && request->truncation() == v1::TRUNCATION_WINDOW) {
    s = absl::InvalidArgumentError("truncation: Tokenize supports RIGHT or LEFT");
  }
  if (s.ok() && !v1::Truncation_IsValid(request->truncation()))
    s = absl::InvalidArgumentError("truncation: unknown mode");
  if (!s.ok()) return FinishWith(context, s);
  return RunOnPool(context, ctx_.pool, [this, request, response, ref = *ref]() -> absl::Status {
    ASSIGN_OR_RETURN(service::ModelHandle handle, ctx_.registry->Acquire(ref));
    const text::Tokenizer& tok = handle.engine->model().tokenizer();
    text::EncodeOptions o;
    o.max_length = request->max_length();
    o.return_tokens = true;
    if (request->truncation() == v1::TRUNCATION_LEFT) o.side = text::TruncationSide::kLeft;
    if (request->truncation() == v1::TRUNCATION_RIGHT) o.side = text::TruncationSide::kRight;
    for (int i = 0; i < request->texts_size(); ++i) {
      auto e = request->text_pairs().empty()
                   ? tok.Encode(request->texts(i), o)
                   : tok.EncodePair(request->texts(i), request->text_pairs(i), o);
      if (!e.ok())
        return absl::InvalidArgumentError(absl::StrCat("texts[", i, "]: ", e.status().message()));
      v1::Encoding* out = response->add_encodings();
      out->mutable_input_ids()->Add(e->input_ids.begin(), e->input_ids.end());
      out->mutable_token_type_ids()->Add(e->token_type_ids.begin(), e->token_type_ids.end());
      out->mutable_attention_mask()->Add(e->attention_mask.begin(), e->attention_mask.end());
      for (const std::string& t : e->tokens) out->add_tokens(t);
      out->set_truncated(e->truncated);
    }
    response->set_model_version(handle.record.version);
    return absl::OkStatus();
  });
}

}  // namespace berth::server
