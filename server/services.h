// The berth.v1 gRPC services (callback API). Handlers validate, then either answer from the
// store (quick SQLite reads/writes) or hand work that may block — model loading, tokenizing,
// waiting for a batch, deleting files — to the request pool. Torch never runs on a gRPC thread.
#ifndef BERTH_SERVER_SERVICES_H_
#define BERTH_SERVER_SERVICES_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "berth/v1/inference.grpc.pb.h"
#include "berth/v1/models.grpc.pb.h"
#include "berth/v1/training.grpc.pb.h"
#include "core/service/job_runner.h"
#include "core/service/model_import.h"
#include "core/service/model_registry.h"
#include "core/service/training.h"
#include "core/store/store.h"
#include "core/util/thread_pool.h"
#include "server/auth.h"

namespace berth::server {

// Request limits; the defaults are documented in `berth-server --help`.
struct Limits {
  int max_texts = 256;                            // texts per Classify/Tokenize request
  int64_t max_text_bytes = 64 * 1024;             // bytes per text
  int64_t max_upload_bytes = int64_t{512} << 20;  // bytes per dataset upload
  int64_t max_dataset_rows = 5'000'000;           // rows per dataset
  int max_concurrent_uploads = 4;                 // uploads in progress (each is held in memory)
  int max_queued_jobs = 1000;                     // jobs waiting, all tokens together
  int max_queued_jobs_per_token = 50;             // jobs waiting, per API token
  int max_streams = 256;                          // open WatchJob and ClassifyStream calls
  int max_page_size = 1000;
};

// Calls in progress that the limits above count; shared by the handlers.
struct LiveCounts {
  std::atomic<int> uploads{0};
  std::atomic<int> streams{0};
};

// Takes one slot of `counter` if fewer than `limit` are taken.
bool TryAcquire(std::atomic<int>* counter, int limit);

class Metrics;
class TokenAuthenticator;

// What the handlers share. Everything outlives the gRPC server.
struct ServiceContext {
  store::Store* store;
  service::JobRunner* runner;
  service::Training* training;
  service::ModelRegistry* registry;
  const service::ModelImporter* importer;
  ThreadPool* pool;
  Metrics* metrics;
  const std::atomic<bool>* draining;  // set when the server begins to shut down
  const TokenAuthenticator* auth;     // nullptr: authentication is off
  LiveCounts* live;
  Limits limits;
};

class TrainingServiceImpl final : public v1::TrainingService::CallbackService {
 public:
  explicit TrainingServiceImpl(const ServiceContext& ctx) : ctx_(ctx) {}

  grpc::ServerReadReactor<v1::UploadDatasetRequest>* UploadDataset(
      grpc::CallbackServerContext* context, v1::UploadDatasetResponse* response) override;
  grpc::ServerUnaryReactor* StartTraining(grpc::CallbackServerContext* context,
                                          const v1::StartTrainingRequest* request,
                                          v1::StartTrainingResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const v1::GetStatusRequest* request,
                                      v1::JobStatus* response) override;
  grpc::ServerWriteReactor<v1::JobStatus>* WatchJob(grpc::CallbackServerContext* context,
                                                    const v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::JobStatus* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;

 private:
  ServiceContext ctx_;
};

class InferenceServiceImpl final : public v1::InferenceService::CallbackService {
 public:
  explicit InferenceServiceImpl(const ServiceContext& ctx) : ctx_(ctx) {}

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override;
  grpc::ServerBidiReactor<v1::ClassifyRequest, v1::ClassifyResponse>* ClassifyStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;

 private:
  ServiceContext ctx_;
};

class ModelServiceImpl final : public v1::ModelService::CallbackService {
 public:
  explicit ModelServiceImpl(const ServiceContext& ctx) : ctx_(ctx) {}

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* context,
                                     const v1::GetModelRequest* request,
                                     v1::ModelVersion* response) override;
  grpc::ServerUnaryReactor* DeleteModel(grpc::CallbackServerContext* context,
                                        const v1::DeleteModelRequest* request,
                                        v1::DeleteModelResponse* response) override;
  grpc::ServerUnaryReactor* SetAlias(grpc::CallbackServerContext* context,
                                     const v1::SetAliasRequest* request,
                                     v1::SetAliasResponse* response) override;
  grpc::ServerReadReactor<v1::ImportModelRequest>* ImportModel(grpc::CallbackServerContext* context,
                                                               v1::ModelVersion* response) override;
  grpc::ServerWriteReactor<v1::ExportModelChunk>* ExportModel(
      grpc::CallbackServerContext* context, const v1::ExportModelRequest* request) override;

 private:
  ServiceContext ctx_;
};

// The caller's principal (nullopt when authentication is off) if it may do `need` on `model`;
// UNAUTHENTICATED or PERMISSION_DENIED otherwise. Handlers call it before validating anything.
absl::StatusOr<std::optional<Principal>> CheckAccess(const ServiceContext& ctx,
                                                     const grpc::CallbackServerContext& context,
                                                     Permission need, absl::string_view model);
// Whether `caller` may see or cancel a job `created_by` submitted (its own, or any for admin).
absl::Status CheckJobOwner(const std::optional<Principal>& caller, const std::string& created_by);

// Takes one of the max_concurrent_uploads slots (live->uploads), or RESOURCE_EXHAUSTED.
absl::Status AcquireUploadSlot(const ServiceContext& ctx);
// Takes one of the max_streams slots (live->streams), or RESOURCE_EXHAUSTED.
absl::Status AcquireStreamSlot(const ServiceContext& ctx);
// Appends an upload's `data` message to `buffer`: at most 4 MiB per message and
// max_upload_bytes in all, else INVALID_ARGUMENT naming `what` ("the upload", "the archive").
absl::Status AppendUploadChunk(const ServiceContext& ctx, const std::string& chunk,
                               absl::string_view what, std::string* buffer);

// Finishes `reactor` with `status` mapped through ToGrpcStatus.
grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* context,
                                     const absl::Status& status);
// Runs `work` on the request pool and finishes the call with its status; a full pool answers
// RESOURCE_EXHAUSTED at once.
grpc::ServerUnaryReactor* RunOnPool(grpc::CallbackServerContext* context, ThreadPool* pool,
                                    std::function<absl::Status()> work);

}  // namespace berth::server

#endif  // BERTH_SERVER_SERVICES_H_
