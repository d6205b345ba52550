// SQLite-backed store. One connection, serialised by a mutex; writes in transactions.
#include "core/store/store.h"

#include <sqlite3.h>

#include <chrono>
#include <random>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/util/digest.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"

namespace berth::store {
namespace {

constexpr int kSchemaVersion = 2;  // 2: jobs.created_by
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS datasets(
  id TEXT PRIMARY KEY, name TEXT NOT NULL, bytes INTEGER NOT NULL, rows INTEGER NOT NULL,
  label_counts TEXT NOT NULL, path TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, request_id TEXT,
  state TEXT NOT NULL, spec TEXT NOT NULL, model_name TEXT NOT NULL, base_model TEXT NOT NULL,
  progress TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', model_version INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,
  started_ms INTEGER NOT NULL DEFAULT 0, finished_ms INTEGER NOT NULL DEFAULT 0,
  created_by TEXT NOT NULL DEFAULT '');
CREATE UNIQUE INDEX IF NOT EXISTS jobs_request ON jobs(request_id) WHERE request_id <> '';
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
CREATE TABLE IF NOT EXISTS job_events(
  id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, at_ms INTEGER NOT NULL,
  kind TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models(
  name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, job_id TEXT NOT NULL,
  metadata TEXT NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY(name, version));
CREATE UNIQUE INDEX IF NOT EXISTS models_job ON models(job_id) WHERE job_id <> '';
CREATE TABLE IF NOT EXISTS aliases(
  name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY(name, alias));
)sql";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string NewJobId() {
  static std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(NowMs()));
  ABSL_CONST_INIT static absl::Mutex mu(absl::kConstInit);  // rng's
  absl::MutexLock lock(&mu);
  return absl::StrCat("job-", absl::Hex(rng(), absl::kZeroPad16));
}

absl::Status SqlError(sqlite3* db, absl::string_view what) {
  const int code = sqlite3_errcode(db);
  std::string msg = absl::StrCat(what, ": ", sqlite3_errmsg(db));
  if (code == SQLITE_FULL) return absl::ResourceExhaustedError(msg);
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

ABSL_CONST_INIT absl::Mutex g_store_fault_mu(absl::kConstInit);
std::function<absl::Status(const std::string&)> g_store_fault ABSL_GUARDED_BY(g_store_fault_mu);

// A prepared statement with positional binding; finalised on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  absl::Status ok() const { return rc_ == SQLITE_OK ? absl::OkStatus() : SqlError(db_, "prepare"); }
  Stmt& Bind(int i, absl::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  // SQLITE_ROW -> true, SQLITE_DONE -> false, else error.
  absl::StatusOr<bool> Step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqlError(db_, "step");
  }
  // Executes a statement that writes.
  absl::Status Run() {
    {
      absl::MutexLock lock(&g_store_fault_mu);
      if (g_store_fault) {
        const char* sql = sqlite3_sql(s_);
        absl::Status injected = g_store_fault(sql != nullptr ? sql : "");
        if (!injected.ok()) return injected;
      }
    }
    auto r = Step();
    return r.ok() ? absl::OkStatus() : r.status();
  }
  std::string Text(int c) const {
    const unsigned char* t = sqlite3_column_text(s_, c);
    return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s_, c)) : "";
  }
  int64_t Int(int c) const { return sqlite3_column_int64(s_, c); }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back unless Commit() was called.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {
    ok_ = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~Transaction() {
    if (ok_ && !done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  absl::Status begun() const { return ok_ ? absl::OkStatus() : SqlError(db_, "begin"); }
  absl::Status Commit() {
    done_ = true;
    return sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK
               ? absl::OkStatus()
               : SqlError(db_, "commit");
  }

 private:
  sqlite3* db_;
  bool ok_ = false, done_ = false;
};

constexpr const char* kJobColumns =
    "id, request_id, state, spec, model_name, base_model, progress, error, model_version, "
    "cancel_requested, created_ms, started_ms, finished_ms, created_by";

JobRecord ReadJob(const Stmt& s) {
  JobRecord j;
  j.id = s.Text(0);
  j.request_id = s.Text(1);
  j.state = ParseJobState(s.Text(2)).value_or(JobState::kFailed);
  j.spec = s.Text(3);
  j.model_name = s.Text(4);
  j.base_model = s.Text(5);
  j.progress = s.Text(6);
  j.error = s.Text(7);
  j.model_version = s.Int(8);
  j.cancel_requested = s.Int(9) != 0;
  j.created_ms = s.Int(10);
  j.started_ms = s.Int(11);
  j.finished_ms = s.Int(12);
  j.created_by = s.Text(13);
  return j;
}

constexpr const char* kModelColumns = "name, version, path, job_id, metadata, created_ms";

ModelRecord ReadModel(const Stmt& s) {
  ModelRecord m;
  m.name = s.Text(0);
  m.version = s.Int(1);
  m.path = s.Text(2);
  m.job_id = s.Text(3);
  m.metadata = s.Text(4);
  m.created_ms = s.Int(5);
  return m;
}

}  // namespace

absl::string_view JobStateName(JobState s) {
  switch (s) {
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
  }
  return "FAILED";
}

std::optional<JobState> ParseJobState(absl::string_view name) {
  for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded, JobState::kFailed,
                     JobState::kCancelled}) {
    if (JobStateName(s) == name) return s;
  }
  return std::nullopt;
}

