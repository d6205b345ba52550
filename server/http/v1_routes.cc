// Berth's own API over HTTP (/v1): datasets, fine-tuning jobs with their events as Server-Sent
// Events, and the model registry, over the training and model facades. Bodies are the berth.v1
// messages in the proto3 JSON mapping (the gRPC API's vocabulary, one source for both: field
// names as in the .proto, lowerCamelCase accepted on input, 64-bit integers as strings, enums by
// name), as grpc-gateway and Google's REST APIs map them.
#include <google/protobuf/util/json_util.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "berth/v1/models.pb.h"
#include "berth/v1/training.pb.h"
#include "core/service/model_import.h"
#include "core/service/model_ref.h"
#include "core/util/status_macros.h"
#include "core/util/tar.h"
#include "server/convert.h"
#include "server/http/routes.h"
#include "server/services.h"
#include "server/status.h"

namespace berth::server::http {
namespace {

namespace pbutil = google::protobuf::util;

// A berth.v1 message from a JSON body ("" reads as {}); a field it does not know, or of the
// wrong type, is a 400 that names it.
template <typename Message>
absl::StatusOr<Message> FromJson(const HttpRequest& req) {
  Message m;
  pbutil::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const std::string& body = req.body.empty() ? "{}" : req.body;
  auto s = pbutil::JsonStringToMessage(body, &m, options);
  if (!s.ok()) return MalformedRequest(absl::StrCat("request body: ", s.message().as_string()));
  return m;
}

std::string ToJson(const google::protobuf::Message& m) {
  pbutil::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  auto s = pbutil::MessageToJsonString(m, &out, options);
  return s.ok() ? out : "{}";
}

HttpResponse MessageResponse(int status, const google::protobuf::Message& m) {
  return JsonResponse(status, ToJson(m));
}

absl::StatusOr<int64_t> QueryInt(const HttpRequest& req, const std::string& key) {
  auto it = req.query.find(key);
  if (it == req.query.end() || it->second.empty()) return 0;
  int64_t v = 0;
  if (!absl::SimpleAtoi(it->second, &v))
    return MalformedRequest(absl::StrCat(key, ": not an integer"));
  return v;
}

absl::StatusOr<bool> QueryBool(const HttpRequest& req, const std::string& key) {
  auto it = req.query.find(key);
  if (it == req.query.end() || it->second.empty()) return false;
  if (it->second == "true" || it->second == "1") return true;
  if (it->second == "false" || it->second == "0") return false;
  return MalformedRequest(absl::StrCat(key, ": must be true or false"));
}

std::string Query(const HttpRequest& req, const std::string& key) {
  auto it = req.query.find(key);
  return it == req.query.end() ? "" : it->second;
}

absl::StatusOr<int64_t> PathVersion(const HttpRequest& req) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(req.params.at("version"), &v) || v < 1)
    return MalformedRequest("version: must be a positive integer");
  return v;
}

// Fills an upload's buffer from a body read whole, in the chunks its limits count.
absl::Status Fill(service::Upload& upload, const std::string& body) {
  constexpr size_t kChunk = 4 << 20;
  for (size_t at = 0; at < body.size(); at += kChunk) {
    RETURN_IF_ERROR(upload.bytes.Append(absl::string_view(body).substr(at, kChunk)));
  }
  return absl::OkStatus();
}

// --- datasets and jobs -------------------------------------------------------------------

// POST /v1/datasets?file_name=train.csv[&text_column=..&text_pair_column=..&label_column=..
// &multi_label=true&sha256=HEX], the file as the body.
HttpResponse UploadDataset(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kTrain, "").status());
    v1::DatasetInfo info;
    info.set_file_name(Query(req, "file_name"));
    info.set_text_column(Query(req, "text_column"));
    info.set_text_pair_column(Query(req, "text_pair_column"));
    info.set_label_column(Query(req, "label_column"));
    ASSIGN_OR_RETURN(bool multi_label, QueryBool(req, "multi_label"));
    info.set_multi_label(multi_label);
    const data::DatasetOptions columns = ToDatasetOptions(info);
    RETURN_IF_ERROR(jobs::ValidateUpload(info.file_name(), columns));
    ASSIGN_OR_RETURN(service::Upload upload, ctx.training->BeginUpload());
    RETURN_IF_ERROR(Fill(upload, req.body));
    req.body.clear();
    ASSIGN_OR_RETURN(jobs::StoredDataset stored,
                     ctx.training->PutDataset(upload.bytes.bytes(), info.file_name(), columns,
                                              Query(req, "sha256")));
    v1::UploadDatasetResponse out;
    ToProto(stored, &out);
    return MessageResponse(stored.already_present ? 200 : 201, out);
  });
}

