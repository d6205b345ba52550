// Model references ("NAME", "NAME:VERSION", "NAME@ALIAS") as users write them.
#ifndef BERTH_CORE_SERVICE_MODEL_REF_H_
#define BERTH_CORE_SERVICE_MODEL_REF_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace berth::service {

struct ModelRef {
  std::string name;
  int64_t version = 0;  // 0: the latest (or the alias's)
  std::string alias;
};

// Parses "NAME", "NAME:VERSION" or "NAME@ALIAS"; `version`/`alias` given separately are
// merged in (a conflict is an error). Messages name `field`.
absl::StatusOr<ModelRef> ParseModelRef(absl::string_view text, int64_t version,
                                       absl::string_view alias, absl::string_view field);

// The model name of a reference as written, unchecked (for a token's model-prefix check).
std::string ModelRefName(absl::string_view text);

}  // namespace berth::service

#endif  // BERTH_CORE_SERVICE_MODEL_REF_H_
