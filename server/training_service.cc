// berth.v1.TrainingService: dataset uploads and the fine-tuning job queue.
#include <algorithm>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/train/dataset.h"
#include "core/util/status_macros.h"
#include "server/convert.h"
#include "server/metrics.h"
#include "server/services.h"
#include "server/status.h"

namespace berth::server {
namespace {

absl::Status ValidateJobId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("job_id: required");
  if (id.size() > 64) return absl::InvalidArgumentError("job_id: longer than 64 characters");
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') {
      return absl::InvalidArgumentError("job_id: only letters, digits and '-' are allowed");
    }
  }
  return absl::OkStatus();
}

train::DatasetOptions UploadOptions(const v1::DatasetInfo& info) {
  train::DatasetOptions o;
  o.text_column = info.text_column();
  o.text_pair_column = info.text_pair_column();
  if (!info.label_column().empty()) o.label_column = info.label_column();
  o.multi_label = info.multi_label();
  return o;
}

// Reads the upload into memory; when the client half-closes, checks and stores it on the
// request pool. A cancelled or failed stream stores nothing.
class UploadReactor final : public grpc::ServerReadReactor<v1::UploadDatasetRequest> {
 public:
  UploadReactor(grpc::CallbackServerContext* context, const ServiceContext& ctx,
                v1::UploadDatasetResponse* response)
      : context_(context), ctx_(ctx), response_(response) {
    if (auto caller = CheckAccess(ctx_, *context_, Permission::kTrain, ""); !caller.ok()) {
      FinishWith(caller.status());
      return;
    }
    if (absl::Status slot = AcquireUploadSlot(ctx_); !slot.ok()) {
      FinishWith(slot);
      return;
    }
    holds_slot_ = true;
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (context_->IsCancelled())
        return Finish(ToGrpcStatus(absl::CancelledError("upload cancelled")));
      if (!have_info_)
        return FinishWith(absl::InvalidArgumentError("info: the first message must carry info"));
      if (!ctx_.pool->TrySubmit([this] { FinishWith(Store()); })) {
        FinishWith(absl::ResourceExhaustedError("the server is busy; retry later"));
      }
      return;
    }
    if (!request_.sha256().empty()) sha256_ = request_.sha256();
    if (request_.has_info()) {
      if (have_info_) return FinishWith(absl::InvalidArgumentError("info: sent twice"));
      if (absl::Status s =
              service::ValidateUpload(request_.info().file_name(), UploadOptions(request_.info()));
          !s.ok()) {
        return FinishWith(s);
      }
      info_ = request_.info();
      have_info_ = true;
    } else if (request_.part_case() == v1::UploadDatasetRequest::kData) {
      if (!have_info_)
        return FinishWith(absl::InvalidArgumentError("info: the first message must carry info"));
      if (absl::Status s = AppendUploadChunk(ctx_, request_.data(), "the upload", &data_);
          !s.ok()) {
        return FinishWith(s);
      }
    }
    StartRead(&request_);
  }

  void OnDone() override {
    ReleaseSlot();
    delete this;
  }

 private:
  // The upload slot is given back when the answer is decided, not when gRPC is done with the
  // call: a client that got its answer may start the next upload at once.
  void ReleaseSlot() {
    if (holds_slot_.exchange(false)) --ctx_.live->uploads;
  }
  void FinishWith(const absl::Status& s) {
    ReleaseSlot();
    Finish(ToGrpcStatus(s));
  }

  absl::Status Store() {
    ASSIGN_OR_RETURN(
        service::StoredDataset stored,
        ctx_.training->PutDataset(data_, info_.file_name(), UploadOptions(info_), sha256_));
    const store::DatasetRecord& rec = stored.record;
    response_->set_dataset_id(rec.id);
    response_->set_rows(rec.rows);
    response_->set_bytes(rec.bytes);
    response_->set_already_present(stored.already_present);
    if (!stored.already_present) ctx_.metrics->RecordDatasetBytes(rec.bytes);
    for (const auto& [label, n] : rec.label_counts) (*response_->mutable_label_counts())[label] = n;
    return absl::OkStatus();
  }

  grpc::CallbackServerContext* const context_;
  const ServiceContext ctx_;
  v1::UploadDatasetResponse* const response_;
  v1::UploadDatasetRequest request_;
  v1::DatasetInfo info_;
  bool have_info_ = false;
  std::atomic<bool> holds_slot_{false};  // counted in live->uploads
  std::string sha256_;
  std::string data_;
};

// Sends the job's status now and after every change until a terminal state is sent.
class WatchReactor final : public grpc::ServerWriteReactor<v1::JobStatus> {
 public:
  WatchReactor(const ServiceContext& ctx, std::string job_id)
      : ctx_(ctx), job_id_(std::move(job_id)) {
    token_ = ctx_.runner->Subscribe(job_id_, [this] { OnChange(); });
    OnChange();
  }

  void OnWriteDone(bool ok) override {
    mu_.Lock();
    writing_ = false;
    if (!ok) {
      finished_ = true;
      mu_.Unlock();
      Finish(ToGrpcStatus(absl::CancelledError("the watcher went away")));
      return;
    }
    const bool write = dirty_ && !finished_;
    if (write) {
      dirty_ = false;
      writing_ = true;
    }
    mu_.Unlock();
    if (write) WriteLatest();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    if (!finished_ && !writing_) {
      finished_ = true;
      Finish(ToGrpcStatus(absl::CancelledError("watch cancelled")));
    }
  }

  void OnDone() override {
    ctx_.runner->Unsubscribe(token_);
    --ctx_.live->streams;
    delete this;
  }

