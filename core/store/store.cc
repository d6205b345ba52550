// The store's logic over a Database (SQLite or PostgreSQL): one connection, serialised by a
// mutex; writes in transactions.
#include "core/store/store.h"

#include <chrono>
#include <random>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/store/database.h"
#include "core/util/digest.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"

namespace berth::store {
namespace {

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

ABSL_CONST_INIT absl::Mutex g_store_fault_mu(absl::kConstInit);
std::function<absl::Status(const std::string&)> g_store_fault ABSL_GUARDED_BY(g_store_fault_mu);

// A transaction that will write, rolled back unless Commit() was called.
class Transaction {
 public:
  explicit Transaction(Database* db) : db_(db), begun_(db->Begin()) {}
  ~Transaction() {
    if (begun_.ok() && !done_) (void)db_->Run("ROLLBACK");
  }
  const absl::Status& begun() const { return begun_; }
  absl::Status Commit() {
    done_ = true;
    return db_->Run("COMMIT").status();
  }

 private:
  Database* db_;
  absl::Status begun_;
  bool done_ = false;
};

constexpr const char* kJobColumns =
    "id, request_id, state, spec, model_name, base_model, progress, error, model_version, "
    "cancel_requested, created_ms, started_ms, finished_ms, created_by, attempt, lease_owner, "
    "lease_expires_ms";
constexpr int kJobColumnCount = 17;

JobRecord ReadJob(const SqlRow& s) {
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
  j.attempt = s.Int(14);
  j.lease_owner = s.Text(15);
  j.lease_expires_ms = s.Int(16);
  return j;
}

constexpr const char* kModelColumns = "name, version, path, job_id, metadata, created_ms";

ModelRecord ReadModel(const SqlRow& s) {
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

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& data_dir,
                                                   const std::string& url) {
  for (const char* sub : {"", "datasets", "models", "jobs"})
    RETURN_IF_ERROR(MakeDirectories(JoinPath(data_dir, sub)));
  std::unique_ptr<Database> db;
  if (url.empty()) {
    ASSIGN_OR_RETURN(db, OpenSqlite(JoinPath(data_dir, "berth.db")));
  } else if (absl::StartsWith(url, "sqlite:")) {
    ASSIGN_OR_RETURN(db, OpenSqlite(url.substr(7)));
  } else if (absl::StartsWith(url, "postgresql://") || absl::StartsWith(url, "postgres://")) {
    ASSIGN_OR_RETURN(db, OpenPostgres(url));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--store must be sqlite:PATH or postgresql://..., not '", RedactUrl(url), "'"));
  }
  RETURN_IF_ERROR(db->Migrate());
  return std::unique_ptr<Store>(new Store(data_dir, std::move(db)));
}

Store::Store(std::string data_dir, std::unique_ptr<Database> db)
    : data_dir_(std::move(data_dir)), backend_(db->backend()), db_(std::move(db)) {}

Store::~Store() = default;

std::unique_ptr<Listener> Store::ListenRegistry() {
  absl::MutexLock lock(&mu_);
  return db_->Listen(kRegistryChannel);
}

void Store::set_statement_observer(
    std::function<void(double seconds, const absl::Status&)> observer) {
  absl::MutexLock lock(&mu_);
  db_->set_statement_observer(std::move(observer));
}

absl::Status Store::Write(absl::string_view sql, const std::vector<SqlParam>& params,
                          SqlResult* result) {
  {
    absl::MutexLock lock(&g_store_fault_mu);
    if (g_store_fault) RETURN_IF_ERROR(g_store_fault(std::string(sql)));
  }
  ASSIGN_OR_RETURN(SqlResult r, db_->Run(sql, params));
  if (result != nullptr) *result = std::move(r);
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
  RETURN_IF_ERROR(
      Write("INSERT INTO datasets(id, name, bytes, rows, label_counts, path, created_ms) "
            "VALUES(?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            {d.id, d.name, d.bytes, d.rows, counts.dump(), d.path, d.created_ms}));
  return d;
}

absl::StatusOr<DatasetRecord> Store::GetDataset(const std::string& id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      SqlResult r,
      db_->Run("SELECT id, name, bytes, rows, label_counts, path, created_ms FROM datasets "
               "WHERE id = ?",
               {id}));
  if (r.rows.empty()) return absl::NotFoundError(absl::StrCat("dataset '", id, "' does not exist"));
  const SqlRow& s = r.rows[0];
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
  ASSIGN_OR_RETURN(SqlResult r,
                   db_->Run(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?"), {id}));
  if (r.rows.empty()) return absl::NotFoundError(absl::StrCat("job '", id, "' does not exist"));
  return ReadJob(r.rows[0]);
}

absl::StatusOr<std::optional<JobRecord>> Store::FindJobByRequestId(const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqlResult r,
                   db_->Run(absl::StrCat("SELECT ", kJobColumns,
                                         " FROM jobs WHERE request_id = ? AND request_id <> ''"),
                            {request_id}));
  if (r.rows.empty()) return std::optional<JobRecord>();
  return std::optional<JobRecord>(ReadJob(r.rows[0]));
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
  Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.begun());
  if (!request_id.empty()) {
    // Two replicas given the same request_id at once: the second waits here for the first.
    RETURN_IF_ERROR(db_->LockTable("jobs"));
    ASSIGN_OR_RETURN(SqlResult r, db_->Run(absl::StrCat("SELECT ", kJobColumns,
                                                        " FROM jobs WHERE request_id = ?"),
                                           {request_id}));
    if (!r.rows.empty()) {
      JobRecord existing = ReadJob(r.rows[0]);
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
  RETURN_IF_ERROR(
      Write("INSERT INTO jobs(id, request_id, state, spec, model_name, base_model, created_ms, "
            "created_by) VALUES(?,?,?,?,?,?,?,?)",
            {id, request_id, JobStateName(JobState::kQueued), spec, model_name, base_model, NowMs(),
             created_by}));
  ASSIGN_OR_RETURN(JobRecord j, GetJobLocked(id));
  RETURN_IF_ERROR(tx.Commit());
  return j;
}

absl::StatusOr<std::optional<JobRecord>> Store::ClaimNextQueued(const std::string& owner,
                                                                int64_t lease_ms) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.begun());
  ASSIGN_OR_RETURN(SqlResult q,
                   db_->Run(absl::StrCat("SELECT id FROM jobs WHERE state = 'QUEUED' ORDER BY seq "
                                         "LIMIT 1",
                                         db_->ForUpdateSkipLocked())));
  if (q.rows.empty()) return std::optional<JobRecord>();
  const std::string id = q.rows[0].Text(0);
  const int64_t now = NowMs();
  RETURN_IF_ERROR(
      Write("UPDATE jobs SET state = 'RUNNING', started_ms = ?, attempt = attempt + 1, "
            "lease_owner = ?, lease_expires_ms = ? WHERE id = ?",
            {now, owner, now + lease_ms, id}));
  ASSIGN_OR_RETURN(JobRecord j, GetJobLocked(id));
  RETURN_IF_ERROR(tx.Commit());
  return std::optional<JobRecord>(std::move(j));
}

namespace {

// The error of a write by a worker whose claim is no longer the job's.
absl::Status LeaseLost(const std::string& id, int64_t attempt) {
  return absl::AbortedError(
      absl::StrCat("job '", id, "' is no longer running under attempt ", attempt,
                   " (its lease expired and the job was rescued, or it ended)"));
}

}  // namespace

absl::StatusOr<bool> Store::UpdateProgress(const std::string& id, const std::string& progress,
                                           int64_t attempt, int64_t lease_ms) {
  absl::MutexLock lock(&mu_);
  SqlResult r;
  RETURN_IF_ERROR(
      Write("UPDATE jobs SET progress = ?, lease_expires_ms = ? WHERE id = ? AND state = 'RUNNING' "
            "AND (attempt = ? OR ? = 0) RETURNING cancel_requested",
            {progress, NowMs() + lease_ms, id, attempt, attempt}, &r));
  if (r.rows.empty()) {
    if (attempt > 0) return LeaseLost(id, attempt);
    return absl::FailedPreconditionError(absl::StrCat("job '", id, "' is not running"));
  }
  return r.rows[0].Int(0) != 0;
}

absl::StatusOr<bool> Store::RenewLease(const std::string& id, int64_t attempt, int64_t lease_ms) {
  absl::MutexLock lock(&mu_);
  SqlResult r;
  RETURN_IF_ERROR(
      Write("UPDATE jobs SET lease_expires_ms = ? WHERE id = ? AND state = 'RUNNING' AND "
            "attempt = ? RETURNING cancel_requested",
            {NowMs() + lease_ms, id, attempt}, &r));
  if (r.rows.empty()) return LeaseLost(id, attempt);
  return r.rows[0].Int(0) != 0;
}

absl::Status Store::FinishJob(const std::string& id, JobState state, const std::string& error,
                              int64_t model_version, int64_t attempt) {
  if (!IsTerminal(state)) return absl::InvalidArgumentError("FinishJob needs a terminal state");
  absl::MutexLock lock(&mu_);
  SqlResult r;
  RETURN_IF_ERROR(Write(
      attempt > 0 ? "UPDATE jobs SET state = ?, error = ?, model_version = ?, "
                    "finished_ms = ? WHERE id = ? AND state = 'RUNNING' AND attempt = ?"
                  : "UPDATE jobs SET state = ?, error = ?, model_version = ?, "
                    "finished_ms = ? WHERE id = ? AND state IN ('RUNNING', 'QUEUED')",
      attempt > 0
          ? std::vector<SqlParam>{JobStateName(state), error, model_version, NowMs(), id, attempt}
          : std::vector<SqlParam>{JobStateName(state), error, model_version, NowMs(), id},
      &r));
  if (r.changes == 0) {
    if (attempt > 0) return LeaseLost(id, attempt);
    return absl::FailedPreconditionError(absl::StrCat("job '", id, "' is not active"));
  }
  return absl::OkStatus();
}

absl::Status Store::ReleaseJob(const std::string& id, int64_t attempt) {
  absl::MutexLock lock(&mu_);
  SqlResult r;
  RETURN_IF_ERROR(
      Write("UPDATE jobs SET state = 'QUEUED', lease_expires_ms = 0 WHERE id = ? AND "
            "state = 'RUNNING' AND attempt = ?",
            {id, attempt}, &r));
  if (r.changes == 0) return LeaseLost(id, attempt);
  return absl::OkStatus();
}

absl::StatusOr<JobRecord> Store::CancelJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.begun());
  ASSIGN_OR_RETURN(JobRecord j, GetJobLocked(id));
  if (j.state == JobState::kQueued) {
    RETURN_IF_ERROR(Write(
        "UPDATE jobs SET state = 'CANCELLED', finished_ms = ? WHERE id = ? AND state = 'QUEUED'",
        {NowMs(), id}));
  } else if (j.state == JobState::kRunning) {
    RETURN_IF_ERROR(Write("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", {id}));
  }
  ASSIGN_OR_RETURN(j, GetJobLocked(id));
  RETURN_IF_ERROR(tx.Commit());
  return j;
}

absl::StatusOr<std::vector<JobRecord>> Store::RescueJobs(const std::string& owner, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.begun());
  // Locked rows are skipped: a worker renewing its lease right now still holds it.
  ASSIGN_OR_RETURN(
      SqlResult q,
      db_->Run(absl::StrCat("SELECT ", kJobColumns,
                            " FROM jobs WHERE state = 'RUNNING' AND (lease_expires_ms < ? OR "
                            "(lease_owner = ? AND ? <> '')) ORDER BY seq",
                            db_->ForUpdateSkipLocked()),
               {now_ms, owner, owner}));
  std::vector<JobRecord> rescued;
  for (const SqlRow& row : q.rows) {
    rescued.push_back(ReadJob(row));
    RETURN_IF_ERROR(
        Write("UPDATE jobs SET state = 'QUEUED', lease_expires_ms = 0 WHERE id = ? AND attempt = ?",
              {rescued.back().id, rescued.back().attempt}));
  }
  RETURN_IF_ERROR(tx.Commit());
  return rescued;
}

