// The SQLite backend: one connection (WAL, synchronous=FULL), the schema versioned by
// PRAGMA user_version.
#include <sqlite3.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/store/database.h"
#include "core/util/status_macros.h"

namespace berth::store {

namespace {

absl::Status SqlError(sqlite3* db, absl::string_view what) {
  const int code = sqlite3_errcode(db);
  std::string msg = absl::StrCat(what, ": ", sqlite3_errmsg(db));
  if (code == SQLITE_FULL) return absl::ResourceExhaustedError(msg);
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

class SqliteDatabase : public Database {
 public:
  SqliteDatabase(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  ~SqliteDatabase() override { sqlite3_close(db_); }

  absl::string_view backend() const override { return "sqlite"; }
  const std::string& location() const override { return path_; }

  absl::Status Begin() override { return Exec("BEGIN IMMEDIATE"); }
  absl::Status LockTable(absl::string_view) override { return absl::OkStatus(); }
  absl::string_view ForUpdateSkipLocked() const override { return ""; }
  absl::string_view ForUpdate() const override { return ""; }
  absl::Status Notify(absl::string_view, absl::string_view) override { return absl::OkStatus(); }
  std::unique_ptr<Listener> Listen(absl::string_view) override { return nullptr; }

  absl::Status Migrate() override {
    sqlite3_busy_timeout(db_, 5000);
    RETURN_IF_ERROR(Exec("PRAGMA journal_mode=WAL"));
    RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL"));
    RETURN_IF_ERROR(Exec("PRAGMA foreign_keys=ON"));
    ASSIGN_OR_RETURN(SqlResult v, Run("PRAGMA user_version"));
    const int64_t version = v.rows.empty() ? 0 : v.rows[0].Int(0);
    RETURN_IF_ERROR(CheckSchemaVersion(version, path_));
    if (version == kSchemaVersion) return absl::OkStatus();
    // One transaction: a crash half-way leaves the old version, which migrates again.
    RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    absl::Status s =
        Exec(absl::StrCat(version == 0 ? SchemaSql("INTEGER", "INTEGER PRIMARY KEY AUTOINCREMENT")
                                       : UpgradeSql(version, "INTEGER"),
                          "PRAGMA user_version=", kSchemaVersion, ";"));
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    return Exec("COMMIT");
  }

 private:
  absl::Status Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      const int code = sqlite3_errcode(db_);
      if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        return absl::UnavailableError(absl::StrCat("sqlite: ", msg));
      if (code == SQLITE_FULL) return absl::ResourceExhaustedError(absl::StrCat("sqlite: ", msg));
      return absl::InternalError(absl::StrCat("sqlite: ", msg));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<SqlResult> Execute(absl::string_view sql, const SqlParam* params,
                                    size_t n) override {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, nullptr) !=
        SQLITE_OK) {
      return SqlError(db_, "prepare");
    }
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> s(raw, sqlite3_finalize);
    for (size_t i = 0; i < n; ++i) {
      const int at = static_cast<int>(i) + 1;
      if (params[i].is_int) {
        sqlite3_bind_int64(s.get(), at, params[i].i);
      } else {
        sqlite3_bind_text(s.get(), at, params[i].s.data(), static_cast<int>(params[i].s.size()),
                          SQLITE_TRANSIENT);
      }
    }
    SqlResult out;
    const int columns = sqlite3_column_count(s.get());
    while (true) {
      const int rc = sqlite3_step(s.get());
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return SqlError(db_, "step");
      SqlRow row;
      row.columns.reserve(static_cast<size_t>(columns));
      for (int c = 0; c < columns; ++c) {
        const unsigned char* t = sqlite3_column_text(s.get(), c);
        row.columns.emplace_back(
            t ? std::string(reinterpret_cast<const char*>(t),
                            static_cast<size_t>(sqlite3_column_bytes(s.get(), c)))
              : std::string());
      }
      out.rows.push_back(std::move(row));
    }
    out.changes = sqlite3_stmt_readonly(s.get()) ? 0 : sqlite3_changes(db_);
    return out;
  }

  const std::string path_;
  sqlite3* db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Database>> OpenSqlite(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::InternalError(absl::StrCat("cannot open ", path, ": ", msg));
  }
  return std::unique_ptr<Database>(new SqliteDatabase(path, db));
}

}  // namespace berth::store
