// Model references as users write them.
#include "core/service/model_ref.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/store/store.h"
#include "core/util/status_macros.h"

namespace berth::service {

absl::StatusOr<ModelRef> ParseModelRef(absl::string_view text, int64_t version,
                                       absl::string_view alias, absl::string_view field) {
  ModelRef ref;
  absl::string_view name = text;
  if (size_t at = text.find('@'); at != absl::string_view::npos) {
    name = text.substr(0, at);
    ref.alias = std::string(text.substr(at + 1));
    if (ref.alias.empty())
      return absl::InvalidArgumentError(absl::StrCat(field, ": empty alias after '@'"));
  } else if (size_t colon = text.find(':'); colon != absl::string_view::npos) {
    name = text.substr(0, colon);
    if (!absl::SimpleAtoi(text.substr(colon + 1), &ref.version) || ref.version <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": '", text.substr(colon + 1),
                                                     "' is not a version (a positive integer)"));
    }
  }
  ref.name = std::string(name);
  RETURN_IF_ERROR(store::ValidateName(ref.name, field));
  if (version < 0) return absl::InvalidArgumentError("version: must not be negative");
  if (version > 0) {
    if (ref.version != 0 && ref.version != version) {
      return absl::InvalidArgumentError(
          absl::StrCat("version: ", version, " conflicts with ", field, " '", text, "'"));
    }
    ref.version = version;
  }
  if (!alias.empty()) {
    RETURN_IF_ERROR(store::ValidateName(alias, "alias"));
    if (!ref.alias.empty() && ref.alias != alias) {
      return absl::InvalidArgumentError(
          absl::StrCat("alias: '", alias, "' conflicts with ", field, " '", text, "'"));
    }
    ref.alias = std::string(alias);
  }
  if (!ref.alias.empty()) RETURN_IF_ERROR(store::ValidateName(ref.alias, "alias"));
  if (!ref.alias.empty() && ref.version != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": give a version or an alias, not both"));
  }
  return ref;
}

std::string ModelRefName(absl::string_view text) {
  return std::string(text.substr(0, text.find_first_of(":@")));
}

}  // namespace berth::service
