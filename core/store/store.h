// The persistent state of a Berth server: a database holding datasets, jobs (a persistent
// queue), job events, model versions and aliases — SQLite under the data directory by default,
// or PostgreSQL (core/store/database.h) — with dataset files stored content-addressed and
// model directories under the data directory. No torch, no gRPC.
#ifndef BERTH_CORE_STORE_STORE_H_
#define BERTH_CORE_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace berth::store {

class Database;
class Listener;
struct SqlParam;
struct SqlResult;

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };
absl::string_view JobStateName(JobState s);  // "QUEUED", ...
std::optional<JobState> ParseJobState(absl::string_view name);
bool IsTerminal(JobState s);

struct DatasetRecord {
  std::string id;    // SHA-256 of the bytes
  std::string name;  // the uploader's file name (for the format and messages)
  int64_t bytes = 0;
  int64_t rows = 0;
  std::map<std::string, int64_t> label_counts;
  int64_t created_ms = 0;
  std::string path;  // datasets/<id><ext>, relative to the data directory
};

// One line of a job's history (job_events): a state change, an error, a resume, or a
// "progress" point (the stored progress JSON, as often as progress is stored).
struct JobEvent {
  int64_t id = 0;  // increasing across the store: a reader asks for those after the last it saw
  int64_t at_ms = 0;
  std::string kind;
  std::string body;
};

struct JobRecord {
  std::string id;
  std::string request_id;  // client-chosen idempotency key, may be empty
  JobState state = JobState::kQueued;
  std::string spec;        // the training request as JSON
  std::string model_name;  // output model
  std::string base_model;
  std::string progress;  // latest progress as JSON ("" before the first update)
  std::string error;
  int64_t model_version = 0;
  bool cancel_requested = false;
  int64_t created_ms = 0, started_ms = 0, finished_ms = 0;
  std::string created_by;  // the API token id that submitted it ("" without authentication)
  // The lease of the worker running it. Every claim takes the next attempt number, which is the
  // fencing token: a worker whose lease expired and whose job was claimed again finds its
  // attempt stale at its next write (ABORTED), and writes nothing more.
  int64_t attempt = 0;
  std::string lease_owner;       // the worker id that holds (or last held) it
  int64_t lease_expires_ms = 0;  // by the clock of that worker; renewed while it runs
};

// How long a claim holds a job unless its worker renews it (berth-server --job-lease).
inline constexpr int64_t kDefaultLeaseMs = 30000;

struct ModelRecord {
  std::string name;
  int64_t version = 0;
  std::string path;  // models/<name>/<version>, relative to the data directory
  std::string job_id;
  std::string metadata;  // JSON
  int64_t created_ms = 0;
  std::vector<std::string> aliases;
};

