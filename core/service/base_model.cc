// Parsing base_model references and the server's rules for them.
#include "core/service/base_model.h"

#include <climits>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/model/presets.h"
#include "core/util/files.h"
#include "core/util/status_macros.h"

namespace berth::service {
namespace {

absl::Status NeitherError(absl::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat(
      "base_model: '", text, "' is neither a registered model, a Hub id nor config:PRESET"));
}

}  // namespace

std::string BaseModelRef::ToString() const {
  switch (kind) {
    case Kind::kPreset:
      return PresetBaseModel(preset);
    case Kind::kPath:
      return path;
    case Kind::kRegistered:
      if (model.version > 0) return absl::StrCat(model.name, ":", model.version);
      if (!model.alias.empty()) return absl::StrCat(model.name, "@", model.alias);
      return model.name;
    case Kind::kHub:
      break;
  }
  return hub.revision == "main" ? hub.repo : absl::StrCat(hub.repo, "@", hub.revision);
}

absl::StatusOr<BaseModelRef> ParseBaseModelRef(absl::string_view text) {
  BaseModelRef ref;
  if (std::optional<std::string> preset = PresetNameOf(text)) {
    if (FindModelPreset(*preset) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("base_model: unknown preset '", *preset, "' (", PresetList(), ")"));
    }
    ref.kind = BaseModelRef::Kind::kPreset;
    ref.preset = *preset;
    return ref;
  }
  if (absl::StartsWith(text, "/")) {
    ref.kind = BaseModelRef::Kind::kPath;
    ref.path = std::string(text);
    return ref;
  }
  auto hub = ParseHubId(text);
  if (!absl::StrContains(text, '/')) {
    auto model = ParseModelRef(text, 0, "", "base_model");
    if (model.ok()) {
      ref.kind = BaseModelRef::Kind::kRegistered;
      ref.model = *std::move(model);
      // "bert-base-uncased": the registered model of that name if there is one, else the Hub's.
      ref.hub_fallback = ref.model.version == 0 && ref.model.alias.empty() && hub.ok();
      if (ref.hub_fallback) ref.hub = *hub;
      return ref;
    }
  }
  if (!hub.ok()) return NeitherError(text);
  ref.kind = BaseModelRef::Kind::kHub;
  ref.hub = *std::move(hub);
  return ref;
}

bool BaseModelUses(absl::string_view base_model, absl::string_view name, int64_t version) {
  auto ref = ParseBaseModelRef(base_model);
  return ref.ok() && ref->kind == BaseModelRef::Kind::kRegistered && ref->model.name == name &&
         (version == 0 || ref->model.version == 0 || ref->model.version == version);
}

absl::StatusOr<std::string> BaseModelPolicy::CheckLocalPath(const std::string& path) const {
  if (options_.model_roots.empty()) {
    return absl::InvalidArgumentError(
        "base_model: local paths are disabled on this server (start it with --model-roots DIR)");
  }
  // Resolve symbolic links and "..", then require the result inside a root.
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("base_model: ", path, " does not exist"));
  }
  bool inside = false;
  for (const std::string& root : options_.model_roots) {
    char root_resolved[PATH_MAX];
    if (::realpath(root.c_str(), root_resolved) == nullptr) continue;
    const std::string prefix = absl::StrCat(root_resolved, "/");
    inside |= absl::StartsWith(absl::StrCat(resolved, "/"), prefix) &&
              std::string(resolved) != root_resolved;
  }
  if (!inside) {
    return absl::PermissionDeniedError(
        absl::StrCat("base_model: ", path, " is outside the server's --model-roots"));
  }
  if (!IsRegularFile(JoinPath(resolved, "config.json"))) {
    return absl::InvalidArgumentError(absl::StrCat("base_model: ", path, " has no config.json"));
  }
  return std::string(resolved);
}

absl::StatusOr<BaseModelRef> BaseModelPolicy::Pin(absl::string_view base_model) const {
  std::string unused;
  return PinAndLocate(base_model, &unused);
}

absl::StatusOr<BaseModelRef> BaseModelPolicy::PinAndLocate(absl::string_view base_model,
                                                           std::string* registered_dir) const {
  ASSIGN_OR_RETURN(BaseModelRef ref, ParseBaseModelRef(base_model));
  switch (ref.kind) {
    case BaseModelRef::Kind::kPreset:
      return ref;
    case BaseModelRef::Kind::kPath: {
      ASSIGN_OR_RETURN(ref.path, CheckLocalPath(ref.path));
      return ref;
    }
    case BaseModelRef::Kind::kRegistered: {
      auto model = store_->GetModel(ref.model.name, ref.model.version, ref.model.alias);
      if (model.ok()) {
        *registered_dir = JoinPath(store_->data_dir(), model->path);
        ref.model = ModelRef{model->name, model->version, ""};
        ref.hub_fallback = false;
        return ref;
      }
      if (!ref.model.alias.empty() || ref.model.version != 0) {
        return absl::Status(model.status().code(),
                            absl::StrCat("base_model: ", model.status().message()));
      }
      if (!ref.hub_fallback) return NeitherError(base_model);
      ref.kind = BaseModelRef::Kind::kHub;
      break;
    }
    case BaseModelRef::Kind::kHub:
      break;
  }
  if (!options_.allow_hub) {
    return absl::InvalidArgumentError(absl::StrCat(
        "base_model: '", base_model,
        "' is not a registered model, and Hub downloads are off on this server (--no-hub)"));
  }
  return ref;
}

absl::StatusOr<std::string> BaseModelPolicy::Resolve(absl::string_view pinned) const {
  // The rules are checked again: --model-roots or the registry may have changed since.
  std::string registered_dir;
  ASSIGN_OR_RETURN(BaseModelRef ref, PinAndLocate(pinned, &registered_dir));
  switch (ref.kind) {
    case BaseModelRef::Kind::kPreset:
      return ref.ToString();
    case BaseModelRef::Kind::kPath:
      return ref.path;
    case BaseModelRef::Kind::kRegistered:
      return registered_dir;
    case BaseModelRef::Kind::kHub:
      break;
  }
  return DownloadModel(ref.hub, HubOptions::FromEnvironment());
}

}  // namespace berth::service
