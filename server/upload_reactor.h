// The one client-streaming upload of the gRPC API, shared by UploadDataset and ImportModel: the
// first message carries `info`, the others `data` chunks (any may carry the SHA-256 of them all).
// The upload's slot and buffer come from a facade; when the client half-closes, the upload is
// handed to the facade on the request pool. A cancelled or failed stream stores nothing.
#ifndef BERTH_SERVER_UPLOAD_REACTOR_H_
#define BERTH_SERVER_UPLOAD_REACTOR_H_

#include <grpcpp/support/server_callback.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "core/service/limits.h"
#include "core/util/thread_pool.h"
#include "server/status.h"

namespace berth::server {

template <typename Request>
class UploadReactor final : public grpc::ServerReadReactor<Request> {
 public:
  using Info = std::decay_t<decltype(std::declval<Request>().info())>;
  // `upload`: the slot and buffer (or why there are none: the call ends with that). `on_info`
  // checks and keeps the first message's info; `on_end(bytes, sha256)` stores the upload (on
  // the pool). `cancelled` is the message of a call the client cancelled.
  UploadReactor(grpc::CallbackServerContext* context, ThreadPool* pool,
                absl::StatusOr<service::Upload> upload, std::string cancelled,
                std::function<absl::Status(const Info&)> on_info,
                std::function<absl::Status(std::string& bytes, const std::string& sha256)> on_end)
      : context_(context),
        pool_(pool),
        cancelled_(std::move(cancelled)),
        on_info_(std::move(on_info)),
        on_end_(std::move(on_end)) {
    if (!upload.ok()) {
      End(upload.status());
      return;
    }
    upload_.emplace(std::move(*upload));
    this->StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return Close();
    if (!request_.sha256().empty()) sha256_ = request_.sha256();
    absl::Status s = absl::OkStatus();
    if (request_.has_info()) {
      s = have_info_ ? Refusal("info: sent twice") : on_info_(request_.info());
      have_info_ = true;
    } else if (request_.part_case() == Request::kData) {
      s = have_info_ ? upload_->bytes.Append(request_.data()) : NoInfo();
    }
    if (!s.ok()) return End(s);
    this->StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  static absl::Status Refusal(const char* message) { return absl::InvalidArgumentError(message); }
  static absl::Status NoInfo() { return Refusal("info: the first message must carry info"); }

  // The client half-closed (or went away): store the upload on the pool.
  void Close() {
    if (context_->IsCancelled()) return End(absl::CancelledError(cancelled_));
    if (!have_info_) return End(NoInfo());
    if (!pool_->TrySubmit([this] { End(on_end_(upload_->bytes.bytes(), sha256_)); }))
      End(absl::ResourceExhaustedError("the server is busy; retry later"));
  }

  // The upload slot is given back when the answer is decided, not when gRPC is done with the
  // call: a client that got its answer may start the next upload at once.
  void End(const absl::Status& s) {
    if (upload_) upload_->slot.Release();
    this->Finish(ToGrpcStatus(s));
  }

  grpc::CallbackServerContext* const context_;
  ThreadPool* const pool_;
  const std::string cancelled_;
  const std::function<absl::Status(const Info&)> on_info_;
  const std::function<absl::Status(std::string&, const std::string&)> on_end_;
  std::optional<service::Upload> upload_;
  Request request_;
  bool have_info_ = false;
  std::string sha256_;
};

}  // namespace berth::server

#endif  // BERTH_SERVER_UPLOAD_REACTOR_H_
