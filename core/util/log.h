// Structured event logs on stderr: one line per event, as `key=value` text or as JSON (the
// server's --log-format json), always with a UTC timestamp and an event name. Core logs here too,
// so an error that is handled by carrying on still leaves a line.
#ifndef BERTH_CORE_UTIL_LOG_H_
#define BERTH_CORE_UTIL_LOG_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace berth {

enum class LogFormat { kText, kJson };
void SetLogFormat(LogFormat format);

using LogFields = std::vector<std::pair<std::string, std::string>>;
void LogEvent(absl::string_view event, const LogFields& fields);

// For an error that is deliberately not propagated (a clean-up, an advisory write): logs
// `event` with `fields` and the error (code and message) when `status` is not OK. Returns
// status.ok().
bool LogIfError(const absl::Status& status, absl::string_view event, LogFields fields = {});

}  // namespace berth

#endif  // BERTH_CORE_UTIL_LOG_H_
