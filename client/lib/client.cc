// berth::client over the generated stubs.
#include "client/lib/client.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/util/digest.h"
#include "core/util/status_macros.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace berth::client {
namespace {

std::string RandomRequestId() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  return absl::StrCat("cli-", absl::Hex(rng(), absl::kZeroPad16),
                      absl::Hex(rng(), absl::kZeroPad16));
}

// The channel's service config: calls spread over every address the target resolves to
// (round_robin: a Kubernetes ClusterIP balances connections, not calls, so a headless
// Service's dns:/// name or an ipv4:A:P,B:P list is how calls reach every replica), and with
// max_attempts > 1 gRPC's retry policy for the calls that are safe to repeat, whose retries
// the balancer sends on to the next replica.
std::string ServiceConfig(int max_attempts) {
  constexpr absl::string_view kBalancing = R"("loadBalancingConfig": [{"round_robin": {}}])";
  if (max_attempts <= 1) return absl::StrCat("{", kBalancing, "}");
  const std::string names = R"([
      {"service": "berth.v1.TrainingService", "method": "GetStatus"},
      {"service": "berth.v1.TrainingService", "method": "ListJobs"},
      {"service": "berth.v1.TrainingService", "method": "StartTraining"},
      {"service": "berth.v1.InferenceService", "method": "Classify"},
      {"service": "berth.v1.InferenceService", "method": "Tokenize"},
      {"service": "berth.v1.InferenceService", "method": "Embed"},
      {"service": "berth.v1.InferenceService", "method": "Rerank"},
      {"service": "berth.v1.ModelService", "method": "ListModels"},
      {"service": "berth.v1.ModelService", "method": "GetModel"},
      {"service": "berth.v1.ModelService", "method": "SetAlias"}])";
  return absl::StrCat("{", kBalancing, R"(, "methodConfig": [{"name": )", names,
                      R"(, "retryPolicy": {"maxAttempts": )",
                      std::max(2, std::min(max_attempts, 5)),
                      R"(, "initialBackoff": "0.2s", "maxBackoff": "3s", "backoffMultiplier": 2,)",
                      R"( "retryableStatusCodes": ["UNAVAILABLE"]}}]})");
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const ClientOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("server: no address given");
  std::unique_ptr<Client> c(new Client(options));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  args.SetServiceConfigJSON(ServiceConfig(options.max_attempts));
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options.tls_ca.empty() || !options.tls_cert.empty() || !options.tls_key.empty()) {
    if (options.tls_ca.empty())
      return absl::InvalidArgumentError("--tls-ca: needed to verify the server");
    if (options.tls_cert.empty() != options.tls_key.empty()) {
      return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
    }
    grpc::SslCredentialsOptions ssl;
    for (auto [path, dst, flag] :
         {std::make_tuple(options.tls_ca, &ssl.pem_root_certs, "--tls-ca"),
          std::make_tuple(options.tls_cert, &ssl.pem_cert_chain, "--tls-cert"),
          std::make_tuple(options.tls_key, &ssl.pem_private_key, "--tls-key")}) {
      if (path.empty()) continue;
      std::ifstream in(path, std::ios::binary);
      if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read ", path));
      std::ostringstream ss;
      ss << in.rdbuf();
      *dst = ss.str();
    }
    credentials = grpc::SslCredentials(ssl);
  }
  c->channel_ = grpc::CreateCustomChannel(options.target, credentials, args);
  c->training_ = v1::TrainingService::NewStub(c->channel_);
  c->inference_ = v1::InferenceService::NewStub(c->channel_);
  c->models_ = v1::ModelService::NewStub(c->channel_);
  return c;
}

// One unary call with the client's deadline and token.
template <typename Stub, typename Request, typename Response>
absl::StatusOr<Response> Unary(
    Stub* stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
    const Request& request, std::chrono::milliseconds timeout, const std::string& token) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  Response response;
  grpc::Status s = (stub->*method)(&context, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response;
}