// POST /v1/jobs: a StartTrainingRequest; an Idempotency-Key header is its request_id.
HttpResponse CreateJob(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(v1::StartTrainingRequest request, FromJson<v1::StartTrainingRequest>(req));
    if (auto key = req.Header("idempotency-key"); key) request.set_request_id(std::string(*key));
    ASSIGN_OR_RETURN(auto caller, CheckAccess(ctx, req, Permission::kTrain, request.model_name()));
    ASSIGN_OR_RETURN(
        jobs::Submission sub,
        ctx.training->Submit(ToJobSpec(request), request.request_id(), AsSubmitter(caller)));
    v1::StartTrainingResponse out;
    ToProto(sub, &out);
    HttpResponse r = MessageResponse(sub.existed ? 200 : 201, out);
    r.headers.emplace_back("Location", absl::StrCat("/v1/jobs/", sub.job.id));
    return r;
  });
}

HttpResponse GetJob(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(auto caller, CheckAccess(ctx, req, Permission::kSeeJobs, ""));
    ASSIGN_OR_RETURN(store::JobRecord job,
                     ctx.training->Get(req.params.at("job_id"), AsSubmitter(caller)));
    v1::JobStatus out;
    ToProto(job, &out);
    return MessageResponse(200, out);
  });
}

HttpResponse CancelJob(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(auto caller, CheckAccess(ctx, req, Permission::kTrain, ""));
    ASSIGN_OR_RETURN(store::JobRecord job,
                     ctx.training->Cancel(req.params.at("job_id"), AsSubmitter(caller)));
    v1::JobStatus out;
    ToProto(job, &out);
    return MessageResponse(200, out);
  });
}

// GET /v1/jobs[?state=JOB_STATE_RUNNING&page_size=N&page_token=T]
HttpResponse ListJobs(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(auto caller, CheckAccess(ctx, req, Permission::kSeeJobs, ""));
    v1::ListJobsRequest request;
    if (std::string state = Query(req, "state"); !state.empty()) {
      v1::JobState s;
      if (!v1::JobState_Parse(state, &s) &&
          !v1::JobState_Parse(absl::StrCat("JOB_STATE_", absl::AsciiStrToUpper(state)), &s)) {
        return MalformedRequest(
            "state: must be one of queued, running, succeeded, failed, cancelled");
      }
      request.set_state(s);
    }
    ASSIGN_OR_RETURN(int64_t page_size, QueryInt(req, "page_size"));
    if (page_size < 0 || page_size > INT32_MAX)
      return MalformedRequest("page_size: must be between 0 and 1000");
    request.set_page_size(static_cast<int32_t>(page_size));
    request.set_page_token(Query(req, "page_token"));
    ASSIGN_OR_RETURN(jobs::JobPage page,
                     ctx.training->List(FromProto(request), AsSubmitter(caller)));
    v1::ListJobsResponse out;
    ToProto(page, &out);
    return MessageResponse(200, out);
  });
}

// GET /v1/training-defaults (GetTrainingDefaults).
HttpResponse TrainingDefaults(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kSeeJobs, "").status());
    v1::StartTrainingRequest out;
    ToProto(ctx.training->Defaults(), &out);
    return MessageResponse(200, out);
  });
}

