// berth.v1.ModelService: the registry of model versions and their aliases, over the model
// facade.
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/service/model_ref.h"
#include "core/util/digest.h"
#include "core/util/status_macros.h"
#include "server/convert.h"
#include "server/services.h"
#include "server/status.h"
#include "server/upload_reactor.h"

namespace berth::server {
namespace {

constexpr size_t kExportChunkBytes = 1 << 20;

// Streams a version's files, 1 MiB at a time; each read happens on the request pool.
class ExportReactor final : public grpc::ServerWriteReactor<v1::ExportModelChunk> {
 public:
  ExportReactor(ThreadPool* pool, service::Models::Export files)
      : pool_(pool), export_(std::move(files)) {
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Done(absl::CancelledError("the reader went away"));
    Next();
  }

  void OnDone() override { delete this; }

 private:
  void Next() {
    if (!pool_->TrySubmit([this] { ReadChunk(); })) {
      Done(absl::ResourceExhaustedError("the server is busy; retry later"));
    }
  }

  // Finish is called outside any lock: gRPC may run OnDone (which deletes this) at once.
  void Done(const absl::Status& s) {
    if (finished_.exchange(true)) return;
    Finish(ToGrpcStatus(s));
  }

  // Fills chunk_ with the next piece and writes it (or finishes after the last file).
  void ReadChunk() {
    chunk_.Clear();
    if (index_ >= export_.files.size()) return Done(absl::OkStatus());
    const service::ModelFile& f = export_.files[index_];
    if (!in_.is_open()) {
      in_.open(f.path, std::ios::binary);
      if (!in_) return Done(absl::DataLossError(absl::StrCat("cannot read ", f.name)));
      digest_ = std::make_unique<Sha256>();
      chunk_.set_path(f.name);
      chunk_.set_size(f.size);
    }
    std::string buf(kExportChunkBytes, '\0');
    in_.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    buf.resize(static_cast<size_t>(in_.gcount()));
    if (in_.bad()) return Done(absl::DataLossError(absl::StrCat("reading ", f.name, " failed")));
    digest_->Update(buf);
    chunk_.set_data(std::move(buf));
    if (in_.eof() || in_.peek() == std::char_traits<char>::eof()) {
      chunk_.set_sha256(digest_->HexDigest());
      in_.close();
      ++index_;
    }
    if (!finished_.load()) StartWrite(&chunk_);
  }

  ThreadPool* const pool_;
  const service::Models::Export export_;  // the files, and the stream slot held meanwhile
  // One step runs at a time (a pool task, or OnWriteDone): the next is started only when the
  // write the last one issued is done, so these need no lock.
  size_t index_ = 0;
  std::ifstream in_;
  std::unique_ptr<Sha256> digest_;
  v1::ExportModelChunk chunk_;
  std::atomic<bool> finished_{false};
};

}  // namespace

grpc::ServerReadReactor<v1::ImportModelRequest>* ModelServiceImpl::ImportModel(
    grpc::CallbackServerContext* context, v1::ModelVersion* response) {
  auto name = std::make_shared<std::string>();
  auto source = std::make_shared<service::ImportSource>();
  // Registering versions is an administrator's act, like moving an alias: checked once the
  // first message names the model.
  auto on_info = [this, context, name, source](const v1::ImportModelInfo& info) {
    RETURN_IF_ERROR(CheckAccess(ctx_, *context, Permission::kAdmin, info.name()).status());
    *name = info.name();
    *source = ToImportSource(info);
    return service::Models::CheckImportSource(*source);
  };
  auto on_end = [this, name, source, response](std::string& bytes, const std::string& sha256) {
    source->archive = std::move(bytes);
    if (!sha256.empty()) source->sha256 = sha256;
    ASSIGN_OR_RETURN(service::ModelVersionInfo m, ctx_.models->Import(*name, *source));
    ToProto(m.record, m.config_json, response);
    return absl::OkStatus();
  };
  return new UploadReactor<v1::ImportModelRequest>(context, ctx_.pool, ctx_.models->BeginImport(),
                                                   "import cancelled", on_info, on_end);
}

grpc::ServerWriteReactor<v1::ExportModelChunk>* ModelServiceImpl::ExportModel(
    grpc::CallbackServerContext* context, const v1::ExportModelRequest* request) {
  auto caller =
      CheckAccess(ctx_, *context, Permission::kClassify, service::ModelRefName(request->model()));
  auto files = caller.ok() ? ctx_.models->ExportFiles(ToSelector(*request))
                           : absl::StatusOr<service::Models::Export>(caller.status());
  if (!files.ok()) return new RefusedWriter<v1::ExportModelChunk>(files.status());
  return new ExportReactor(ctx_.pool, std::move(*files));
}

grpc::ServerUnaryReactor* ModelServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                       const v1::ListModelsRequest* /*request*/,
                                                       v1::ListModelsResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify, "");
  if (!caller.ok()) return FinishWith(context, caller.status());
  // A token limited to a model prefix sees only those models.
  auto models = ctx_.models->List([&](const std::string& name) { return MaySee(*caller, name); });
  if (models.ok()) {
    for (const store::ModelRecord& m : *models) ToProto(m, "", response->add_models());
  }
  return FinishWith(context, models.status());
}

grpc::ServerUnaryReactor* ModelServiceImpl::ListLoadedModels(
    grpc::CallbackServerContext* context, const v1::ListLoadedModelsRequest* /*request*/,
    v1::ListLoadedModelsResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify, "");
  if (!caller.ok()) return FinishWith(context, caller.status());
  for (const service::ModelStatistics& m : ctx_.inference->Loaded()) {
    if (MaySee(*caller, m.name)) ToProto(m, response->add_models());
  }
  return FinishWith(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* ModelServiceImpl::GetModel(grpc::CallbackServerContext* context,
                                                     const v1::GetModelRequest* request,
                                                     v1::ModelVersion* response) {
  auto caller =
      CheckAccess(ctx_, *context, Permission::kClassify, service::ModelRefName(request->model()));
  if (!caller.ok()) return FinishWith(context, caller.status());
  auto m = ctx_.models->Get(ToSelector(*request));
  if (m.ok()) ToProto(m->record, m->config_json, response);
  return FinishWith(context, m.status());
}

grpc::ServerUnaryReactor* ModelServiceImpl::DeleteModel(grpc::CallbackServerContext* context,
                                                        const v1::DeleteModelRequest* request,
                                                        v1::DeleteModelResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kAdmin, request->name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  // Evicting joins the model's batcher thread and removing files takes time: on the pool.
  return RunOnPool(context, ctx_.pool, [this, request, response]() -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<int64_t> deleted,
                     ctx_.models->Delete(request->name(), request->version()));
    for (int64_t v : deleted) response->add_deleted_versions(v);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ModelServiceImpl::SetAlias(grpc::CallbackServerContext* context,
                                                     const v1::SetAliasRequest* request,
                                                     v1::SetAliasResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kAdmin, request->name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  auto previous = ctx_.models->SetAlias(request->name(), request->alias(), request->version());
  if (previous.ok()) response->set_previous_version(*previous);
  return FinishWith(context, previous.status());
}

}  // namespace berth::server
