// What both backends share.
#include "core/store/database.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace berth::store {

int64_t SqlRow::Int(size_t c) const {
  int64_t v = 0;
  return absl::SimpleAtoi(columns.at(c), &v) ? v : 0;
}

absl::Status CheckSchemaVersion(int64_t version, const std::string& where) {
  if (version <= kSchemaVersion) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      where, " has schema version ", version, "; this Berth understands up to ", kSchemaVersion));
}

std::string SchemaSql(absl::string_view integer, absl::string_view serial_key) {
  // Version kSchemaVersion of every table, once for both backends.
  constexpr absl::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS datasets(
  id TEXT PRIMARY KEY, name TEXT NOT NULL, bytes INT NOT NULL, rows INT NOT NULL,
  label_counts TEXT NOT NULL, path TEXT NOT NULL, created_ms INT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs(
  seq SERIAL_KEY, id TEXT UNIQUE NOT NULL, request_id TEXT,
  state TEXT NOT NULL, spec TEXT NOT NULL, model_name TEXT NOT NULL, base_model TEXT NOT NULL,
  progress TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', model_version INT NOT NULL DEFAULT 0,
  cancel_requested INT NOT NULL DEFAULT 0, created_ms INT NOT NULL,
  started_ms INT NOT NULL DEFAULT 0, finished_ms INT NOT NULL DEFAULT 0,
  created_by TEXT NOT NULL DEFAULT '', attempt INT NOT NULL DEFAULT 0,
  lease_owner TEXT NOT NULL DEFAULT '', lease_expires_ms INT NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_request ON jobs(request_id) WHERE request_id <> '';
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
CREATE TABLE IF NOT EXISTS job_events(
  id SERIAL_KEY, job_id TEXT NOT NULL, at_ms INT NOT NULL,
  kind TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events(job_id, id);
CREATE TABLE IF NOT EXISTS models(
  name TEXT NOT NULL, version INT NOT NULL, path TEXT NOT NULL, job_id TEXT NOT NULL,
  metadata TEXT NOT NULL, created_ms INT NOT NULL, PRIMARY KEY(name, version));
CREATE UNIQUE INDEX IF NOT EXISTS models_job ON models(job_id) WHERE job_id <> '';
CREATE TABLE IF NOT EXISTS aliases(
  name TEXT NOT NULL, alias TEXT NOT NULL, version INT NOT NULL, PRIMARY KEY(name, alias));
)sql";
  return absl::StrReplaceAll(
      kSchema, {{" INT ", absl::StrCat(" ", integer, " ")}, {"SERIAL_KEY", serial_key}});
}

std::string UpgradeSql(int64_t from, absl::string_view integer) {
  std::string sql;
  if (from >= 1 && from < 2)
    sql += "ALTER TABLE jobs ADD COLUMN created_by TEXT NOT NULL DEFAULT '';\n";
  if (from >= 1 && from < 3) {
    // Jobs RUNNING before leases hold an expired one (0): the first worker to look rescues them.
    absl::StrAppend(&sql, "ALTER TABLE jobs ADD COLUMN attempt ", integer,
                    " NOT NULL DEFAULT 0;\n"
                    "ALTER TABLE jobs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';\n"
                    "ALTER TABLE jobs ADD COLUMN lease_expires_ms ",
                    integer, " NOT NULL DEFAULT 0;\n");
  }
  return sql;
}

std::string RedactUrl(absl::string_view url) {
  const size_t scheme = url.find("://");
  const size_t at = url.find('@');
  if (scheme == absl::string_view::npos || at == absl::string_view::npos || at < scheme)
    return std::string(url);
  const size_t colon = url.substr(0, at).find(':', scheme + 3);
  if (colon == absl::string_view::npos) return std::string(url);
  return absl::StrCat(url.substr(0, colon + 1), "***", url.substr(at));
}

}  // namespace berth::store
