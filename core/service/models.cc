// The registry of model versions and aliases, as the front doors see it.
#include "core/service/models.h"

#include "absl/strings/str_cat.h"
#include "core/service/base_model.h"
#include "core/service/model_ref.h"
#include "core/util/files.h"
#include "core/util/log.h"
#include "core/util/status_macros.h"

namespace berth::service {

std::string Models::ReadConfig(const store::ModelRecord& m) const {
  auto text = ReadFileToString(JoinPath(store_->data_dir(), JoinPath(m.path, "config.json")));
  return text.ok() ? *text : "";
}

absl::StatusOr<std::vector<store::ModelRecord>> Models::List(
    const std::function<bool(const std::string&)>& visible) const {
  ASSIGN_OR_RETURN(std::vector<store::ModelRecord> all, store_->ListModels());
  if (!visible) return all;
  std::vector<store::ModelRecord> out;
  for (store::ModelRecord& m : all) {
    if (visible(m.name)) out.push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<ModelVersionInfo> Models::Get(const ModelSelector& model) const {
  ASSIGN_OR_RETURN(ModelRef ref, ParseModelRef(model.model, model.version, model.alias, "model"));
  ModelVersionInfo out;
  ASSIGN_OR_RETURN(out.record, store_->GetModel(ref.name, ref.version, ref.alias));
  out.config_json = ReadConfig(out.record);
  return out;
}

absl::StatusOr<std::vector<int64_t>> Models::Delete(const std::string& name,
                                                    int64_t version) const {
  RETURN_IF_ERROR(store::ValidateName(name, "name"));
  if (version < 0) return absl::InvalidArgumentError("version: must not be negative");
  std::vector<store::ModelRecord> victims;
  ASSIGN_OR_RETURN(std::vector<store::ModelRecord> all, store_->ListModels());
  for (const store::ModelRecord& m : all) {
    if (m.name == name && (version == 0 || m.version == version)) victims.push_back(m);
  }
  // The rows go first, in one transaction: from then on nothing can find these versions.
  RETURN_IF_ERROR(store_->DeleteModel(
      name, version, [&](const std::string& base) { return BaseModelUses(base, name, version); }));
  // Evicting joins the version's batcher thread; calls holding it finish on it.
  registry_->Evict(name, version);
  std::vector<int64_t> deleted;
  for (const store::ModelRecord& m : victims) {
    deleted.push_back(m.version);
    // A failure leaves garbage, never a dangling version.
    LogIfError(RemoveAll(JoinPath(store_->data_dir(), m.path)), "model.cleanup_failed",
               {{"model", m.name}, {"version", std::to_string(m.version)}});
  }
  return deleted;
}

absl::StatusOr<int64_t> Models::SetAlias(const std::string& name, const std::string& alias,
                                         int64_t version) const {
  RETURN_IF_ERROR(store::ValidateName(name, "name"));
  RETURN_IF_ERROR(store::ValidateName(alias, "alias"));
  if (version <= 0) return absl::InvalidArgumentError("version: must be a positive version number");
  auto previous = store_->GetModel(name, 0, alias);
  RETURN_IF_ERROR(store_->SetAlias(name, alias, version));
  return previous.ok() ? previous->version : 0;
}

absl::StatusOr<Upload> Models::BeginImport() const {
  ASSIGN_OR_RETURN(Slots::Held slot, uploads_->Take());
  return Upload{std::move(slot), UploadBuffer(limits_.max_upload_bytes, "the archive", observer_)};
}

absl::Status Models::CheckImportSource(const ImportSource& source) {
  if (source.kind == ImportSource::Kind::kUnset)
    return absl::InvalidArgumentError("info: give one source: directory, hub_id or archive");
  return absl::OkStatus();
}

absl::StatusOr<ModelVersionInfo> Models::Import(const std::string& name,
                                                const ImportSource& source) const {
  if (source.kind != ImportSource::Kind::kArchive && !source.archive.empty())
    return absl::InvalidArgumentError("data: only an archive import sends data");
  ASSIGN_OR_RETURN(store::ModelRecord m, importer_->Import(name, source));
  // Loaded into the registry now, so the first Classify does not wait for it (an engine that
  // does not fit the memory budget is only logged: the version is registered).
  LogIfError(registry_->Acquire({m.name, m.version, ""}).status(), "model.warmup_failed",
             {{"model", m.name}, {"version", std::to_string(m.version)}});
  return ModelVersionInfo{m, ReadConfig(m)};
}

absl::StatusOr<Models::Export> Models::ExportFiles(const ModelSelector& model) const {
  ASSIGN_OR_RETURN(ModelRef ref, ParseModelRef(model.model, model.version, model.alias, "model"));
  ASSIGN_OR_RETURN(store::ModelRecord m, store_->GetModel(ref.name, ref.version, ref.alias));
  Export out;
  ASSIGN_OR_RETURN(out.files, ListModelFiles(*store_, m));
  ASSIGN_OR_RETURN(out.slot, streams_->Take());
  return out;
}

}  // namespace berth::service