namespace {

// A client-streaming upload: `first`, then `bytes` in data messages of `chunk` bytes, the last
// carrying the SHA-256 of them all (the server checks it); `progress(sent, total)` after each.
template <typename Request>
absl::Status StreamUpload(std::unique_ptr<grpc::ClientWriter<Request>> writer, const Request& first,
                          absl::string_view bytes, size_t chunk,
                          const std::function<void(int64_t, int64_t)>& progress) {
  bool ok = writer->Write(first);
  chunk = std::max<size_t>(1, chunk);
  for (size_t off = 0; ok && off < bytes.size(); off += chunk) {
    Request part;
    part.set_data(std::string(bytes.substr(off, chunk)));
    if (off + chunk >= bytes.size()) part.set_sha256(Sha256Hex(bytes));
    ok = writer->Write(part);
    if (ok && progress)
      progress(static_cast<int64_t>(std::min(bytes.size(), off + chunk)), bytes.size());
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpcStatus(s);
  return absl::OkStatus();
}

}  // namespace

void Client::AddAuth(grpc::ClientContext* context) const {
  if (!options_.token.empty()) context->AddMetadata("authorization", "Bearer " + options_.token);
}

absl::StatusOr<v1::UploadDatasetResponse> Client::UploadDataset(
    const v1::DatasetInfo& info, absl::string_view bytes,
    const std::function<void(int64_t, int64_t)>& progress) {
  grpc::ClientContext context;
  AddAuth(&context);
  v1::UploadDatasetResponse response;
  v1::UploadDatasetRequest first;
  *first.mutable_info() = info;
  RETURN_IF_ERROR(StreamUpload(training_->UploadDataset(&context, &response), first, bytes,
                               options_.upload_chunk_bytes, progress));
  return response;
}

absl::StatusOr<v1::UploadDatasetResponse> Client::UploadFile(
    const std::string& path, v1::DatasetInfo info,
    const std::function<void(int64_t, int64_t)>& progress) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (info.file_name().empty()) info.set_file_name(path.substr(path.find_last_of('/') + 1));
  return UploadDataset(info, ss.str(), progress);
}

absl::StatusOr<v1::StartTrainingResponse> Client::StartTraining(v1::StartTrainingRequest request) {
  if (request.request_id().empty()) request.set_request_id(RandomRequestId());
  return Unary(training_.get(), &v1::TrainingService::Stub::StartTraining, request,
               options_.timeout, options_.token);
}

absl::StatusOr<v1::JobStatus> Client::GetStatus(const std::string& job_id) {
  v1::GetStatusRequest request;
  request.set_job_id(job_id);
  return Unary(training_.get(), &v1::TrainingService::Stub::GetStatus, request, options_.timeout,
               options_.token);
}