bool IsTerminal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

void SetStoreWriteFaultForTesting(std::function<absl::Status(const std::string& sql)> fault) {
  absl::MutexLock lock(&g_store_fault_mu);
  g_store_fault = std::move(fault);
}

absl::Status ValidateName(absl::string_view name, absl::string_view field) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '.';
  for (char c : name)
    ok = ok &&
         (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field,
      " must be 1-64 characters of letters, digits, '.', '_' or '-', not starting with '.'"));
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& data_dir) {
  for (const char* sub : {"", "datasets", "models", "jobs"})
    RETURN_IF_ERROR(MakeDirectories(JoinPath(data_dir, sub)));
  sqlite3* db = nullptr;
  const std::string path = JoinPath(data_dir, "berth.db");
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::InternalError(absl::StrCat("cannot open ", path, ": ", msg));
  }
  std::unique_ptr<Store> s(new Store(data_dir, db));
  absl::MutexLock lock(&s->mu_);  // nobody else has it yet; Exec's rule holds all the same
  sqlite3_busy_timeout(db, 5000);
  RETURN_IF_ERROR(s->Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(s->Exec("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(s->Exec("PRAGMA foreign_keys=ON"));
  Stmt v(db, "PRAGMA user_version");
  ASSIGN_OR_RETURN(bool row, v.Step());
  const int64_t version = row ? v.Int(0) : 0;
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " has schema version ", version, "; this Berth understands up to ", kSchemaVersion));
  }
  RETURN_IF_ERROR(s->Exec(kSchema));
  if (version == 1) {  // a database from before API tokens: jobs gain their creator
    RETURN_IF_ERROR(s->Exec("ALTER TABLE jobs ADD COLUMN created_by TEXT NOT NULL DEFAULT ''"));
  }
  RETURN_IF_ERROR(s->Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion).c_str()));
  return s;
}

Store::~Store() { sqlite3_close(db_); }

absl::Status Store::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("sqlite: ", msg));
  }
  return absl::OkStatus();
}

absl::StatusOr<DatasetRecord> Store::PutDataset(
    absl::string_view bytes, const std::string& name, int64_t rows,
    const std::map<std::string, int64_t>& label_counts) {
  DatasetRecord d;
  d.id = Sha256Hex(bytes);
  d.name = name;
  d.bytes = static_cast<int64_t>(bytes.size());
  d.rows = rows;
  d.label_counts = label_counts;
  d.created_ms = NowMs();
  std::string ext;
  size_t dot = name.rfind('.');
  if (dot != std::string::npos) ext = absl::AsciiStrToLower(name.substr(dot));
  if (ext != ".csv" && ext != ".tsv" && ext != ".jsonl") ext = ".jsonl";
  d.path = JoinPath("datasets", d.id + ext);
  // The file first (atomically), then the row: a crash in between leaves an orphan file that
  // the next upload of the same bytes reuses, never a row without its file.
  const std::string file = JoinPath(data_dir_, d.path);
  if (!IsRegularFile(file)) RETURN_IF_ERROR(WriteFileAtomically(file, bytes));
  Json counts(label_counts);
  absl::MutexLock lock(&mu_);
  Stmt s(db_,
         "INSERT OR IGNORE INTO datasets(id, name, bytes, rows, label_counts, path, created_ms) "
         "VALUES(?,?,?,?,?,?,?)");
  RETURN_IF_ERROR(s.ok());
  s.Bind(1, d.id)
      .Bind(2, d.name)
      .Bind(3, d.bytes)
      .Bind(4, d.rows)
      .Bind(5, counts.dump())
      .Bind(6, d.path)
      .Bind(7, d.created_ms);
  RETURN_IF_ERROR(s.Run());
  return d;
}

