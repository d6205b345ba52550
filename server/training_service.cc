// berth.v1.TrainingService: dataset uploads and the fine-tuning job queue, over the training
// facade.
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/util/status_macros.h"
#include "server/convert.h"
#include "server/services.h"
#include "server/status.h"
#include "server/upload_reactor.h"

namespace berth::server {
namespace {

// Sends the job's status now and after every change until a terminal state is sent.
class WatchReactor final : public grpc::ServerWriteReactor<v1::JobStatus> {
 public:
  WatchReactor(const ServiceContext& ctx, const std::string& job_id, const jobs::Submitter& who)
      : ctx_(ctx) {
    auto watch = ctx_.training->Watch(job_id, who, [this] { OnChange(); });
    if (!watch.ok()) {
      absl::MutexLock lock(&mu_);
      finished_ = true;
      Finish(ToGrpcStatus(watch.status()));
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      watch_ = std::move(*watch);
    }
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
    std::unique_ptr<jobs::JobWatch> watch;
    {
      absl::MutexLock lock(&mu_);
      watch = std::move(watch_);
    }
    watch.reset();  // unsubscribes (waiting for a change being told) and frees the stream
    delete this;
  }

 private:
  void OnChange() {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      if (writing_ || watch_ == nullptr) {  // the first write follows the constructor's
        dirty_ = true;
        return;
      }
      writing_ = true;
    }
    WriteLatest();
  }

  // Called with writing_ set: exactly one write (or the finish) is in flight.
  void WriteLatest() {
    const jobs::JobWatch* watch;
    {
      absl::MutexLock lock(&mu_);
      watch = watch_.get();  // set before the first write, reset only in OnDone
    }
    auto job = watch->Latest();
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = !job.ok() || ctx_.draining->load() || store::IsTerminal(job->state);
    if (!job.ok()) return Finish(ToGrpcStatus(job.status()));
    if (ctx_.draining->load()) {  // let the drain finish; the client watches again elsewhere
      return Finish(
          ToGrpcStatus(absl::UnavailableError("the server is shutting down; watch again")));
    }
    ToProto(*job, &status_);
    if (finished_) return StartWriteAndFinish(&status_, grpc::WriteOptions(), grpc::Status::OK);
    StartWrite(&status_);
  }

  const ServiceContext ctx_;
  absl::Mutex mu_;
  std::unique_ptr<jobs::JobWatch> watch_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;   // a write is in flight
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;     // a change arrived during that write
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish was called
  v1::JobStatus status_ ABSL_GUARDED_BY(mu_);   // owned by the in-flight write
};

}  // namespace

grpc::ServerReadReactor<v1::UploadDatasetRequest>* TrainingServiceImpl::UploadDataset(
    grpc::CallbackServerContext* context, v1::UploadDatasetResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kTrain, "");
  auto upload =
      caller.ok() ? ctx_.training->BeginUpload() : absl::StatusOr<service::Upload>(caller.status());
  auto info = std::make_shared<v1::DatasetInfo>();
  auto on_info = [info](const v1::DatasetInfo& i) {
    *info = i;
    return jobs::ValidateUpload(i.file_name(), ToDatasetOptions(i));
  };
  auto on_end = [this, info, response](std::string& bytes, const std::string& sha256) {
    ASSIGN_OR_RETURN(
        jobs::StoredDataset stored,
        ctx_.training->PutDataset(bytes, info->file_name(), ToDatasetOptions(*info), sha256));
    ToProto(stored, response);
    return absl::OkStatus();
  };
  return new UploadReactor<v1::UploadDatasetRequest>(context, ctx_.pool, std::move(upload),
                                                     "upload cancelled", on_info, on_end);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::StartTraining(
    grpc::CallbackServerContext* context, const v1::StartTrainingRequest* request,
    v1::StartTrainingResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kTrain, request->model_name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  // Re-reads the datasets with the requested columns, so it runs on the pool.
  return RunOnPool(
      context, ctx_.pool, [this, request, response, who = AsSubmitter(*caller)]() -> absl::Status {
        ASSIGN_OR_RETURN(jobs::Submission sub,
                         ctx_.training->Submit(ToJobSpec(*request), request->request_id(), who));
        ToProto(sub, response);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetStatus(grpc::CallbackServerContext* context,
                                                         const v1::GetStatusRequest* request,
                                                         v1::JobStatus* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kSeeJobs, "");
  if (!caller.ok()) return FinishWith(context, caller.status());
  auto job = ctx_.training->Get(request->job_id(), AsSubmitter(*caller));
  if (job.ok()) ToProto(*job, response);
  return FinishWith(context, job.status());
}

grpc::ServerWriteReactor<v1::JobStatus>* TrainingServiceImpl::WatchJob(
    grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  auto caller = CheckAccess(ctx_, *context, Permission::kSeeJobs, "");
  if (!caller.ok()) return new RefusedWriter<v1::JobStatus>(caller.status());
  return new WatchReactor(ctx_, request->job_id(), AsSubmitter(*caller));
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                         const v1::CancelJobRequest* request,
                                                         v1::JobStatus* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kTrain, "");
  if (!caller.ok()) return FinishWith(context, caller.status());
  auto job = ctx_.training->Cancel(request->job_id(), AsSubmitter(*caller));
  if (job.ok()) ToProto(*job, response);
  return FinishWith(context, job.status());
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                        const v1::ListJobsRequest* request,
                                                        v1::ListJobsResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kSeeJobs, "");
  if (!caller.ok()) return FinishWith(context, caller.status());
  auto page = ctx_.training->List(FromProto(*request), AsSubmitter(*caller));
  if (page.ok()) ToProto(*page, response);
  return FinishWith(context, page.status());
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetTrainingDefaults(
    grpc::CallbackServerContext* context, const v1::GetTrainingDefaultsRequest* /*request*/,
    v1::StartTrainingRequest* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kSeeJobs, "");
  if (!caller.ok()) return FinishWith(context, caller.status());
  ToProto(ctx_.training->Defaults(), response);
  return FinishWith(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListJobEvents(
    grpc::CallbackServerContext* context, const v1::ListJobEventsRequest* request,
    v1::ListJobEventsResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kSeeJobs, "");
  if (!caller.ok()) return FinishWith(context, caller.status());
  auto events = ctx_.training->Events(request->job_id(), request->after_id(), request->page_size(),
                                      AsSubmitter(*caller));
  if (events.ok()) ToProto(*events, response);
  return FinishWith(context, events.status());
}

}  // namespace berth::server