absl::StatusOr<std::map<JobState, int64_t>> Store::CountJobs(const std::string& created_by) {
  std::map<JobState, int64_t> counts;
  for (JobState st : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                      JobState::kFailed, JobState::kCancelled}) {
    counts[st] = 0;
  }
  absl::MutexLock lock(&mu_);
  std::vector<SqlParam> params;
  if (!created_by.empty()) params.emplace_back(created_by);
  ASSIGN_OR_RETURN(
      SqlResult q,
      db_->Run(created_by.empty()
                   ? "SELECT state, COUNT(*) FROM jobs GROUP BY state"
                   : "SELECT state, COUNT(*) FROM jobs WHERE created_by = ? GROUP BY state",
               params));
  for (const SqlRow& row : q.rows) {
    if (auto st = ParseJobState(row.Text(0))) counts[*st] = row.Int(1);
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
  std::vector<SqlParam> params = {before};
  if (state) params.emplace_back(JobStateName(*state));
  if (!created_by.empty()) params.emplace_back(created_by);
  params.emplace_back(static_cast<int64_t>(page_size) + 1);
  ASSIGN_OR_RETURN(SqlResult q, db_->Run(sql, params));
  std::vector<JobRecord> out;
  int64_t last_seq = 0;
  for (const SqlRow& row : q.rows) {
    if (static_cast<int>(out.size()) == page_size) {
      if (next_token) *next_token = std::to_string(last_seq);
      return out;
    }
    out.push_back(ReadJob(row));
    last_seq = row.Int(kJobColumnCount);
  }
  if (next_token) next_token->clear();
  return out;
}

