// Structured event logs of the server on stderr: one line per event, as `key=value` text or as
// JSON (--log-format json), always with a UTC timestamp and an event name.
#ifndef BERTH_SERVER_LOG_H_
#define BERTH_SERVER_LOG_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace berth::server {

enum class LogFormat { kText, kJson };
void SetLogFormat(LogFormat format);

using LogFields = std::vector<std::pair<std::string, std::string>>;
void LogEvent(absl::string_view event, const LogFields& fields);

}  // namespace berth::server

#endif  // BERTH_SERVER_LOG_H_