absl::StatusOr<DatasetRecord> Store::GetDataset(const std::string& id) {
  absl::MutexLock lock(&mu_);
  Stmt s(db_,
         "SELECT id, name, bytes, rows, label_counts, path, created_ms FROM datasets WHERE id = ?");
  RETURN_IF_ERROR(s.ok());
  s.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("dataset '", id, "' does not exist"));
  DatasetRecord d;
  d.id = s.Text(0);
  d.name = s.Text(1);
  d.bytes = s.Int(2);
  d.rows = s.Int(3);
  Json counts = Json::parse(s.Text(4), nullptr, false);
  if (counts.is_object()) d.label_counts = counts.get<std::map<std::string, int64_t>>();
  d.path = s.Text(5);
  d.created_ms = s.Int(6);
  return d;
}

absl::StatusOr<JobRecord> Store::GetJobLocked(const std::string& id) {
  Stmt s(db_, absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?").c_str());
  RETURN_IF_ERROR(s.ok());
  s.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job '", id, "' does not exist"));
  return ReadJob(s);
}

absl::StatusOr<std::optional<JobRecord>> Store::FindJobByRequestId(const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  Stmt q(db_, absl::StrCat("SELECT ", kJobColumns,
                           " FROM jobs WHERE request_id = ? AND request_id <> ''")
                  .c_str());
  RETURN_IF_ERROR(q.ok());
  q.Bind(1, request_id);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::optional<JobRecord>();
  return std::optional<JobRecord>(ReadJob(q));
}

absl::StatusOr<JobRecord> Store::GetJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  return GetJobLocked(id);
}

absl::StatusOr<JobRecord> Store::CreateJob(const std::string& spec, const std::string& model_name,
                                           const std::string& base_model,
                                           const std::string& request_id, bool* existed,
                                           const std::string& created_by) {
  absl::MutexLock lock(&mu_);
  if (existed != nullptr) *existed = false;
  Transaction tx(db_);
  RETURN_IF_ERROR(tx.begun());
  if (!request_id.empty()) {
    Stmt q(db_, absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE request_id = ?").c_str());
    RETURN_IF_ERROR(q.ok());
    q.Bind(1, request_id);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) {
      JobRecord existing = ReadJob(q);
      if (existing.spec != spec || existing.model_name != model_name) {
        return absl::FailedPreconditionError(
            absl::StrCat("request_id '", request_id,
                         "' was already used for a different request (job ", existing.id, ")"));
      }
      if (existed != nullptr) *existed = true;
      return existing;
    }
  }
  const std::string id = NewJobId();
  Stmt s(db_,
         "INSERT INTO jobs(id, request_id, state, spec, model_name, base_model, created_ms, "
         "created_by) "
         "VALUES(?,?,?,?,?,?,?,?)");
  RETURN_IF_ERROR(s.ok());
  s.Bind(1, id)
      .Bind(2, request_id)
      .Bind(3, JobStateName(JobState::kQueued))
      .Bind(4, spec)
      .Bind(5, model_name)
      .Bind(6, base_model)
      .Bind(7, NowMs())
      .Bind(8, created_by);
  RETURN_IF_ERROR(s.Run());
  ASSIGN_OR_RETURN(JobRecord j, GetJobLocked(id));
  RETURN_IF_ERROR(tx.Commit());
  return j;
}

absl::StatusOr<std::optional<JobRecord>> Store::ClaimNextQueued() {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  RETURN_IF_ERROR(tx.begun());
  Stmt q(db_, "SELECT id FROM jobs WHERE state = 'QUEUED' ORDER BY seq LIMIT 1");
  RETURN_IF_ERROR(q.ok());
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::optional<JobRecord>();
  const std::string id = q.Text(0);
  Stmt u(db_, "UPDATE jobs SET state = 'RUNNING', started_ms = ? WHERE id = ?");
  RETURN_IF_ERROR(u.ok());
  u.Bind(1, NowMs()).Bind(2, id);
  RETURN_IF_ERROR(u.Run());
  ASSIGN_OR_RETURN(JobRecord j, GetJobLocked(id));
  RETURN_IF_ERROR(tx.Commit());
  return std::optional<JobRecord>(std::move(j));
}