absl::Status Store::AddJobEvent(const std::string& job_id, const std::string& kind,
                                const std::string& body) {
  absl::MutexLock lock(&mu_);
  return Write("INSERT INTO job_events(job_id, at_ms, kind, body) VALUES(?,?,?,?)",
               {job_id, NowMs(), kind, body});
}

absl::StatusOr<int64_t> Store::CountJobEvents(const std::string& job_id, const std::string& kind) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      SqlResult q,
      db_->Run("SELECT COUNT(*) FROM job_events WHERE job_id = ? AND kind = ?", {job_id, kind}));
  return q.rows.empty() ? 0 : q.rows[0].Int(0);
}

absl::StatusOr<std::vector<JobEvent>> Store::ListJobEvents(const std::string& job_id,
                                                           int64_t after_id, int limit) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqlResult q, db_->Run("SELECT id, at_ms, kind, body FROM job_events WHERE "
                                         "job_id = ? AND id > ? ORDER BY id LIMIT ?",
                                         {job_id, after_id, int64_t{limit}}));
  std::vector<JobEvent> events;
  events.reserve(q.rows.size());
  for (const SqlRow& r : q.rows) events.push_back({r.Int(0), r.Int(1), r.Text(2), r.Text(3)});
  return events;
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
                                                   const InstallFn& install, int64_t attempt) {
  RETURN_IF_ERROR(ValidateName(name, "model name"));
  absl::MutexLock lock(&mu_);
  Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.begun());
  if (attempt > 0) {
    // The fence: the job's row stays locked until the version is recorded, so no rescuer can
    // requeue it in between (PostgreSQL; SQLite's write transaction excludes every writer).
    ASSIGN_OR_RETURN(SqlResult held,
                     db_->Run(absl::StrCat("SELECT 1 FROM jobs WHERE id = ? AND state = 'RUNNING' "
                                           "AND attempt = ?",
                                           db_->ForUpdate()),
                              {job_id, attempt}));
    if (held.rows.empty()) return LeaseLost(job_id, attempt);
  }
  // Versions are numbered by reading the highest: writers of models take turns.
  RETURN_IF_ERROR(db_->LockTable("models"));
  if (!job_id.empty()) {
    ASSIGN_OR_RETURN(SqlResult q, db_->Run(absl::StrCat("SELECT ", kModelColumns,
                                                        " FROM models WHERE job_id = ?"),
                                           {job_id}));
    if (!q.rows.empty())
      return ReadModel(q.rows[0]);  // a retry after a crash between saving and recording
  }
  ASSIGN_OR_RETURN(SqlResult q,
                   db_->Run("SELECT COALESCE(MAX(version), 0) FROM models WHERE name = ?", {name}));
  ModelRecord m;
  m.name = name;
  m.version = (q.rows.empty() ? 0 : q.rows[0].Int(0)) + 1;
  ASSIGN_OR_RETURN(m.path, install(m.version));
  m.job_id = job_id;
  m.metadata = metadata;
  m.created_ms = NowMs();
  RETURN_IF_ERROR(Write(
      "INSERT INTO models(name, version, path, job_id, metadata, created_ms) VALUES(?,?,?,?,?,?)",
      {name, m.version, m.path, job_id, metadata, m.created_ms}));
  RETURN_IF_ERROR(db_->Notify(kRegistryChannel, absl::StrCat("version ", name, " ", m.version)));
  RETURN_IF_ERROR(tx.Commit());
  return m;
}