// GET /v1/jobs/{job_id}/log[?after_id=N&page_size=N]: the job's history, oldest first.
HttpResponse JobLog(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(auto caller, CheckAccess(ctx, req, Permission::kSeeJobs, ""));
    ASSIGN_OR_RETURN(int64_t after_id, QueryInt(req, "after_id"));
    ASSIGN_OR_RETURN(int64_t page_size, QueryInt(req, "page_size"));
    ASSIGN_OR_RETURN(
        std::vector<store::JobEvent> events,
        ctx.training->Events(req.params.at("job_id"), after_id, page_size, AsSubmitter(caller)));
    v1::ListJobEventsResponse out;
    ToProto(events, &out);
    return MessageResponse(200, out);
  });
}

// The events of a watched job: `next` waits for a change (or a keep-alive period) and yields
// one event; after a terminal state it yields that and ends.
class JobEvents {
 public:
  explicit JobEvents(std::shared_ptr<std::atomic<int>> open) : open_(std::move(open)) {}
  ~JobEvents() {
    watch_.reset();  // unsubscribes (waiting for a change being told) first
    --*open_;
  }

  static constexpr auto kKeepAlive = std::chrono::seconds(15);

  absl::Status Start(const HttpContext& ctx, const std::string& job_id,
                     const jobs::Submitter& who) {
    auto w = ctx.training->Watch(job_id, who, [this] {
      std::lock_guard<std::mutex> lock(mu_);
      changed_ = true;
      cv_.notify_all();
    });
    if (!w.ok()) return w.status();
    watch_ = std::move(*w);
    return absl::OkStatus();
  }

  bool Next(std::string* event) {
    if (done_) return false;
    if (sent_ > 0) {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, kKeepAlive, [this] { return changed_; })) return true;
      changed_ = false;
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      changed_ = false;
    }
    auto job = watch_->Latest();
    if (!job.ok()) {
      *event = absl::StrCat(
          "event: error\ndata: ", CompactJson(Json{{"error", job.status().message()}}), "\n\n");
      done_ = true;
      return false;
    }
    v1::JobStatus status;
    ToProto(*job, &status);
    // The kind of change: a new state, a new evaluation, else progress (the loss, the step).
    const char* kind = "progress";
    if (sent_ == 0 || status.state() != last_.state()) {
      kind = "state";
    } else if (status.progress().last_eval().update() != last_.progress().last_eval().update() ||
               (status.progress().has_last_eval() && !last_.progress().has_last_eval())) {
      kind = "evaluation";
    }
    *event = absl::StrCat("id: ", ++sent_, "\nevent: ", kind, "\ndata: ", ToJson(status), "\n\n");
    last_ = status;
    done_ = store::IsTerminal(job->state);
    return !done_;
  }

 private:
  const std::shared_ptr<std::atomic<int>> open_;  // the streams open, this one included
  std::unique_ptr<jobs::JobWatch> watch_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool changed_ = false;
  bool done_ = false;
  int64_t sent_ = 0;
  v1::JobStatus last_;
};

// GET /v1/jobs/{job_id}/events: Server-Sent Events, `state`, `progress` and `evaluation`, each
// with the job's status as its data, until the job ends.
HttpResponse JobEventsRoute(const HttpContext& ctx, HttpRequest& req,
                            const std::shared_ptr<std::atomic<int>>& open) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(auto caller, CheckAccess(ctx, req, Permission::kSeeJobs, ""));
    if (++*open > ctx.max_event_streams) {
      --*open;
      return absl::ResourceExhaustedError(
          absl::StrCat("event streams: this server serves at most ", ctx.max_event_streams,
                       " at once (a quarter of --request-threads); poll GET /v1/jobs/{job_id} or "
                       "watch over gRPC (WatchJob)"));
    }
    auto events = std::make_shared<JobEvents>(open);
    RETURN_IF_ERROR(events->Start(ctx, req.params.at("job_id"), AsSubmitter(caller)));
    HttpResponse r;
    r.content_type = "text/event-stream";
    r.next_event = [events](std::string* event) { return events->Next(event); };
    return r;
  });
}

// --- models --------------------------------------------------------------------------------

HttpResponse ListModels(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(auto caller, CheckAccess(ctx, req, Permission::kClassify, ""));
    ASSIGN_OR_RETURN(
        std::vector<store::ModelRecord> models,
        ctx.models->List([&](const std::string& name) { return MaySee(caller, name); }));
    v1::ListModelsResponse out;
    for (const store::ModelRecord& m : models) ToProto(m, "", out.add_models());
    return MessageResponse(200, out);
  });
}

