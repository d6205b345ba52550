// The SQL connection under the store: one interface, two backends (SQLite, embedded, the
// default; PostgreSQL through libpq, shared by replicas). Statements are written once with `?`
// placeholders in the SQL both accept; what differs (schema DDL, transaction start, row and
// table locks, error codes) is behind the interface. No torch, no gRPC.
#ifndef BERTH_CORE_STORE_DATABASE_H_
#define BERTH_CORE_STORE_DATABASE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace berth::store {

// A statement parameter: a 64-bit integer or text.
struct SqlParam {
  SqlParam(int64_t v) : is_int(true), i(v) {}  // NOLINT(runtime/explicit)
  SqlParam(int v) : is_int(true), i(v) {}      // NOLINT(runtime/explicit)
  SqlParam(absl::string_view v) : s(v) {}      // NOLINT(runtime/explicit)
  SqlParam(const std::string& v) : s(v) {}     // NOLINT(runtime/explicit)
  SqlParam(const char* v) : s(v) {}            // NOLINT(runtime/explicit)
  bool is_int = false;
  int64_t i = 0;
  std::string s;
};

// One result row, every column as text (SQL NULL as ""), read by position.
struct SqlRow {
  std::vector<std::string> columns;
  const std::string& Text(size_t c) const { return columns.at(c); }
  int64_t Int(size_t c) const;
};

struct SqlResult {
  std::vector<SqlRow> rows;
  int64_t changes = 0;  // rows written by an INSERT, UPDATE or DELETE
};

class Database {
 public:
  virtual ~Database() = default;
  virtual absl::string_view backend() const = 0;  // "sqlite" or "postgresql"
  // Where it is, for messages (a file, or the URL without its password).
  virtual const std::string& location() const = 0;

  // One statement with `?` placeholders; its rows come back whole. Errors: UNAVAILABLE when
  // the database cannot be reached or is busy (worth retrying), RESOURCE_EXHAUSTED when it is
  // full, INTERNAL otherwise.
  absl::StatusOr<SqlResult> Run(absl::string_view sql,
                                std::initializer_list<SqlParam> params = {}) {
    return Timed(sql, params.begin(), params.size());
  }
  absl::StatusOr<SqlResult> Run(absl::string_view sql, const std::vector<SqlParam>& params) {
    return Timed(sql, params.data(), params.size());
  }
  // Called after every statement with its time and outcome (the server's metrics); set
  // before the database is shared between threads.
  using StatementObserver = std::function<void(double seconds, const absl::Status& status)>;
  void set_statement_observer(StatementObserver observer) { observer_ = std::move(observer); }
  // Starts a transaction that will write (SQLite: BEGIN IMMEDIATE, so writers queue at the
  // start instead of failing at the first write).
  virtual absl::Status Begin() = 0;
  // Inside a transaction: no other writer changes `table` until it ends (PostgreSQL: a table
  // lock, for checks that read several rows and then write; SQLite's write transaction
  // already excludes every other writer).
  virtual absl::Status LockTable(absl::string_view table) = 0;
  // Appended to a SELECT that picks rows to claim: other claimers skip the rows it locked
  // (PostgreSQL's FOR UPDATE SKIP LOCKED; nothing in SQLite).
  virtual absl::string_view ForUpdateSkipLocked() const = 0;
  // Appended to a SELECT whose rows must not change until the transaction ends (PostgreSQL's
  // FOR UPDATE; nothing in SQLite).
  virtual absl::string_view ForUpdate() const = 0;
  // Brings the schema to the current version (DDL differs by backend), refusing a database
  // written by a newer Berth with FAILED_PRECONDITION.
  virtual absl::Status Migrate() = 0;
  // Inside a transaction: tells `channel`'s listeners `payload` when it commits (PostgreSQL's
  // NOTIFY; nothing in SQLite, whose one process needs no telling).
  virtual absl::Status Notify(absl::string_view channel, absl::string_view payload) = 0;
  // A listener on `channel` over a connection of its own; nullptr where the backend has none.
  virtual std::unique_ptr<class Listener> Listen(absl::string_view channel) = 0;

 protected:
  virtual absl::StatusOr<SqlResult> Execute(absl::string_view sql, const SqlParam* params,
                                            size_t n) = 0;

 private:
  absl::StatusOr<SqlResult> Timed(absl::string_view sql, const SqlParam* params, size_t n) {
    if (!observer_) return Execute(sql, params, n);
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<SqlResult> r = Execute(sql, params, n);
    observer_(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
              r.status());
    return r;
  }

  StatementObserver observer_;
};

// Notifications other connections send on one channel (PostgreSQL LISTEN).
class Listener {
 public:
  virtual ~Listener() = default;
  // The payloads received, waiting up to `timeout` for the first; empty when none came. A lost
  // connection is UNAVAILABLE (after waiting the timeout, so a caller's loop does not spin) and
  // is re-established by the next call; what was sent meanwhile is lost, so listeners also
  // poll.
  virtual absl::StatusOr<std::vector<std::string>> Wait(std::chrono::milliseconds timeout) = 0;
};

// The current schema version of both backends. 1: the first; 2: jobs.created_by; 3: job
// leases (jobs.attempt, lease_owner, lease_expires_ms).
inline constexpr int kSchemaVersion = 3;

absl::StatusOr<std::unique_ptr<Database>> OpenSqlite(const std::string& path);
// `url`: postgresql://[user[:password]@]host[:port]/dbname[?param=value...] (libpq's syntax).
absl::StatusOr<std::unique_ptr<Database>> OpenPostgres(const std::string& url);

// FAILED_PRECONDITION, naming `where`, for a schema newer than this Berth's.
absl::Status CheckSchemaVersion(int64_t version, const std::string& where);

// The tables of schema version kSchemaVersion in a backend's types: `integer` for 64-bit
// integer columns, `serial_key` for an auto-numbered primary key.
std::string SchemaSql(absl::string_view integer, absl::string_view serial_key);

// The statements that bring tables of schema version `from` (1 or more; 0 is an empty
// database, which SchemaSql creates whole) to kSchemaVersion, in a backend's integer type.
std::string UpgradeSql(int64_t from, absl::string_view integer);

// A URL for messages and logs: the password replaced by "***".
std::string RedactUrl(absl::string_view url);

}  // namespace berth::store

#endif  // BERTH_CORE_STORE_DATABASE_H_