absl::Status Store::UpdateProgress(const std::string& id, const std::string& progress) {
  absl::MutexLock lock(&mu_);
  Stmt u(db_, "UPDATE jobs SET progress = ? WHERE id = ? AND state = 'RUNNING'");
  RETURN_IF_ERROR(u.ok());
  u.Bind(1, progress).Bind(2, id);
  RETURN_IF_ERROR(u.Run());
  if (sqlite3_changes(db_) == 0)
    return absl::FailedPreconditionError(absl::StrCat("job '", id, "' is not running"));
  return absl::OkStatus();
}

absl::Status Store::FinishJob(const std::string& id, JobState state, const std::string& error,
                              int64_t model_version) {
  if (!IsTerminal(state)) return absl::InvalidArgumentError("FinishJob needs a terminal state");
  absl::MutexLock lock(&mu_);
  Stmt u(db_,
         "UPDATE jobs SET state = ?, error = ?, model_version = ?, finished_ms = ? "
         "WHERE id = ? AND state IN ('RUNNING', 'QUEUED')");
  RETURN_IF_ERROR(u.ok());
  u.Bind(1, JobStateName(state)).Bind(2, error).Bind(3, model_version).Bind(4, NowMs()).Bind(5, id);
  RETURN_IF_ERROR(u.Run());
  if (sqlite3_changes(db_) == 0) {
    return absl::FailedPreconditionError(absl::StrCat("job '", id, "' is not active"));
  }
  return absl::OkStatus();
}

absl::StatusOr<JobRecord> Store::CancelJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  RETURN_IF_ERROR(tx.begun());
  ASSIGN_OR_RETURN(JobRecord j, GetJobLocked(id));
  if (j.state == JobState::kQueued) {
    Stmt u(db_, "UPDATE jobs SET state = 'CANCELLED', finished_ms = ? WHERE id = ?");
    RETURN_IF_ERROR(u.ok());
    u.Bind(1, NowMs()).Bind(2, id);
    RETURN_IF_ERROR(u.Run());
  } else if (j.state == JobState::kRunning) {
    Stmt u(db_, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?");
    RETURN_IF_ERROR(u.ok());
    u.Bind(1, id);
    RETURN_IF_ERROR(u.Run());
  }
  ASSIGN_OR_RETURN(j, GetJobLocked(id));
  RETURN_IF_ERROR(tx.Commit());
  return j;
}

absl::StatusOr<std::vector<std::string>> Store::RequeueRunningJobs() {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  RETURN_IF_ERROR(tx.begun());
  std::vector<std::string> ids;
  {
    Stmt q(db_, "SELECT id FROM jobs WHERE state = 'RUNNING' ORDER BY seq");
    RETURN_IF_ERROR(q.ok());
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      ids.push_back(q.Text(0));
    }
  }
  RETURN_IF_ERROR(Exec("UPDATE jobs SET state = 'QUEUED' WHERE state = 'RUNNING'"));
  RETURN_IF_ERROR(tx.Commit());
  return ids;
}

absl::StatusOr<std::map<JobState, int64_t>> Store::CountJobs(const std::string& created_by) {
  std::map<JobState, int64_t> counts;
  for (JobState st : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                      JobState::kFailed, JobState::kCancelled}) {
    counts[st] = 0;
  }
  absl::MutexLock lock(&mu_);
  Stmt q(db_, created_by.empty()
                  ? "SELECT state, COUNT(*) FROM jobs GROUP BY state"
                  : "SELECT state, COUNT(*) FROM jobs WHERE created_by = ? GROUP BY state");
  RETURN_IF_ERROR(q.ok());
  if (!created_by.empty()) q.Bind(1, created_by);
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    if (auto st = ParseJobState(q.Text(0))) counts[*st] = q.Int(1);
  }
  return counts;
}