// GET /v1/loaded-models (ListLoadedModels).
HttpResponse ListLoadedModels(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(auto caller, CheckAccess(ctx, req, Permission::kClassify, ""));
    v1::ListLoadedModelsResponse out;
    for (const service::ModelStatistics& m : ctx.inference->Loaded()) {
      if (MaySee(caller, m.name)) ToProto(m, out.add_models());
    }
    return MessageResponse(200, out);
  });
}

// GET /v1/models/{model}: NAME (the latest version), NAME:VERSION or NAME@ALIAS.
HttpResponse GetModel(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    const std::string& model = req.params.at("model");
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, model).status());
    ASSIGN_OR_RETURN(service::ModelVersionInfo m, ctx.models->Get({model, 0, ""}));
    v1::ModelVersion out;
    ToProto(m.record, m.config_json, &out);
    return MessageResponse(200, out);
  });
}

// DELETE /v1/models/{name} (every version) and /v1/models/{name}/versions/{version}.
HttpResponse DeleteModel(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    const std::string& name = req.params.at("name");
    int64_t version = 0;
    if (req.params.count("version")) {
      ASSIGN_OR_RETURN(version, PathVersion(req));
    }
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kAdmin, name).status());
    ASSIGN_OR_RETURN(std::vector<int64_t> deleted, ctx.models->Delete(name, version));
    v1::DeleteModelResponse out;
    for (int64_t v : deleted) out.add_deleted_versions(v);
    return MessageResponse(200, out);
  });
}

// PUT /v1/models/{name}/aliases/{alias} {"version": N}
HttpResponse SetAlias(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    ASSIGN_OR_RETURN(v1::SetAliasRequest request, FromJson<v1::SetAliasRequest>(req));
    request.set_name(req.params.at("name"));
    request.set_alias(req.params.at("alias"));
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kAdmin, request.name()).status());
    ASSIGN_OR_RETURN(int64_t previous,
                     ctx.models->SetAlias(request.name(), request.alias(), request.version()));
    v1::SetAliasResponse out;
    out.set_previous_version(previous);
    return MessageResponse(200, out);
  });
}

// POST /v1/models/{name}/versions: a tar archive as the body (Content-Type application/x-tar,
// ?sha256=HEX optional), or JSON naming a source: {"directory": PATH} or {"hub_id": ID}.
HttpResponse ImportModel(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    const std::string& name = req.params.at("name");
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kAdmin, name).status());
    const auto type = req.Header("content-type");
    const bool archive = type && absl::StartsWithIgnoreCase(*type, "application/x-tar");
    v1::ImportModelInfo info;
    if (archive) {
      info.set_archive(true);
    } else {
      ASSIGN_OR_RETURN(info, FromJson<v1::ImportModelInfo>(req));
      if (info.archive()) {
        return MalformedRequest(
            "archive: send the tar as the body (Content-Type: application/x-tar)");
      }
    }
    info.set_name(name);
    service::ImportSource source = ToImportSource(info);
    RETURN_IF_ERROR(service::Models::CheckImportSource(source));
    ASSIGN_OR_RETURN(service::Upload upload, ctx.models->BeginImport());
    if (archive) {
      RETURN_IF_ERROR(Fill(upload, req.body));
      req.body.clear();
      source.archive = std::move(upload.bytes.bytes());
      if (std::string sha = Query(req, "sha256"); !sha.empty()) source.sha256 = sha;
    }
    ASSIGN_OR_RETURN(service::ModelVersionInfo m, ctx.models->Import(name, source));
    v1::ModelVersion out;
    ToProto(m.record, m.config_json, &out);
    HttpResponse r = MessageResponse(201, out);
    r.headers.emplace_back("Location",
                           absl::StrCat("/v1/models/", m.record.name, ":", m.record.version));
    return r;
  });
}

// A version's files as a ustar archive, a file at a time (1 MiB reads), as the gRPC export
// streams them: the archive `berth import` and POST .../versions read back.
class TarStream {
 public:
  explicit TarStream(service::Models::Export files) : export_(std::move(files)) {}