absl::StatusOr<ModelRecord> Store::GetModel(const std::string& name, int64_t version,
                                            const std::string& alias) {
  absl::MutexLock lock(&mu_);
  if (!alias.empty()) {
    ASSIGN_OR_RETURN(
        SqlResult a,
        db_->Run("SELECT version FROM aliases WHERE name = ? AND alias = ?", {name, alias}));
    if (a.rows.empty())
      return absl::NotFoundError(absl::StrCat("model '", name, "' has no alias '", alias, "'"));
    version = a.rows[0].Int(0);
  }
  const std::string sql =
      absl::StrCat("SELECT ", kModelColumns, " FROM models WHERE name = ? ",
                   version > 0 ? "AND version = ?" : "ORDER BY version DESC LIMIT 1");
  std::vector<SqlParam> params = {name};
  if (version > 0) params.emplace_back(version);
  ASSIGN_OR_RETURN(SqlResult q, db_->Run(sql, params));
  if (q.rows.empty()) {
    return absl::NotFoundError(version > 0
                                   ? absl::StrCat("model '", name, "' has no version ", version)
                                   : absl::StrCat("model '", name, "' does not exist"));
  }
  ModelRecord m = ReadModel(q.rows[0]);
  ASSIGN_OR_RETURN(
      SqlResult al,
      db_->Run("SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias",
               {m.name, m.version}));
  for (const SqlRow& row : al.rows) m.aliases.push_back(row.Text(0));
  return m;
}