absl::StatusOr<std::vector<JobRecord>> Store::ListJobs(std::optional<JobState> state, int page_size,
                                                       const std::string& page_token,
                                                       std::string* next_token,
                                                       const std::string& created_by) {
  if (page_size <= 0 || page_size > 1000) page_size = 100;
  int64_t before = INT64_MAX;
  if (!page_token.empty() && !absl::SimpleAtoi(page_token, &before)) {
    return absl::InvalidArgumentError("page_token is not one this server issued");
  }
  absl::MutexLock lock(&mu_);
  std::string sql = absl::StrCat(
      "SELECT ", kJobColumns, ", seq FROM jobs WHERE seq < ?", state ? " AND state = ?" : "",
      created_by.empty() ? "" : " AND created_by = ?", " ORDER BY seq DESC LIMIT ?");
  Stmt q(db_, sql.c_str());
  RETURN_IF_ERROR(q.ok());
  int i = 1;
  q.Bind(i++, before);
  if (state) q.Bind(i++, JobStateName(*state));
  if (!created_by.empty()) q.Bind(i++, created_by);
  q.Bind(i++, static_cast<int64_t>(page_size) + 1);
  std::vector<JobRecord> out;
  int64_t last_seq = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    if (static_cast<int>(out.size()) == page_size) {
      if (next_token) *next_token = std::to_string(last_seq);
      return out;
    }
    out.push_back(ReadJob(q));
    last_seq = q.Int(14);
  }
  if (next_token) next_token->clear();
  return out;
}

absl::Status Store::AddJobEvent(const std::string& job_id, const std::string& kind,
                                const std::string& body) {
  absl::MutexLock lock(&mu_);
  Stmt s(db_, "INSERT INTO job_events(job_id, at_ms, kind, body) VALUES(?,?,?,?)");
  RETURN_IF_ERROR(s.ok());
  s.Bind(1, job_id).Bind(2, NowMs()).Bind(3, kind).Bind(4, body);
  return s.Run();
}

absl::StatusOr<int64_t> Store::CountJobEvents(const std::string& job_id, const std::string& kind) {
  absl::MutexLock lock(&mu_);
  Stmt q(db_, "SELECT COUNT(*) FROM job_events WHERE job_id = ? AND kind = ?");
  RETURN_IF_ERROR(q.ok());
  q.Bind(1, job_id).Bind(2, kind);
  ASSIGN_OR_RETURN(bool row, q.Step());
  return row ? q.Int(0) : 0;
}

absl::StatusOr<ModelRecord> Store::AddModelVersion(const std::string& name,
                                                   const std::string& job_id,
                                                   const std::string& path,
                                                   const std::string& metadata) {
  return AddModelVersion(name, job_id, metadata,
                         [&](int64_t) -> absl::StatusOr<std::string> { return path; });
}

absl::StatusOr<ModelRecord> Store::AddModelVersion(const std::string& name,
                                                   const std::string& job_id,
                                                   const std::string& metadata,
                                                   const InstallFn& install) {
  RETURN_IF_ERROR(ValidateName(name, "model name"));
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  RETURN_IF_ERROR(tx.begun());
  if (!job_id.empty()) {
    Stmt q(db_, absl::StrCat("SELECT ", kModelColumns, " FROM models WHERE job_id = ?").c_str());
    RETURN_IF_ERROR(q.ok());
    q.Bind(1, job_id);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) return ReadModel(q);  // a retry after a crash between saving and recording
  }
  Stmt q(db_, "SELECT COALESCE(MAX(version), 0) FROM models WHERE name = ?");
  RETURN_IF_ERROR(q.ok());
  q.Bind(1, name);
  ASSIGN_OR_RETURN(bool row, q.Step());
  ModelRecord m;
  m.name = name;
  m.version = (row ? q.Int(0) : 0) + 1;
  ASSIGN_OR_RETURN(m.path, install(m.version));
  m.job_id = job_id;
  m.metadata = metadata;
  m.created_ms = NowMs();
  Stmt s(
      db_,
      "INSERT INTO models(name, version, path, job_id, metadata, created_ms) VALUES(?,?,?,?,?,?)");
  RETURN_IF_ERROR(s.ok());
  s.Bind(1, name)
      .Bind(2, m.version)
      .Bind(3, m.path)
      .Bind(4, job_id)
      .Bind(5, metadata)
      .Bind(6, m.created_ms);
  RETURN_IF_ERROR(s.Run());
  RETURN_IF_ERROR(tx.Commit());
  return m;
}