  bool Next(std::string* chunk) {
    constexpr size_t kRead = 1 << 20;
    if (index_ >= export_.files.size()) {
      if (!ended_) *chunk = std::string(1024, '\0');  // the end-of-archive marker
      ended_ = true;
      return false;
    }
    const service::ModelFile& f = export_.files[index_];
    if (!in_.is_open()) {
      in_.open(f.path, std::ios::binary);
      if (!in_) {  // the archive stops short: the reader sees a truncated stream
        index_ = export_.files.size();
        ended_ = true;
        return false;
      }
      *chunk = TarHeader(f.name, f.size);
      left_ = f.size;
    }
    std::string buf(std::min<int64_t>(kRead, left_), '\0');
    in_.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (static_cast<size_t>(in_.gcount()) != buf.size()) {  // changed under us: stop short
      index_ = export_.files.size();
      ended_ = true;
      return false;
    }
    left_ -= static_cast<int64_t>(buf.size());
    chunk->append(buf);
    if (left_ == 0) {
      chunk->append(TarPadding(f.size), '\0');
      in_.close();
      ++index_;
    }
    return true;
  }

 private:
  const service::Models::Export export_;  // the files, and the stream slot held meanwhile
  size_t index_ = 0;
  std::ifstream in_;
  int64_t left_ = 0;
  bool ended_ = false;
};

// GET /v1/models/{model}/export: application/x-tar.
HttpResponse ExportModel(const HttpContext& ctx, HttpRequest& req) {
  return Answer([&]() -> absl::StatusOr<HttpResponse> {
    const std::string& model = req.params.at("model");
    RETURN_IF_ERROR(CheckAccess(ctx, req, Permission::kClassify, model).status());
    ASSIGN_OR_RETURN(service::Models::Export files, ctx.models->ExportFiles({model, 0, ""}));
    auto tar = std::make_shared<TarStream>(std::move(files));
    HttpResponse r;
    r.content_type = "application/x-tar";
    std::string file = service::ModelRefName(model);
    r.headers.emplace_back("Content-Disposition",
                           absl::StrCat("attachment; filename=\"", file, ".tar\""));
    r.next_event = [tar](std::string* chunk) { return tar->Next(chunk); };
    return r;
  });
}

}  // namespace

void AddV1Routes(const HttpContext& ctx, Router* router) {
  auto route = [&ctx](HttpResponse (*f)(const HttpContext&, HttpRequest&)) {
    return [ctx, f](HttpRequest& req) { return f(ctx, req); };
  };
  const int64_t upload_limit = ctx.max_upload_bytes;
  router->Add("POST", "/v1/datasets", route(UploadDataset), RouteOptions{true, upload_limit});
  router->Add("POST", "/v1/jobs", route(CreateJob));
  router->Add("GET", "/v1/jobs", route(ListJobs));
  router->Add("GET", "/v1/jobs/{job_id}", route(GetJob));
  router->Add("POST", "/v1/jobs/{job_id}/cancel", route(CancelJob));
  router->Add("GET", "/v1/jobs/{job_id}/log", route(JobLog));
  router->Add("GET", "/v1/training-defaults", route(TrainingDefaults));
  auto open = std::make_shared<std::atomic<int>>(0);
  router->Add("GET", "/v1/jobs/{job_id}/events",
              [ctx, open](HttpRequest& req) { return JobEventsRoute(ctx, req, open); });
  router->Add("GET", "/v1/models", route(ListModels));
  router->Add("GET", "/v1/loaded-models", route(ListLoadedModels));
  router->Add("GET", "/v1/models/{model}", route(GetModel));
  router->Add("DELETE", "/v1/models/{name}", route(DeleteModel));
  router->Add("DELETE", "/v1/models/{name}/versions/{version}", route(DeleteModel));
  router->Add("PUT", "/v1/models/{name}/aliases/{alias}", route(SetAlias));
  router->Add("POST", "/v1/models/{name}/versions", route(ImportModel),
              RouteOptions{true, upload_limit});
  router->Add("GET", "/v1/models/{model}/export", route(ExportModel));
}

}  // namespace berth::server::http
