// JSON helpers over nlohmann::json that never throw and name the file and field in errors.
#ifndef BERTH_CORE_UTIL_JSON_H_
#define BERTH_CORE_UTIL_JSON_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace berth {

using Json = nlohmann::json;

// Parses text as JSON; `what` names the source (a path) in the error.
absl::StatusOr<Json> ParseJson(absl::string_view text, absl::string_view what);
absl::StatusOr<Json> ReadJsonFile(const std::string& path);

// Typed optional fields of an object: absent or null gives nullopt, the wrong type an
// InvalidArgument "<what>: field '<key>' must be <type>".
absl::StatusOr<std::optional<bool>> GetOptionalBool(const Json& obj, const char* key,
                                                    absl::string_view what);
absl::StatusOr<std::optional<int64_t>> GetOptionalInt(const Json& obj, const char* key,
                                                      absl::string_view what);
absl::StatusOr<std::optional<double>> GetOptionalDouble(const Json& obj, const char* key,
                                                        absl::string_view what);
absl::StatusOr<std::optional<std::string>> GetOptionalString(const Json& obj, const char* key,
                                                             absl::string_view what);

// Serialises JSON for writing to a file: pretty-printed, trailing newline, invalid UTF-8 replaced.
std::string DumpJson(const Json& j, int indent = 2);

}  // namespace berth

#endif  // BERTH_CORE_UTIL_JSON_H_
