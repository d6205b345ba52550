// The PostgreSQL backend over libpq: one connection, re-established when it breaks (a server
// restart surfaces as UNAVAILABLE for the statements in flight, and the next statement
// reconnects); the schema versioned in berth_schema, migrated under an advisory lock so that
// replicas starting together migrate once.
#include <libpq-fe.h>
#include <poll.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/store/database.h"
#include "core/util/status_macros.h"

namespace berth::store {
namespace {

// A fixed key for pg_advisory_lock while migrating ("berth" in ASCII).
constexpr int64_t kMigrationLock = 0x6265727468;

// `?` placeholders to libpq's $1, $2, ... (outside single-quoted literals).
std::string NumberPlaceholders(absl::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  bool quoted = false;
  for (char c : sql) {
    if (c == '\'') quoted = !quoted;
    if (c == '?' && !quoted) {
      absl::StrAppend(&out, "$", ++n);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

class PostgresDatabase : public Database {
 public:
  PostgresDatabase(std::string url, PGconn* conn)
      : url_(std::move(url)), location_(RedactUrl(url_)), conn_(conn) {}
  ~PostgresDatabase() override { PQfinish(conn_); }

  absl::string_view backend() const override { return "postgresql"; }
  const std::string& location() const override { return location_; }

  absl::Status Begin() override {
    RETURN_IF_ERROR(Run("BEGIN").status());
    in_transaction_ = true;
    return absl::OkStatus();
  }
  absl::Status LockTable(absl::string_view table) override {
    return Run(absl::StrCat("LOCK TABLE ", table, " IN SHARE ROW EXCLUSIVE MODE")).status();
  }
  absl::string_view ForUpdateSkipLocked() const override { return " FOR UPDATE SKIP LOCKED"; }
  absl::string_view ForUpdate() const override { return " FOR UPDATE"; }
  absl::Status Notify(absl::string_view channel, absl::string_view payload) override {
    return Run("SELECT pg_notify(?, ?)", {channel, payload}).status();
  }
  std::unique_ptr<Listener> Listen(absl::string_view channel) override;

  absl::Status Migrate() override {
    RETURN_IF_ERROR(Run("SELECT pg_advisory_lock(?)", {kMigrationLock}).status());
    absl::Status s = MigrateLocked();
    absl::Status unlock = Run("SELECT pg_advisory_unlock(?)", {kMigrationLock}).status();
    return s.ok() ? unlock : s;
  }

 private:
  absl::Status MigrateLocked() {
    RETURN_IF_ERROR(
        Run("CREATE TABLE IF NOT EXISTS berth_schema(version BIGINT NOT NULL)").status());
    ASSIGN_OR_RETURN(SqlResult v, Run("SELECT version FROM berth_schema"));
    const int64_t version = v.rows.empty() ? 0 : v.rows[0].Int(0);
    RETURN_IF_ERROR(CheckSchemaVersion(version, location_));
    if (version == kSchemaVersion) return absl::OkStatus();
    // Version 0 (empty) gets the current schema at once; later ones the steps since theirs.
    RETURN_IF_ERROR(Begin());
    absl::Status s = Exec((version == 0 ? SchemaSql("BIGINT", "BIGSERIAL PRIMARY KEY")
                                        : UpgradeSql(version, "BIGINT"))
                              .c_str());
    if (s.ok()) {
      s = (v.rows.empty() ? Run("INSERT INTO berth_schema(version) VALUES(?)", {kSchemaVersion})
                          : Run("UPDATE berth_schema SET version = ?", {kSchemaVersion}))
              .status();
    }
    if (!s.ok()) {
      (void)Run("ROLLBACK");
      return s;
    }
    return Run("COMMIT").status();
  }

  // Several statements without parameters.
  absl::Status Exec(const char* sql) {
    RETURN_IF_ERROR(Connected());
    Result r(PQexec(conn_, sql));
    return Check(r.get());
  }

  // Reconnects a broken connection; UNAVAILABLE while the server cannot be reached.
  absl::Status Connected() {
    if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
    PQreset(conn_);
    if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
    return absl::UnavailableError(
        absl::StrCat("cannot reach PostgreSQL at ", location_, ": ", PQerrorMessage(conn_)));
  }

  absl::Status Check(const PGresult* r) {
    const ExecStatusType st = r == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return absl::OkStatus();
    const char* state = r == nullptr ? nullptr : PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const std::string code = state != nullptr ? state : "";
    std::string msg = absl::StrCat("postgresql: ", r != nullptr ? PQresultErrorMessage(r) : "",
                                   r == nullptr ? PQerrorMessage(conn_) : "");
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    // Connection exceptions (08), the server shutting down or starting (57P0x), and
    // serialization failures and deadlocks (40001, 40P01) are worth retrying.
    if (PQstatus(conn_) != CONNECTION_OK || code.empty() || absl::StartsWith(code, "08") ||
        absl::StartsWith(code, "57P") || code == "40001" || code == "40P01") {
      return absl::UnavailableError(msg);
    }
    if (absl::StartsWith(code, "53")) return absl::ResourceExhaustedError(msg);  // disk full, ...
    return absl::InternalError(msg);
  }

  absl::StatusOr<SqlResult> Execute(absl::string_view sql, const SqlParam* params,
                                    size_t n) override {
    const bool ends = sql == "COMMIT" || sql == "ROLLBACK";
    if (in_transaction_ && PQstatus(conn_) != CONNECTION_OK) {
      // Reconnecting here would run the rest of the transaction outside it.
      if (ends) in_transaction_ = false;
      return absl::UnavailableError(absl::StrCat("the connection to PostgreSQL at ", location_,
                                                 " broke inside a transaction"));
    }
    if (ends) in_transaction_ = false;
    RETURN_IF_ERROR(Connected());
    const std::string text = NumberPlaceholders(sql);
    std::vector<std::string> values(n);
    std::vector<const char*> pointers(n);
    for (size_t i = 0; i < n; ++i) {
      values[i] = params[i].is_int ? std::to_string(params[i].i) : params[i].s;
      pointers[i] = values[i].c_str();
    }
    Result r(PQexecParams(conn_, text.c_str(), static_cast<int>(n), nullptr, pointers.data(),
                          nullptr, nullptr, 0));
    RETURN_IF_ERROR(Check(r.get()));
    SqlResult out;
    const int rows = PQntuples(r.get()), columns = PQnfields(r.get());
    out.rows.reserve(static_cast<size_t>(rows));
    for (int i = 0; i < rows; ++i) {
      SqlRow row;
      row.columns.reserve(static_cast<size_t>(columns));
      for (int c = 0; c < columns; ++c) {
        row.columns.emplace_back(PQgetvalue(r.get(), i, c),
                                 static_cast<size_t>(PQgetlength(r.get(), i, c)));
      }
      out.rows.push_back(std::move(row));
    }
    const char* changed = PQcmdTuples(r.get());
    out.changes = (changed != nullptr && *changed != '\0') ? std::strtoll(changed, nullptr, 10) : 0;
    return out;
  }

  const std::string url_, location_;
  PGconn* conn_;
  bool in_transaction_ = false;
};

// A connection of its own that LISTENs on one channel, reconnecting when it breaks.
class PostgresListener : public Listener {
 public:
  PostgresListener(std::string url, std::string channel)
      : url_(std::move(url)), channel_(std::move(channel)) {}
  ~PostgresListener() override {
    if (conn_ != nullptr) PQfinish(conn_);
  }

  absl::StatusOr<std::vector<std::string>> Wait(std::chrono::milliseconds timeout) override {
    if (absl::Status s = Connect(); !s.ok()) {
      std::this_thread::sleep_for(timeout);
      return s;
    }
    std::vector<std::string> out = Received();
    if (!out.empty()) return out;
    pollfd fd{PQsocket(conn_), POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(timeout.count())) > 0 && PQconsumeInput(conn_) == 0) {
      std::string msg = PQerrorMessage(conn_);
      PQfinish(conn_);
      conn_ = nullptr;
      return absl::UnavailableError(absl::StrCat("postgresql listener: ", msg));
    }
    return Received();
  }

 private:
  absl::Status Connect() {
    if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = PQconnectdb(url_.c_str());
    if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) {
      PQsetNoticeProcessor(
          conn_, [](void*, const char*) {}, nullptr);
      char* quoted = PQescapeIdentifier(conn_, channel_.c_str(), channel_.size());
      Result r(PQexec(conn_, absl::StrCat("LISTEN ", quoted != nullptr ? quoted : "").c_str()));
      PQfreemem(quoted);
      if (r != nullptr && PQresultStatus(r.get()) == PGRES_COMMAND_OK) return absl::OkStatus();
    }
    std::string msg = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
    return absl::UnavailableError(
        absl::StrCat("cannot listen on PostgreSQL at ", RedactUrl(url_), ": ", msg));
  }

  std::vector<std::string> Received() {
    std::vector<std::string> out;
    while (PGnotify* n = PQnotifies(conn_)) {
      out.emplace_back(n->extra != nullptr ? n->extra : "");
      PQfreemem(n);
    }
    return out;
  }

  const std::string url_, channel_;
  PGconn* conn_ = nullptr;
};

std::unique_ptr<Listener> PostgresDatabase::Listen(absl::string_view channel) {
  return std::make_unique<PostgresListener>(url_, std::string(channel));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Database>> OpenPostgres(const std::string& url) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    PQfinish(conn);
    return absl::UnavailableError(
        absl::StrCat("cannot connect to PostgreSQL at ", RedactUrl(url), ": ", msg));
  }
  // Notices (e.g. "relation already exists, skipping") are not for the server's log.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Database>(new PostgresDatabase(url, conn));
}

}  // namespace berth::store