absl::StatusOr<std::vector<ModelRecord>> Store::ListModels() {
  std::vector<std::pair<std::string, int64_t>> keys;
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(SqlResult q,
                     db_->Run("SELECT name, version FROM models ORDER BY name, version"));
    for (const SqlRow& row : q.rows) keys.emplace_back(row.Text(0), row.Int(1));
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
  Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.begun());
  RETURN_IF_ERROR(db_->LockTable("models"));  // the version cannot be deleted meanwhile
  ASSIGN_OR_RETURN(SqlResult q, db_->Run("SELECT 1 FROM models WHERE name = ? AND version = ?",
                                         {name, version}));
  if (q.rows.empty())
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", version));
  RETURN_IF_ERROR(
      Write("INSERT INTO aliases(name, alias, version) VALUES(?,?,?) "
            "ON CONFLICT(name, alias) DO UPDATE SET version = excluded.version",
            {name, alias, version}));
  RETURN_IF_ERROR(
      db_->Notify(kRegistryChannel, absl::StrCat("alias ", name, " ", alias, " ", version)));
  return tx.Commit();
}

absl::Status Store::DeleteModel(const std::string& name, int64_t version,
                                const BaseModelUse& uses) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.begun());
  // No job may be queued on the model while its rows go.
  RETURN_IF_ERROR(db_->LockTable("jobs"));
  RETURN_IF_ERROR(db_->LockTable("models"));
  ASSIGN_OR_RETURN(
      SqlResult busy,
      db_->Run("SELECT id, base_model FROM jobs WHERE state IN ('QUEUED', 'RUNNING')"));
  for (const SqlRow& row : busy.rows) {
    if (uses(row.Text(1))) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", name, "' is the base model of active job ", row.Text(0)));
    }
  }
  std::vector<SqlParam> params = {name};
  if (version > 0) params.emplace_back(version);
  SqlResult deleted;
  RETURN_IF_ERROR(Write(version > 0 ? "DELETE FROM models WHERE name = ? AND version = ?"
                                    : "DELETE FROM models WHERE name = ?",
                        params, &deleted));
  if (deleted.changes == 0)
    return absl::NotFoundError(absl::StrCat("model '", name, "' does not exist"));
  RETURN_IF_ERROR(Write(version > 0 ? "DELETE FROM aliases WHERE name = ? AND version = ?"
                                    : "DELETE FROM aliases WHERE name = ?",
                        params));
  RETURN_IF_ERROR(db_->Notify(kRegistryChannel, absl::StrCat("delete ", name, " ", version)));
  return tx.Commit();
}

}  // namespace berth::store
