// The model facade: the registry of versions and aliases as every front door sees it (list,
// get, delete, alias, import, export). Each call is whole: a deletion removes the store's rows,
// the loaded engines and the files in an order that never leaves a version whose files are gone
// (a failed file removal leaves garbage, never a dangling version). Errors name the field.
// Delete, Import and ExportFiles touch files or load models: never call them on a network
// thread.
#ifndef BERTH_CORE_SERVICE_MODELS_H_
#define BERTH_CORE_SERVICE_MODELS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/service/inference.h"
#include "core/service/limits.h"
#include "core/service/model_import.h"
#include "core/service/model_registry.h"
#include "core/store/store.h"

namespace berth::service {

struct ModelVersionInfo {
  store::ModelRecord record;
  std::string config_json;  // the version's config.json ("" if unreadable)
};

class Models {
 public:
  // `streams` counts the streams open across the service (exports here); `uploads` the uploads
  // held in memory (archives here).
  Models(store::Store* store, ModelRegistry* registry, const ModelImporter* importer,
         const Limits& limits, Slots* streams, Slots* uploads, Observer* observer)
      : store_(store),
        registry_(registry),
        importer_(importer),
        limits_(limits),
        streams_(streams),
        uploads_(uploads),
        observer_(observer) {}

  // Every version the caller may see (`visible(name)`; null: all), without config.json.
  absl::StatusOr<std::vector<store::ModelRecord>> List(
      const std::function<bool(const std::string& name)>& visible = nullptr) const;
  absl::StatusOr<ModelVersionInfo> Get(const ModelSelector& model) const;
  // Deletes one version of `name` (0: every version); returns the versions deleted. Refused
  // while a job trains from one of them.
  absl::StatusOr<std::vector<int64_t>> Delete(const std::string& name, int64_t version) const;
  // Points `alias` at `version`; returns the version it pointed at before (0: none).
  absl::StatusOr<int64_t> SetAlias(const std::string& name, const std::string& alias,
                                   int64_t version) const;

  // An import's arrival: an upload slot and the buffer the archive fills (ImportModel's first
  // message names the source, checked by CheckImportSource).
  absl::StatusOr<Upload> BeginImport() const;
  // The source an import's first message names: one of directory, hub_id or archive.
  static absl::Status CheckImportSource(const ImportSource& source);
  // Registers `source` as the next version of `name` and loads it into the registry (a version
  // that does not fit the memory budget is only logged: it is registered all the same).
  absl::StatusOr<ModelVersionInfo> Import(const std::string& name,
                                          const ImportSource& source) const;

  // A version's files for export, with a stream slot held while they are sent.
  struct Export {
    Slots::Held slot;
    std::vector<ModelFile> files;
  };
  absl::StatusOr<Export> ExportFiles(const ModelSelector& model) const;

 private:
  std::string ReadConfig(const store::ModelRecord& m) const;

  store::Store* const store_;
  ModelRegistry* const registry_;
  const ModelImporter* const importer_;
  const Limits limits_;
  Slots* const streams_;
  Slots* const uploads_;
  Observer* const observer_;
};

}  // namespace berth::service

#endif  // BERTH_CORE_SERVICE_MODELS_H_