absl::StatusOr<ModelRecord> Store::GetModel(const std::string& name, int64_t version,
                                            const std::string& alias) {
  absl::MutexLock lock(&mu_);
  if (!alias.empty()) {
    Stmt a(db_, "SELECT version FROM aliases WHERE name = ? AND alias = ?");
    RETURN_IF_ERROR(a.ok());
    a.Bind(1, name).Bind(2, alias);
    ASSIGN_OR_RETURN(bool row, a.Step());
    if (!row)
      return absl::NotFoundError(absl::StrCat("model '", name, "' has no alias '", alias, "'"));
    version = a.Int(0);
  }
  const std::string sql =
      absl::StrCat("SELECT ", kModelColumns, " FROM models WHERE name = ? ",
                   version > 0 ? "AND version = ?" : "ORDER BY version DESC LIMIT 1");
  Stmt q(db_, sql.c_str());
  RETURN_IF_ERROR(q.ok());
  q.Bind(1, name);
  if (version > 0) q.Bind(2, version);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) {
    return absl::NotFoundError(version > 0
                                   ? absl::StrCat("model '", name, "' has no version ", version)
                                   : absl::StrCat("model '", name, "' does not exist"));
  }
  ModelRecord m = ReadModel(q);
  Stmt al(db_, "SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias");
  RETURN_IF_ERROR(al.ok());
  al.Bind(1, m.name).Bind(2, m.version);
  while (true) {
    ASSIGN_OR_RETURN(bool r, al.Step());
    if (!r) break;
    m.aliases.push_back(al.Text(0));
  }
  return m;
}

absl::StatusOr<std::vector<ModelRecord>> Store::ListModels() {
  std::vector<std::pair<std::string, int64_t>> keys;
  {
    absl::MutexLock lock(&mu_);
    Stmt q(db_, "SELECT name, version FROM models ORDER BY name, version");
    RETURN_IF_ERROR(q.ok());
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      keys.emplace_back(q.Text(0), q.Int(1));
    }
  }
  std::vector<ModelRecord> out;
  for (const auto& [name, version] : keys) {
    auto m = GetModel(name, version, "");
    if (m.ok()) out.push_back(std::move(*m));
  }
  return out;
}

absl::Status Store::SetAlias(const std::string& name, const std::string& alias, int64_t version) {
  RETURN_IF_ERROR(ValidateName(alias, "alias"));
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  RETURN_IF_ERROR(tx.begun());
  Stmt q(db_, "SELECT 1 FROM models WHERE name = ? AND version = ?");
  RETURN_IF_ERROR(q.ok());
  q.Bind(1, name).Bind(2, version);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", version));
  Stmt s(db_,
         "INSERT INTO aliases(name, alias, version) VALUES(?,?,?) "
         "ON CONFLICT(name, alias) DO UPDATE SET version = excluded.version");
  RETURN_IF_ERROR(s.ok());
  s.Bind(1, name).Bind(2, alias).Bind(3, version);
  RETURN_IF_ERROR(s.Run());
  return tx.Commit();
}

absl::Status Store::DeleteModel(const std::string& name, int64_t version,
                                const BaseModelUse& uses) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  RETURN_IF_ERROR(tx.begun());
  Stmt busy(db_, "SELECT id, base_model FROM jobs WHERE state IN ('QUEUED', 'RUNNING')");
  RETURN_IF_ERROR(busy.ok());
  while (true) {
    ASSIGN_OR_RETURN(bool row, busy.Step());
    if (!row) break;
    if (uses(busy.Text(1))) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", name, "' is the base model of active job ", busy.Text(0)));
    }
  }
  Stmt d(db_, version > 0 ? "DELETE FROM models WHERE name = ? AND version = ?"
                          : "DELETE FROM models WHERE name = ?");
  RETURN_IF_ERROR(d.ok());
  d.Bind(1, name);
  if (version > 0) d.Bind(2, version);
  RETURN_IF_ERROR(d.Run());
  if (sqlite3_changes(db_) == 0)
    return absl::NotFoundError(absl::StrCat("model '", name, "' does not exist"));
  Stmt a(db_, version > 0 ? "DELETE FROM aliases WHERE name = ? AND version = ?"
                          : "DELETE FROM aliases WHERE name = ?");
  RETURN_IF_ERROR(a.ok());
  a.Bind(1, name);
  if (version > 0) a.Bind(2, version);
  RETURN_IF_ERROR(a.Run());
  return tx.Commit();
}

}  // namespace berth::store