 private:
  void OnChange() {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      if (writing_) {
        dirty_ = true;
        return;
      }
      writing_ = true;
    }
    WriteLatest();
  }

  // Called with writing_ set: exactly one write (or the finish) is in flight.
  void WriteLatest() {
    auto job = ctx_.store->GetJob(job_id_);
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (!job.ok()) {
      finished_ = true;
      Finish(ToGrpcStatus(job.status()));
      return;
    }
    if (ctx_.draining->load()) {  // let the drain finish; the client watches again elsewhere
      finished_ = true;
      Finish(ToGrpcStatus(absl::UnavailableError("the server is shutting down; watch again")));
      return;
    }
    ToProto(*job, &status_);
    if (store::IsTerminal(job->state)) {
      finished_ = true;
      StartWriteAndFinish(&status_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      StartWrite(&status_);
    }
  }

  const ServiceContext ctx_;
  const std::string job_id_;
  int64_t token_ = 0;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;   // a write is in flight
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;     // a change arrived during that write
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish was called
  v1::JobStatus status_ ABSL_GUARDED_BY(mu_);   // owned by the in-flight write
};

}  // namespace

grpc::ServerReadReactor<v1::UploadDatasetRequest>* TrainingServiceImpl::UploadDataset(
    grpc::CallbackServerContext* context, v1::UploadDatasetResponse* response) {
  return new UploadReactor(context, ctx_, response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::StartTraining(
    grpc::CallbackServerContext* context, const v1::StartTrainingRequest* request,
    v1::StartTrainingResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kTrain, request->model_name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  // Re-reads the datasets with the requested columns, so it runs on the pool.
  return RunOnPool(
      context, ctx_.pool, [this, request, response, caller = *caller]() -> absl::Status {
        service::Submitter who;
        if (caller) {
          who.id = caller->id;
          who.may_read_model = [p = *caller](const std::string& name) {
            return Authorize(p, Permission::kClassify, name);
          };
          who.may_see_job = [caller](const std::string& created_by) {
            return CheckJobOwner(caller, created_by);
          };
        }
        ASSIGN_OR_RETURN(service::Submission sub,
                         ctx_.training->Submit(ToJobSpec(*request), request->request_id(), who));
        response->set_job_id(sub.job.id);
        response->set_existing(sub.existed);
        ToProto(sub.job, response->mutable_status());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetStatus(grpc::CallbackServerContext* context,
                                                         const v1::GetStatusRequest* request,
                                                         v1::JobStatus* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kTrain, "");
  if (!caller.ok()) return FinishWith(context, caller.status());
  absl::Status s = ValidateJobId(request->job_id());
  if (s.ok()) {
    auto job = ctx_.store->GetJob(request->job_id());
    s = job.ok() ? CheckJobOwner(*caller, job->created_by) : job.status();
    if (s.ok()) ToProto(*job, response);
  }
  return FinishWith(context, s);
}

grpc::ServerWriteReactor<v1::JobStatus>* TrainingServiceImpl::WatchJob(
    grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  auto caller = CheckAccess(ctx_, *context, Permission::kTrain, "");
  absl::Status s = caller.status();
  if (s.ok()) s = ValidateJobId(request->job_id());
  if (s.ok()) {
    auto job = ctx_.store->GetJob(request->job_id());
    s = job.ok() ? CheckJobOwner(*caller, job->created_by) : job.status();
  }
  if (s.ok()) s = AcquireStreamSlot(ctx_);
  if (!s.ok()) {
    class Failed final : public grpc::ServerWriteReactor<v1::JobStatus> {
     public:
      explicit Failed(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
      void OnDone() override { delete this; }
    };
    return new Failed(s);
  }
  return new WatchReactor(ctx_, request->job_id());
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                         const v1::CancelJobRequest* request,
                                                         v1::JobStatus* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kTrain, "");
  if (!caller.ok()) return FinishWith(context, caller.status());
  absl::Status s = ValidateJobId(request->job_id());
  if (s.ok()) {
    auto existing = ctx_.store->GetJob(request->job_id());
    s = existing.ok() ? CheckJobOwner(*caller, existing->created_by) : existing.status();
  }
  if (s.ok()) {
    auto job = ctx_.runner->Cancel(request->job_id());
    if (job.ok()) ToProto(*job, response);
    s = job.status();
  }
  return FinishWith(context, s);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                        const v1::ListJobsRequest* request,
                                                        v1::ListJobsResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kTrain, "");
  if (!caller.ok()) return FinishWith(context, caller.status());
  if (request->page_size() < 0 || request->page_size() > ctx_.limits.max_page_size) {
    return FinishWith(context, absl::InvalidArgumentError(absl::StrCat(
                                   "page_size: must be in [0, ", ctx_.limits.max_page_size, "]")));
  }
  if (request->page_token().size() > 128) {
    return FinishWith(context,
                      absl::InvalidArgumentError("page_token: not a token this server issued"));
  }
  std::optional<store::JobState> state;
  if (request->state() != v1::JOB_STATE_UNSPECIFIED) {
    state = FromProto(request->state());
    if (!state) return FinishWith(context, absl::InvalidArgumentError("state: unknown job state"));
  }
  std::string next;
  // Without admin rights a token lists its own jobs.
  const std::string only = *caller && (*caller)->role != Role::kAdmin ? (*caller)->id : "";
  auto jobs = ctx_.store->ListJobs(state, request->page_size() == 0 ? 50 : request->page_size(),
                                   request->page_token(), &next, only);
  if (jobs.ok()) {
    for (const store::JobRecord& j : *jobs) ToProto(j, response->add_jobs());
    response->set_next_page_token(next);
  }
  return FinishWith(context, jobs.status());
}

}  // namespace berth::server
