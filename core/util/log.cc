// One-line structured logs.
#include "core/util/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"

namespace berth {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};

std::string Timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const int ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm;
  gmtime_r(&t, &tm);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

bool NeedsQuotes(const std::string& v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) return true;
  }
  return false;
}

}  // namespace

void SetLogFormat(LogFormat format) { g_format = format; }

void LogEvent(absl::string_view event, const LogFields& fields) {
  std::string line;
  if (g_format == LogFormat::kJson) {
    nlohmann::json j = {{"ts", Timestamp()}, {"event", std::string(event)}};
    for (const auto& [k, v] : fields) j[k] = v;
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = absl::StrCat(Timestamp(), " ", event);
    for (const auto& [k, v] : fields) {
      absl::StrAppend(&line, " ", k, "=",
                      NeedsQuotes(v) ? nlohmann::json(v).dump(
                                           -1, ' ', false, nlohmann::json::error_handler_t::replace)
                                     : v);
    }
  }
  line += "\n";
  ABSL_CONST_INIT static absl::Mutex mu(absl::kConstInit);  // whole lines, never interleaved
  absl::MutexLock lock(&mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

bool LogIfError(const absl::Status& status, absl::string_view event, LogFields fields) {
  if (status.ok()) return true;
  fields.emplace_back("code", absl::StatusCodeToString(status.code()));
  fields.emplace_back("error", std::string(status.message()));
  LogEvent(event, fields);
  return false;
}

}  // namespace berth
