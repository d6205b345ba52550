// What a fine-tuning job starts from. A base_model string is parsed here and nowhere else, and
// this server's rules for base models (presets, --model-roots, the registry, --no-hub) live
// beside the parser, away from the worker loop and the handlers.
#ifndef BERTH_CORE_SERVICE_BASE_MODEL_H_
#define BERTH_CORE_SERVICE_BASE_MODEL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model/hub.h"
#include "core/service/model_ref.h"
#include "core/store/store.h"

namespace berth::service {

// The forms of base_model:
//   config:PRESET                   random weights of a preset shape (core/model/presets.h)
//   /ABSOLUTE/PATH                  a model directory on the server
//   NAME, NAME:VERSION, NAME@ALIAS  a registered model; a bare NAME may instead be a Hub id
//   ORG/NAME[@REVISION]             a Hugging Face Hub id
struct BaseModelRef {
  enum class Kind { kPreset, kPath, kRegistered, kHub };
  Kind kind = Kind::kHub;
  std::string preset;  // kPreset
  std::string path;    // kPath
  ModelRef model;      // kRegistered
  // kHub; for kRegistered, the Hub id a bare NAME also reads as (hub_fallback).
  HubRef hub;
  bool hub_fallback = false;

  // The text that parses back to this reference (what a job stores).
  std::string ToString() const;
};

// Syntax only; every message names base_model.
absl::StatusOr<BaseModelRef> ParseBaseModelRef(absl::string_view text);

// Whether a stored job's base_model (pinned: NAME:VERSION, or a bare NAME meaning the latest)
// reads `name` version `version` (0: any version) of the registry.
bool BaseModelUses(absl::string_view base_model, absl::string_view name, int64_t version);

struct BaseModelPolicyOptions {
  // Absolute directories are allowed only under one of these, after symbolic links are
  // resolved; empty: no local directories.
  std::vector<std::string> model_roots;
  bool allow_hub = true;  // Hub ids are downloaded by the server
};

class BaseModelPolicy {
 public:
  BaseModelPolicy(store::Store* store, BaseModelPolicyOptions options)
      : store_(store), options_(std::move(options)) {}

  // Checks a request's base model against this server's rules and pins it: a registered model
  // to its current version ("NAME@production" → NAME:3), a directory to its real path. Presets
  // and Hub ids come back as they are (a Hub id is fetched when the job runs).
  absl::StatusOr<BaseModelRef> Pin(absl::string_view base_model) const;

  // What the trainer loads for a stored (pinned) base model: config:PRESET, or a model
  // directory (a registered version's, a local one, or a Hub snapshot fetched now).
  absl::StatusOr<std::string> Resolve(absl::string_view pinned) const;

 private:
  absl::StatusOr<std::string> CheckLocalPath(const std::string& path) const;
  // Pin; for a registered model also its directory (`registered_dir`), read in the same lookup.
  absl::StatusOr<BaseModelRef> PinAndLocate(absl::string_view base_model,
                                            std::string* registered_dir) const;

  store::Store* const store_;
  const BaseModelPolicyOptions options_;
};

}  // namespace berth::service

#endif  // BERTH_CORE_SERVICE_BASE_MODEL_H_