class Store {
 public:
  // Opens (creating if needed) the datasets/, models/, jobs/ folders under `data_dir` and the
  // database `url` names: "" for `data_dir`/berth.db, "sqlite:PATH", or
  // "postgresql://user:password@host:port/dbname" (libpq's URL). The schema is created or
  // migrated to the current version; a database from a newer Berth is FAILED_PRECONDITION,
  // an unreachable server UNAVAILABLE.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& data_dir,
                                                     const std::string& url = "");
  ~Store();

  const std::string& data_dir() const { return data_dir_; }
  const std::string& backend() const { return backend_; }  // "sqlite" or "postgresql"
  // Called after every SQL statement with its time and outcome (see Database); set before the
  // store is shared.
  void set_statement_observer(std::function<void(double seconds, const absl::Status&)> observer);

  // Datasets. The file is written atomically before the row exists; the same bytes give the
  // same id (and no second copy).
  absl::StatusOr<DatasetRecord> PutDataset(absl::string_view bytes, const std::string& name,
                                           int64_t rows,
                                           const std::map<std::string, int64_t>& label_counts);
  absl::StatusOr<DatasetRecord> GetDataset(const std::string& id);

  // Jobs. CreateJob with a request_id already used returns that job (idempotent retries) if
  // the spec is the same, and FAILED_PRECONDITION otherwise.
  // `existed`, if given, says whether the request_id had been used.
  absl::StatusOr<JobRecord> CreateJob(const std::string& spec, const std::string& model_name,
                                      const std::string& base_model, const std::string& request_id,
                                      bool* existed = nullptr, const std::string& created_by = "");
  absl::StatusOr<JobRecord> GetJob(const std::string& id);
  // The job a request_id created, if any.
  absl::StatusOr<std::optional<JobRecord>> FindJobByRequestId(const std::string& request_id);
  // The oldest QUEUED job, now RUNNING under a lease `owner` holds for `lease_ms` with the
  // job's next attempt number; nullopt when none is queued. Concurrent claims (any process)
  // never take the same job.
  absl::StatusOr<std::optional<JobRecord>> ClaimNextQueued(const std::string& owner = "",
                                                           int64_t lease_ms = kDefaultLeaseMs);
  // The writes of the worker holding a job's `attempt`. Each is ABORTED, writing nothing, when
  // the job is no longer RUNNING under that attempt (its lease expired and it was rescued or
  // claimed again, or it ended). `attempt` 0 matches whichever attempt runs it (for tools and
  // tests, never a worker).
  //
  // Stores the progress and renews the lease for `lease_ms`; returns whether a cancel was
  // requested (through any process sharing the database).
  absl::StatusOr<bool> UpdateProgress(const std::string& id, const std::string& progress,
                                      int64_t attempt = 0, int64_t lease_ms = kDefaultLeaseMs);
  // Renews the lease for `lease_ms`; returns whether a cancel was requested.
  absl::StatusOr<bool> RenewLease(const std::string& id, int64_t attempt, int64_t lease_ms);
  // Ends a job. Without an attempt, a RUNNING or QUEUED one (else FAILED_PRECONDITION).
  absl::Status FinishJob(const std::string& id, JobState state, const std::string& error,
                         int64_t model_version, int64_t attempt = 0);
  // A running job goes back to QUEUED in its old place (a worker shutting down, its checkpoint
  // written).
  absl::Status ReleaseJob(const std::string& id, int64_t attempt);
  // QUEUED jobs are cancelled at once; RUNNING ones get cancel_requested for their worker.
  absl::StatusOr<JobRecord> CancelJob(const std::string& id);
  // RUNNING jobs whose worker is gone go back to QUEUED (keeping their place) to resume from
  // their checkpoints: those whose lease expired by `now_ms`, and any `owner` holds (a worker
  // id at its start-up: its earlier life died; "" for none). Returns them as they were (with
  // the owner that lost them).
  absl::StatusOr<std::vector<JobRecord>> RescueJobs(const std::string& owner, int64_t now_ms);
  // Newest first; `page_token` is the opaque token of the previous page ("" for the first);
  // a non-empty `created_by` keeps only that token's jobs.
  absl::StatusOr<std::vector<JobRecord>> ListJobs(std::optional<JobState> state, int page_size,
                                                  const std::string& page_token,
                                                  std::string* next_token,
                                                  const std::string& created_by = "");
  // Jobs per state (every state present, zeros included); with `created_by`, that token's only.
  absl::StatusOr<std::map<JobState, int64_t>> CountJobs(const std::string& created_by = "");
  absl::Status AddJobEvent(const std::string& job_id, const std::string& kind,
                           const std::string& body);
  absl::StatusOr<int64_t> CountJobEvents(const std::string& job_id, const std::string& kind);
  // A job's events with id > `after_id`, oldest first, at most `limit`.
  absl::StatusOr<std::vector<JobEvent>> ListJobEvents(const std::string& job_id, int64_t after_id,
                                                      int limit);

  // Models. One version per job: registering the same job again returns its version.
  absl::StatusOr<ModelRecord> AddModelVersion(const std::string& name, const std::string& job_id,
                                              const std::string& path, const std::string& metadata);
  // The same, with the files put in place by `install(version)` inside the transaction: it
  // returns the path to record, and its failure records nothing. It is not called when the
  // job already has its version.
  // With an `attempt`, the version is only recorded (and `install` only called) while `job_id`
  // is RUNNING under that attempt: ABORTED otherwise (the worker lost its lease).
  using InstallFn = std::function<absl::StatusOr<std::string>(int64_t version)>;
  absl::StatusOr<ModelRecord> AddModelVersion(const std::string& name, const std::string& job_id,
                                              const std::string& metadata, const InstallFn& install,
                                              int64_t attempt = 0);
  // version 0 and no alias: the latest version.
  absl::StatusOr<ModelRecord> GetModel(const std::string& name, int64_t version,
                                       const std::string& alias);
  absl::StatusOr<std::vector<ModelRecord>> ListModels();
  // Points alias at an existing version; replaces any previous target in one transaction.
  absl::Status SetAlias(const std::string& name, const std::string& alias, int64_t version);
  // Removes the rows of one version (or, with version 0, all of them) and their aliases; the
  // caller removes the files. Refuses (FAILED_PRECONDITION) while a queued or running job
  // uses the model as its base: `uses(base_model)` says whether a job's base_model reads this
  // name and version (the service parses base models; the check and the delete are one
  // transaction).
  using BaseModelUse = std::function<bool(const std::string& base_model)>;
  absl::Status DeleteModel(const std::string& name, int64_t version, const BaseModelUse& uses);

  // The three changes above tell every process sharing the database when they commit, on
  // kRegistryChannel: "version NAME V", "alias NAME ALIAS V", "delete NAME V" (V 0: every
  // version). A listener of them (core/store/database.h), or nullptr where the backend cannot
  // tell (SQLite: one process).
  static constexpr const char* kRegistryChannel = "berth_registry";
  std::unique_ptr<Listener> ListenRegistry();

 private:
  Store(std::string data_dir, std::unique_ptr<Database> db);
  // A statement that writes (the fault-injection hook sees it first); `result`, if given,
  // receives its rows (RETURNING) and the count of rows it wrote.
  absl::Status Write(absl::string_view sql, const std::vector<SqlParam>& params,
                     SqlResult* result = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<JobRecord> GetJobLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string data_dir_, backend_;
  absl::Mutex mu_;
  std::unique_ptr<Database> db_ ABSL_GUARDED_BY(mu_);
};

// Fault injection for tests of failing disks: when set, every statement that writes asks
// `fault` with its SQL first, and an error fails it as a full disk or an I/O error would (the
// transaction around it rolls back). Process-wide; nullptr turns it off.
void SetStoreWriteFaultForTesting(std::function<absl::Status(const std::string& sql)> fault);

// Names of models and aliases: 1-64 of [A-Za-z0-9._-], not starting with '.'; the message
// names `field`.
absl::Status ValidateName(absl::string_view name, absl::string_view field);

}  // namespace berth::store

#endif  // BERTH_CORE_STORE_STORE_H_