absl::StatusOr<v1::JobStatus> Client::WatchJob(
    const std::string& job_id, const std::function<bool(const v1::JobStatus&)>& on_status,
    std::chrono::milliseconds reconnect_for) {
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  v1::JobStatus last;
  bool have_last = false;
  auto give_up_at = std::chrono::steady_clock::now() + reconnect_for;
  while (true) {
    grpc::ClientContext context;  // no deadline: a job may train for hours
    AddAuth(&context);
    auto reader = training_->WatchJob(&context, request);
    v1::JobStatus status;
    while (reader->Read(&status)) {
      last = status;
      have_last = true;
      give_up_at = std::chrono::steady_clock::now() + reconnect_for;
      if (!on_status(status)) {
        context.TryCancel();
        reader->Finish();
        return last;
      }
    }
    grpc::Status s = reader->Finish();
    if (s.ok()) {
      if (!have_last) return absl::InternalError("the watch ended without a status");
      return last;
    }
    const bool transient = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                           s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                           s.error_code() == grpc::StatusCode::CANCELLED;
    if (!transient || std::chrono::steady_clock::now() > give_up_at) return FromGrpcStatus(s);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

absl::StatusOr<v1::JobStatus> Client::CancelJob(const std::string& job_id) {
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  return Unary(training_.get(), &v1::TrainingService::Stub::CancelJob, request, options_.timeout,
               options_.token);
}

absl::StatusOr<v1::ListJobsResponse> Client::ListJobs(const v1::ListJobsRequest& request) {
  return Unary(training_.get(), &v1::TrainingService::Stub::ListJobs, request, options_.timeout,
               options_.token);
}

absl::StatusOr<v1::ClassifyResponse> Client::Classify(const v1::ClassifyRequest& request) {
  return Unary(inference_.get(), &v1::InferenceService::Stub::Classify, request, options_.timeout,
               options_.token);
}

namespace {

class GrpcClassifyStream final : public ClassifyStreamCall {
 public:
  GrpcClassifyStream(v1::InferenceService::Stub* stub, const std::string& token) {
    if (!token.empty()) context_.AddMetadata("authorization", "Bearer " + token);
    stream_ = stub->ClassifyStream(&context_);
  }
  ~GrpcClassifyStream() override {
    if (!finished_) context_.TryCancel();
    if (!finished_) Finish().IgnoreError();
  }

  absl::StatusOr<v1::ClassifyResponse> Classify(const v1::ClassifyRequest& request) override {
    v1::ClassifyResponse response;
    if (finished_ || !stream_->Write(request) || !stream_->Read(&response)) {
      absl::Status s = Finish();
      return s.ok() ? absl::UnavailableError("the server closed the stream") : s;
    }
    return response;
  }

  absl::Status Finish() override {
    if (finished_) return status_;
    finished_ = true;
    stream_->WritesDone();
    status_ = FromGrpcStatus(stream_->Finish());
    return status_;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ClassifyRequest, v1::ClassifyResponse>> stream_;
  bool finished_ = false;
  absl::Status status_;
};

}  // namespace

std::unique_ptr<ClassifyStreamCall> Client::OpenClassifyStream() {
  return std::make_unique<GrpcClassifyStream>(inference_.get(), options_.token);
}

absl::StatusOr<v1::TokenizeResponse> Client::Tokenize(const v1::TokenizeRequest& request) {
  return Unary(inference_.get(), &v1::InferenceService::Stub::Tokenize, request, options_.timeout,
               options_.token);
}

absl::StatusOr<v1::EmbedResponse> Client::Embed(const v1::EmbedRequest& request) {
  return Unary(inference_.get(), &v1::InferenceService::Stub::Embed, request, options_.timeout,
               options_.token);
}

absl::StatusOr<v1::RerankResponse> Client::Rerank(const v1::RerankRequest& request) {
  return Unary(inference_.get(), &v1::InferenceService::Stub::Rerank, request, options_.timeout,
               options_.token);
}

absl::StatusOr<v1::ListModelsResponse> Client::ListModels() {
  v1::ListModelsRequest request;
  return Unary(models_.get(), &v1::ModelService::Stub::ListModels, request, options_.timeout,
               options_.token);
}

absl::StatusOr<v1::ModelVersion> Client::GetModel(const std::string& model) {
  v1::GetModelRequest request;
  request.set_model(model);
  return Unary(models_.get(), &v1::ModelService::Stub::GetModel, request, options_.timeout,
               options_.token);
}

absl::StatusOr<v1::DeleteModelResponse> Client::DeleteModel(const std::string& name,
                                                            int64_t version) {
  v1::DeleteModelRequest request;
  request.set_name(name);
  request.set_version(version);
  return Unary(models_.get(), &v1::ModelService::Stub::DeleteModel, request, options_.timeout,
               options_.token);
}

absl::StatusOr<v1::SetAliasResponse> Client::SetAlias(const std::string& name,
                                                      const std::string& alias, int64_t version) {
  v1::SetAliasRequest request;
  request.set_name(name);
  request.set_alias(alias);
  request.set_version(version);
  return Unary(models_.get(), &v1::ModelService::Stub::SetAlias, request, options_.timeout,
               options_.token);
}

absl::StatusOr<v1::ModelVersion> Client::ImportModel(
    const v1::ImportModelInfo& info, absl::string_view archive,
    const std::function<void(int64_t, int64_t)>& progress) {
  grpc::ClientContext context;
  AddAuth(&context);
  v1::ModelVersion response;
  v1::ImportModelRequest first;
  *first.mutable_info() = info;
  RETURN_IF_ERROR(StreamUpload(models_->ImportModel(&context, &response), first, archive,
                               options_.upload_chunk_bytes, progress));
  return response;
}

absl::StatusOr<std::vector<std::string>> Client::ExportModel(
    const std::string& model, const std::string& output_dir,
    const std::function<void(int64_t, int64_t)>& progress) {
  struct stat st;
  if (::stat(output_dir.c_str(), &st) == 0 && ::rmdir(output_dir.c_str()) != 0) {
    return absl::AlreadyExistsError(
        absl::StrCat(output_dir, " exists and is not an empty directory"));
  }
  const std::string partial = absl::StrCat(output_dir, ".partial.", ::getpid());
  std::vector<std::string> names;
  std::vector<std::string> folders;
  auto cleanup = [&] {
    for (const std::string& n : names) ::unlink(absl::StrCat(partial, "/", n).c_str());
    for (const std::string& d : folders) ::rmdir(absl::StrCat(partial, "/", d).c_str());
    ::rmdir(partial.c_str());
  };
  if (::mkdir(partial.c_str(), 0755) != 0) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", partial));
  }
  grpc::ClientContext context;
  AddAuth(&context);
  v1::ExportModelRequest request;
  request.set_model(model);
  auto reader = models_->ExportModel(&context, request);
  v1::ExportModelChunk chunk;
  std::ofstream out;
  std::unique_ptr<Sha256> digest;
  std::string name;
  int64_t expected = 0, written = 0, total = 0;
  absl::Status failed;
  while (failed.ok() && reader->Read(&chunk)) {
    if (!chunk.path().empty()) {
      if (out.is_open()) {
        failed = absl::DataLossError(absl::StrCat(name, ": ended without its digest"));
        break;
      }
      name = chunk.path();
      // A file name, or one folder and a file name (sentence-transformers' 1_Pooling/config.json):
      // nothing the server says may write outside the directory.
      const std::vector<std::string> parts = absl::StrSplit(name, '/');
      bool bad = parts.size() > 2;
      for (const std::string& part : parts)
        bad = bad || part.empty() || part == "." || part == "..";
      if (bad) {
        failed = absl::DataLossError(absl::StrCat("the server sent a bad file name '", name, "'"));
        break;
      }
      if (parts.size() == 2 &&
          std::find(folders.begin(), folders.end(), parts[0]) == folders.end()) {
        if (::mkdir(absl::StrCat(partial, "/", parts[0]).c_str(), 0755) != 0) {
          failed =
              absl::PermissionDeniedError(absl::StrCat("cannot create ", partial, "/", parts[0]));
          break;
        }
        folders.push_back(parts[0]);
      }
      names.push_back(name);
      out.open(absl::StrCat(partial, "/", name), std::ios::binary | std::ios::trunc);
      digest = std::make_unique<Sha256>();
      expected = chunk.size();
      written = 0;
    }
    if (!out.is_open()) {
      failed = absl::DataLossError("the server sent data before a file name");
      break;
    }
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    digest->Update(chunk.data());
    written += static_cast<int64_t>(chunk.data().size());
    total += static_cast<int64_t>(chunk.data().size());
    if (progress) progress(total, 0);
    if (!chunk.sha256().empty()) {
      out.close();
      const std::string got = digest->HexDigest();
      if (!out || written != expected || got != chunk.sha256()) {
        failed = absl::DataLossError(absl::StrCat(name, ": got ", written, " bytes with SHA-256 ",
                                                  got, ", expected ", expected, " bytes with ",
                                                  chunk.sha256()));
      }
    }
  }
  if (!failed.ok()) context.TryCancel();
  grpc::Status s = reader->Finish();
  if (failed.ok() && !s.ok()) failed = FromGrpcStatus(s);
  if (failed.ok() && out.is_open()) failed = absl::DataLossError(name + ": cut short");
  if (failed.ok() && names.empty()) failed = absl::DataLossError("the server sent no files");
  if (failed.ok() && std::rename(partial.c_str(), output_dir.c_str()) != 0) {
    failed =
        absl::PermissionDeniedError(absl::StrCat("cannot rename ", partial, " to ", output_dir));
  }
  if (!failed.ok()) {
    cleanup();
    return failed;
  }
  return names;
}

absl::StatusOr<bool> Client::Healthy(const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + options_.timeout);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = stub->Check(&context, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

}  // namespace berth::client
