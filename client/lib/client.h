// berth::client — a thin C++ client for the Berth gRPC API (berth.v1) with deadlines and
// retries of idempotent calls. Links only the generated protos and gRPC: applications embed it
// without libtorch.
#ifndef BERTH_CLIENT_LIB_CLIENT_H_
#define BERTH_CLIENT_LIB_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "berth/v1/inference.grpc.pb.h"
#include "berth/v1/models.grpc.pb.h"
#include "berth/v1/training.grpc.pb.h"

namespace grpc {
class Channel;
class Status;
}  // namespace grpc

namespace berth::client {

struct ClientOptions {
  std::string target = "127.0.0.1:50051";    // HOST:PORT (any gRPC target)
  std::chrono::milliseconds timeout{60000};  // deadline of each unary call
  // Attempts of an idempotent call that failed with UNAVAILABLE (exponential backoff; gRPC's
  // retry policy). StartTraining counts as idempotent: the client gives it a request_id.
  int max_attempts = 5;
  int64_t max_message_bytes = 16 << 20;
  size_t upload_chunk_bytes = 1 << 20;
  std::string token;  // API token, sent as `authorization: Bearer <token>` ("" : none)
  // TLS (PEM file paths): tls_ca set turns TLS on and verifies the server against it;
  // tls_cert and tls_key present a client certificate (mutual TLS).
  std::string tls_ca, tls_cert, tls_key;
};

// One ClassifyStream call: requests go out and answers come back, one per request, in order,
// over one stream (no deadline: it lasts as long as the caller keeps it open).
class ClassifyStreamCall {
 public:
  virtual ~ClassifyStreamCall() = default;
  // Sends one request and waits for its answer; an error ends the stream (its status).
  virtual absl::StatusOr<v1::ClassifyResponse> Classify(const v1::ClassifyRequest& request) = 0;
  // Closes the stream: the server's final status.
  virtual absl::Status Finish() = 0;
};

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Create(const ClientOptions& options);

  // Uploads bytes (named `info.file_name`), with their SHA-256 so the server can tell a
  // truncated upload. `progress(sent, total)` is called after each chunk.
  absl::StatusOr<v1::UploadDatasetResponse> UploadDataset(
      const v1::DatasetInfo& info, absl::string_view bytes,
      const std::function<void(int64_t, int64_t)>& progress = nullptr);
  // Reads `path` and uploads it; file_name defaults to the path's base name.
  absl::StatusOr<v1::UploadDatasetResponse> UploadFile(
      const std::string& path, v1::DatasetInfo info,
      const std::function<void(int64_t, int64_t)>& progress = nullptr);

  // Fills an empty request_id with a random one so that retries cannot start a second job.
  absl::StatusOr<v1::StartTrainingResponse> StartTraining(v1::StartTrainingRequest request);
  absl::StatusOr<v1::JobStatus> GetStatus(const std::string& job_id);
  // Calls `on_status` for every status the server streams until a terminal one (returned), or
  // until `on_status` returns false (the latest status is returned). Reconnects for up to
  // `reconnect_for` when the server goes away (e.g. restarts).
  absl::StatusOr<v1::JobStatus> WatchJob(
      const std::string& job_id, const std::function<bool(const v1::JobStatus&)>& on_status,
      std::chrono::milliseconds reconnect_for = std::chrono::minutes(2));
  absl::StatusOr<v1::JobStatus> CancelJob(const std::string& job_id);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request);

  absl::StatusOr<v1::ClassifyResponse> Classify(const v1::ClassifyRequest& request);
  absl::StatusOr<v1::TokenizeResponse> Tokenize(const v1::TokenizeRequest& request);
  // Sentence embeddings; texts ranked against a query by a cross-encoder.
  absl::StatusOr<v1::EmbedResponse> Embed(const v1::EmbedRequest& request);
  absl::StatusOr<v1::RerankResponse> Rerank(const v1::RerankRequest& request);
  // Opens a ClassifyStream (requests answered as they are sent, on one call).
  std::unique_ptr<ClassifyStreamCall> OpenClassifyStream();

  absl::StatusOr<v1::ListModelsResponse> ListModels();
  absl::StatusOr<v1::ModelVersion> GetModel(const std::string& model);  // NAME[:VERSION|@ALIAS]
  absl::StatusOr<v1::DeleteModelResponse> DeleteModel(const std::string& name, int64_t version);
  absl::StatusOr<v1::SetAliasResponse> SetAlias(const std::string& name, const std::string& alias,
                                                int64_t version);
  // Registers an existing classifier as the next version of info.name: from a server
  // directory or a Hub id (the server fetches it), or, with info.archive set, from `archive`
  // (a tar of the model's files), sent in chunks with its SHA-256. `progress(sent, total)`
  // follows the archive. No deadline: a Hub download may take a while.
  absl::StatusOr<v1::ModelVersion> ImportModel(
      const v1::ImportModelInfo& info, absl::string_view archive = {},
      const std::function<void(int64_t, int64_t)>& progress = nullptr);
  // Writes a version's files into `output_dir` (which must not exist, or be empty): each file
  // checked against the size and SHA-256 the server sends, the directory appearing only when
  // complete. Returns the files' names. `progress(bytes, total)` follows the download.
  absl::StatusOr<std::vector<std::string>> ExportModel(
      const std::string& model, const std::string& output_dir,
      const std::function<void(int64_t, int64_t)>& progress = nullptr);

  // True when grpc.health.v1 says the server is SERVING.
  // Whether the server (or one of its health service names, e.g. "model:NAME") is SERVING.
  absl::StatusOr<bool> Healthy(const std::string& service = "");

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  explicit Client(const ClientOptions& options) : options_(options) {}
  void AddAuth(grpc::ClientContext* context) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TrainingService::Stub> training_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
  std::unique_ptr<v1::ModelService::Stub> models_;
};

// grpc::Status → absl::Status (same canonical codes, same message).
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace berth::client

#endif  // BERTH_CLIENT_LIB_CLIENT_H_
