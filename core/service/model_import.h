// Models that Berth did not train: importing an existing Hugging Face classifier as a registry
// version (from a server directory, a Hub id, or an uploaded tar archive), and listing a
// version's files for export. The handlers translate; the rules live here.
#ifndef BERTH_CORE_SERVICE_MODEL_IMPORT_H_
#define BERTH_CORE_SERVICE_MODEL_IMPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/service/base_model.h"
#include "core/store/store.h"

namespace berth::service {

// The files of a model directory that are imported and exported: what from_pretrained reads
// for a sequence classifier and its tokenizer. Anything else in a source is left behind.
bool IsModelFile(absl::string_view name);

struct TarLimits {
  int64_t max_bytes = int64_t{8} << 30;  // extracted, all members together
  int max_members = 1000;
};

// Unpacks the model files (IsModelFile) of a tar archive (ustar, GNU or PAX) into `dir`, which
// must exist, taking them from the top level or from one folder that holds everything. Refuses,
// naming the member, anything unsafe or broken: absolute paths, "..", symbolic and hard links,
// devices and FIFOs, a bad header checksum, a truncated archive, more than the limits. On error
// `dir` may hold some files: the caller removes it.
absl::Status ExtractModelTar(absl::string_view tar, const std::string& dir,
                             const TarLimits& limits = {});

struct ImportSource {
  // kUnset: the request named no source (refused by ModelImporter::Import and the facade).
  enum class Kind { kUnset, kDirectory, kHub, kArchive };
  Kind kind = Kind::kDirectory;
  std::string location;  // kDirectory: the path; kHub: the id
  std::string archive;   // kArchive: the tar's bytes
  std::string sha256;    // kArchive: the digest the client sent ("" : none)
};

class ModelImporter {
 public:
  ModelImporter(store::Store* store, const BaseModelPolicy* policy, TarLimits limits = {})
      : store_(store), policy_(policy), limits_(limits) {}

  // Stages the source's model files under the data directory, checks that they load as a
  // sequence classifier with a head and labels, classifies one text (the warm-up), and records
  // the next version of `name` with its provenance in one store transaction. Runs torch: never
  // on a gRPC thread. Whatever fails leaves no files and no version.
  absl::StatusOr<store::ModelRecord> Import(const std::string& name,
                                            const ImportSource& source) const;

  // Removes the staging directories (models/.import-*) that imports interrupted by a crash
  // left, at start-up; returns how many. With `shared` (other processes use this data
  // directory, one of which may be importing now) only those untouched for a day go.
  int SweepStaging(bool shared) const;

 private:
  store::Store* const store_;
  const BaseModelPolicy* const policy_;
  const TarLimits limits_;
};

// A file of a registered version, for export.
struct ModelFile {
  std::string name;  // relative to the model directory
  std::string path;  // absolute
  int64_t size = 0;
};

// The model files (IsModelFile) of a registered version's directory, in name order.
absl::StatusOr<std::vector<ModelFile>> ListModelFiles(const store::Store& store,
                                                      const store::ModelRecord& record);

}  // namespace berth::service

#endif  // BERTH_CORE_SERVICE_MODEL_IMPORT_H_
