// berth.v1.ModelService: the registry of fine-tuned model versions and their aliases.
#include <algorithm>
#include <atomic>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/service/base_model.h"
#include "core/util/digest.h"
#include "core/util/files.h"
#include "core/util/log.h"
#include "core/util/status_macros.h"
#include "server/convert.h"
#include "server/metrics.h"
#include "server/services.h"
#include "server/status.h"

namespace berth::server {
namespace {

std::string ReadConfig(const store::Store& store, const store::ModelRecord& m) {
  auto text = ReadFileToString(JoinPath(store.data_dir(), JoinPath(m.path, "config.json")));
  return text.ok() ? *text : "";
}

constexpr size_t kExportChunkBytes = 1 << 20;

// Reads the import into memory (the archive, if any); when the client half-closes, imports on
// the request pool. A cancelled or failed stream imports nothing.
class ImportReactor final : public grpc::ServerReadReactor<v1::ImportModelRequest> {
 public:
  ImportReactor(grpc::CallbackServerContext* context, const ServiceContext& ctx,
                v1::ModelVersion* response)
      : context_(context), ctx_(ctx), response_(response) {
    if (absl::Status slot = AcquireUploadSlot(ctx_); !slot.ok()) {
      FinishWith(slot);
      return;
    }
    holds_slot_ = true;
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (context_->IsCancelled()) return FinishWith(absl::CancelledError("import cancelled"));
      if (!have_info_)
        return FinishWith(absl::InvalidArgumentError("info: the first message must carry info"));
      if (source_.kind != service::ImportSource::Kind::kArchive && !source_.archive.empty()) {
        return FinishWith(absl::InvalidArgumentError("data: only an archive import sends data"));
      }
      if (!ctx_.pool->TrySubmit([this] { FinishWith(Import()); })) {
        FinishWith(absl::ResourceExhaustedError("the server is busy; retry later"));
      }
      return;
    }
    if (!request_.sha256().empty()) source_.sha256 = request_.sha256();
    if (request_.has_info()) {
      if (have_info_) return FinishWith(absl::InvalidArgumentError("info: sent twice"));
      const v1::ImportModelInfo& info = request_.info();
      // Registering versions is an administrator's act, like moving an alias.
      if (auto caller = CheckAccess(ctx_, *context_, Permission::kAdmin, info.name());
          !caller.ok()) {
        return FinishWith(caller.status());
      }
      name_ = info.name();
      switch (info.source_case()) {
        case v1::ImportModelInfo::kDirectory:
          source_.kind = service::ImportSource::Kind::kDirectory;
          source_.location = info.directory();
          break;
        case v1::ImportModelInfo::kHubId:
          source_.kind = service::ImportSource::Kind::kHub;
          source_.location = info.hub_id();
          break;
        case v1::ImportModelInfo::kArchive:
          source_.kind = service::ImportSource::Kind::kArchive;
          break;
        default:
          return FinishWith(
              absl::InvalidArgumentError("info: give one source: directory, hub_id or archive"));
      }
      have_info_ = true;
    } else if (request_.part_case() == v1::ImportModelRequest::kData) {
      if (!have_info_)
        return FinishWith(absl::InvalidArgumentError("info: the first message must carry info"));
      if (absl::Status s =
              AppendUploadChunk(ctx_, request_.data(), "the archive", &source_.archive);
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
  void ReleaseSlot() {
    if (holds_slot_.exchange(false)) --ctx_.live->uploads;
  }
  void FinishWith(const absl::Status& s) {
    ReleaseSlot();
    Finish(ToGrpcStatus(s));
  }

  absl::Status Import() {
    ASSIGN_OR_RETURN(store::ModelRecord m, ctx_.importer->Import(name_, source_));
    // Loaded into the registry now, so the first Classify does not wait for it (an engine
    // that does not fit the memory budget is only logged: the version is registered).
    LogIfError(ctx_.registry->Acquire({m.name, m.version, ""}).status(), "model.warmup_failed",
               {{"model", m.name}, {"version", std::to_string(m.version)}});
    ToProto(m, ReadConfig(*ctx_.store, m), response_);
    return absl::OkStatus();
  }

  grpc::CallbackServerContext* const context_;
  const ServiceContext ctx_;
  v1::ModelVersion* const response_;
  v1::ImportModelRequest request_;
  bool have_info_ = false;
  std::atomic<bool> holds_slot_{false};  // counted in live->uploads
  std::string name_;
  service::ImportSource source_;
};

// Streams a version's files, 1 MiB at a time; each read happens on the request pool.
class ExportReactor final : public grpc::ServerWriteReactor<v1::ExportModelChunk> {
 public:
  ExportReactor(const ServiceContext& ctx, std::vector<service::ModelFile> files)
      : ctx_(ctx), files_(std::move(files)) {
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Done(absl::CancelledError("the reader went away"));
    Next();
  }

  void OnDone() override {
    --ctx_.live->streams;
    delete this;
  }

 private:
  void Next() {
    if (!ctx_.pool->TrySubmit([this] { ReadChunk(); })) {
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
    if (index_ >= files_.size()) return Done(absl::OkStatus());
    const service::ModelFile& f = files_[index_];
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

  const ServiceContext ctx_;
  const std::vector<service::ModelFile> files_;
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
  return new ImportReactor(context, ctx_, response);
}

grpc::ServerWriteReactor<v1::ExportModelChunk>* ModelServiceImpl::ExportModel(
    grpc::CallbackServerContext* context, const v1::ExportModelRequest* request) {
  const std::string name = request->model().substr(0, request->model().find_first_of(":@"));
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify, name);
  absl::Status s = caller.status();
  std::vector<service::ModelFile> files;
  if (s.ok()) {
    auto ref =
        service::ParseModelRef(request->model(), request->version(), request->alias(), "model");
    auto m = ref.ok() ? ctx_.store->GetModel(ref->name, ref->version, ref->alias)
                      : absl::StatusOr<store::ModelRecord>(ref.status());
    auto listed = m.ok() ? service::ListModelFiles(*ctx_.store, *m)
                         : absl::StatusOr<std::vector<service::ModelFile>>(m.status());
    s = listed.status();
    if (s.ok()) files = std::move(*listed);
  }
  if (s.ok()) s = AcquireStreamSlot(ctx_);
  if (!s.ok()) {
    class Failed final : public grpc::ServerWriteReactor<v1::ExportModelChunk> {
     public:
      explicit Failed(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
      void OnDone() override { delete this; }
    };
    return new Failed(s);
  }
  return new ExportReactor(ctx_, std::move(files));
}

grpc::ServerUnaryReactor* ModelServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                       const v1::ListModelsRequest* /*request*/,
                                                       v1::ListModelsResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify, "");
  if (!caller.ok()) return FinishWith(context, caller.status());
  auto models = ctx_.store->ListModels();
  if (models.ok()) {
    for (const store::ModelRecord& m : *models) {
      // A token limited to a model prefix sees only those models.
      if (*caller && !Authorize(**caller, Permission::kClassify, m.name).ok()) continue;
      ToProto(m, "", response->add_models());
    }
  }
  return FinishWith(context, models.status());
}

grpc::ServerUnaryReactor* ModelServiceImpl::GetModel(grpc::CallbackServerContext* context,
                                                     const v1::GetModelRequest* request,
                                                     v1::ModelVersion* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kClassify,
                            request->model().substr(0, request->model().find_first_of(":@")));
  if (!caller.ok()) return FinishWith(context, caller.status());
  auto ref =
      service::ParseModelRef(request->model(), request->version(), request->alias(), "model");
  if (!ref.ok()) return FinishWith(context, ref.status());
  auto m = ctx_.store->GetModel(ref->name, ref->version, ref->alias);
  if (m.ok()) ToProto(*m, ReadConfig(*ctx_.store, *m), response);
  return FinishWith(context, m.status());
}

grpc::ServerUnaryReactor* ModelServiceImpl::DeleteModel(grpc::CallbackServerContext* context,
                                                        const v1::DeleteModelRequest* request,
                                                        v1::DeleteModelResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kAdmin, request->name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  absl::Status s = store::ValidateName(request->name(), "name");
  if (s.ok() && request->version() < 0)
    s = absl::InvalidArgumentError("version: must not be negative");
  if (!s.ok()) return FinishWith(context, s);
  // Evicting joins the model's batcher thread and removing files takes time: on the pool.
  return RunOnPool(context, ctx_.pool, [this, request, response]() -> absl::Status {
    std::vector<store::ModelRecord> victims;
    ASSIGN_OR_RETURN(std::vector<store::ModelRecord> all, ctx_.store->ListModels());
    for (const store::ModelRecord& m : all) {
      if (m.name == request->name() &&
          (request->version() == 0 || m.version == request->version())) {
        victims.push_back(m);
      }
    }
    RETURN_IF_ERROR(ctx_.store->DeleteModel(
        request->name(), request->version(), [request](const std::string& base) {
          return service::BaseModelUses(base, request->name(), request->version());
        }));
    ctx_.registry->Evict(request->name(), request->version());
    for (const store::ModelRecord& m : victims) {
      response->add_deleted_versions(m.version);
      // The rows are gone, so nothing can find these files any more; a failure leaves garbage,
      // never a dangling version.
      LogIfError(RemoveAll(JoinPath(ctx_.store->data_dir(), m.path)), "model.cleanup_failed",
                 {{"model", m.name}, {"version", std::to_string(m.version)}});
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ModelServiceImpl::SetAlias(grpc::CallbackServerContext* context,
                                                     const v1::SetAliasRequest* request,
                                                     v1::SetAliasResponse* response) {
  auto caller = CheckAccess(ctx_, *context, Permission::kAdmin, request->name());
  if (!caller.ok()) return FinishWith(context, caller.status());
  absl::Status s = store::ValidateName(request->name(), "name");
  if (s.ok()) s = store::ValidateName(request->alias(), "alias");
  if (s.ok() && request->version() <= 0)
    s = absl::InvalidArgumentError("version: must be a positive version number");
  if (!s.ok()) return FinishWith(context, s);
  auto previous = ctx_.store->GetModel(request->name(), 0, request->alias());
  s = ctx_.store->SetAlias(request->name(), request->alias(), request->version());
  if (s.ok()) response->set_previous_version(previous.ok() ? previous->version : 0);
  return FinishWith(context, s);
}

}  // namespace berth::server
