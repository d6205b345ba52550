// Non-throwing JSON access with errors that name the source and field.
#include "core/util/json.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/util/files.h"
#include "core/util/status_macros.h"

namespace berth {
namespace {

absl::Status TypeError(absl::string_view what, const char* key, const char* type) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": field '", key, "' must be ", type));
}

}  // namespace

absl::StatusOr<Json> ParseJson(absl::string_view text, absl::string_view what) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Re-parse through the exception path only to recover the position for the message.
    try {
      Json unused = Json::parse(text.begin(), text.end());
      (void)unused;
    } catch (const Json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": invalid JSON: ", e.what()));
    }
    return absl::InvalidArgumentError(absl::StrCat(what, ": invalid JSON"));
  }
  return j;
}

absl::StatusOr<Json> ReadJsonFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseJson(text, path);
}

absl::StatusOr<std::optional<bool>> GetOptionalBool(const Json& obj, const char* key,
                                                    absl::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean()) return TypeError(what, key, "true or false");
  return std::optional<bool>(it->get<bool>());
}

absl::StatusOr<std::optional<int64_t>> GetOptionalInt(const Json& obj, const char* key,
                                                      absl::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<int64_t>();
  if (it->is_number_integer()) return std::optional<int64_t>(it->get<int64_t>());
  if (it->is_number_float()) {
    double d = it->get<double>();
    // Python writes very large model_max_length values as floats (int(1e30)).
    if (d >= 9.2e18) return std::optional<int64_t>(INT64_MAX);
    // Below int64's range the cast is undefined (fuzz_model_config found -8.9e26).
    if (d > -9.2e18 && d == static_cast<double>(static_cast<int64_t>(d))) {
      return std::optional<int64_t>(static_cast<int64_t>(d));
    }
  }
  return TypeError(what, key, "an integer");
}

absl::StatusOr<std::optional<double>> GetOptionalDouble(const Json& obj, const char* key,
                                                        absl::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<double>();
  if (!it->is_number()) return TypeError(what, key, "a number");
  return std::optional<double>(it->get<double>());
}

absl::StatusOr<std::optional<std::string>> GetOptionalString(const Json& obj, const char* key,
                                                             absl::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return TypeError(what, key, "a string");
  return std::optional<std::string>(it->get<std::string>());
}

std::string DumpJson(const Json& j, int indent) {
  return j.dump(indent, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace) + "\n";
}

}  // namespace berth
