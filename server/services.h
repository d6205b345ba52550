// The berth.v1 gRPC services (callback API). Each handler checks access, converts the request
// (server/convert.h), makes one call to a facade (core/service: inference and models;
// core/jobs: training) and converts the reply back; the rules live in the facades. Calls that
// may block (models, tokenizing, files, datasets) run on the request pool: torch never runs on
// a gRPC thread.
#ifndef BERTH_SERVER_SERVICES_H_
#define BERTH_SERVER_SERVICES_H_

#include <atomic>
#include <functional>
#include <optional>

#include "berth/v1/inference.grpc.pb.h"
#include "berth/v1/models.grpc.pb.h"
#include "berth/v1/training.grpc.pb.h"
#include "core/jobs/training.h"
#include "core/service/inference.h"
#include "core/service/models.h"
#include "core/util/thread_pool.h"
#include "inference/grpc_service.grpc.pb.h"
#include "server/auth.h"
#include "server/status.h"

namespace berth::server {

// What the handlers share. Everything outlives the gRPC server.
struct ServiceContext {
  service::Inference* inference;
  service::Models* models;
  jobs::Training* training;
  ThreadPool* pool;
  const std::atomic<bool>* draining;  // set when the server begins to shut down
  const TokenAuthenticator* auth;     // nullptr: authentication is off
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
  grpc::ServerUnaryReactor* GetTrainingDefaults(grpc::CallbackServerContext* context,
                                                const v1::GetTrainingDefaultsRequest* request,
                                                v1::StartTrainingRequest* response) override;
  grpc::ServerUnaryReactor* ListJobEvents(grpc::CallbackServerContext* context,
                                          const v1::ListJobEventsRequest* request,
                                          v1::ListJobEventsResponse* response) override;

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
  grpc::ServerUnaryReactor* Embed(grpc::CallbackServerContext* context,
                                  const v1::EmbedRequest* request,
                                  v1::EmbedResponse* response) override;
  grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse>* EmbedStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Rerank(grpc::CallbackServerContext* context,
                                   const v1::RerankRequest* request,
                                   v1::RerankResponse* response) override;

 private:
  ServiceContext ctx_;
};

class ModelServiceImpl final : public v1::ModelService::CallbackService {
 public:
  explicit ModelServiceImpl(const ServiceContext& ctx) : ctx_(ctx) {}

  grpc::ServerUnaryReactor* ListLoadedModels(grpc::CallbackServerContext* context,
                                             const v1::ListLoadedModelsRequest* request,
                                             v1::ListLoadedModelsResponse* response) override;
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

// inference.GRPCInferenceService: the Open Inference Protocol (KServe v2) over gRPC, as
// tritonclient.grpc and perf_analyzer call it (server/oip/protocol.h holds its rules).
class OipServiceImpl final : public inference::GRPCInferenceService::CallbackService {
 public:
  OipServiceImpl(const ServiceContext& ctx, std::string version)
      : ctx_(ctx), version_(std::move(version)) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override;

 private:
  ServiceContext ctx_;
  const std::string version_;
};

// The caller's principal (nullopt when authentication is off) if it may do `need` on `model`;
// UNAUTHENTICATED or PERMISSION_DENIED otherwise. Handlers call it before anything else.
absl::StatusOr<std::optional<Principal>> CheckAccess(const ServiceContext& ctx,
                                                     const grpc::CallbackServerContext& context,
                                                     Permission need, absl::string_view model);
// Whether `caller` may see or cancel a job `created_by` submitted (its own, or any for admin).
absl::Status CheckJobOwner(const std::optional<Principal>& caller, const std::string& created_by);
// The caller as the training facade knows it: its id, which models it may read and which jobs
// it may see (everything when authentication is off).
jobs::Submitter AsSubmitter(const std::optional<Principal>& caller);
// Whether `caller` may see model `name` (ListModels shows only those).
bool MaySee(const std::optional<Principal>& caller, const std::string& name);

// The call's deadline and cancellation, for the inference facade (the context outlives the
// call's wait, and IsCancelled is thread-safe in the callback API).
service::CallContext CallOf(grpc::CallbackServerContext* context);

// Finishes the call with `status` mapped through ToGrpcStatus.
grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* context,
                                     const absl::Status& status);
// Runs `work` on the request pool and finishes the call with its status; a full pool answers
// RESOURCE_EXHAUSTED at once.
grpc::ServerUnaryReactor* RunOnPool(grpc::CallbackServerContext* context, ThreadPool* pool,
                                    std::function<absl::Status()> work);

// A server-streaming call refused before its first message.
template <typename Message>
class RefusedWriter final : public grpc::ServerWriteReactor<Message> {
 public:
  explicit RefusedWriter(const absl::Status& s) { this->Finish(ToGrpcStatus(s)); }
  void OnDone() override { delete this; }
};

}  // namespace berth::server

#endif  // BERTH_SERVER_SERVICES_H_
