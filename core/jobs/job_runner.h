// The training side of the service: worker threads that take QUEUED jobs from the store in
// order, run them with the trainer, record progress, register the resulting model version and
// tell watchers about every change. Jobs survive any one process: a claim holds a lease that a
// keeper thread renews; a job whose worker died (its lease expired, or the same worker id
// starts again) goes back to the queue and resumes from its last checkpoint on any worker, and
// a worker that lost its lease writes nothing more (every write is fenced by the attempt).
#ifndef BERTH_CORE_JOBS_JOB_RUNNER_H_
#define BERTH_CORE_JOBS_JOB_RUNNER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/data/progress.h"
#include "core/jobs/job_spec.h"
#include "core/service/base_model.h"
#include "core/store/store.h"

namespace berth::jobs {

struct JobRunnerOptions {
  int workers = 1;                                   // jobs trained at the same time
  int threads_per_job = 0;                           // intra-op threads per job (0: one per core)
  service::BaseModelPolicyOptions base_models;       // --model-roots, --no-hub
  std::chrono::milliseconds progress_interval{500};  // how often progress is stored and sent
  // A job that was running each of the last this-many times the process died is failed
  // instead of retried, so one job that crashes the server cannot keep it in a restart loop.
  int max_interrupted_runs = 3;
  // Data-parallel jobs (workers > 1) run as this many local processes at most; the job runner
  // is rank 0 and starts ranks 1..N-1 as `worker_binary train-rank --job FILE` (the berth CLI).
  int max_train_procs = 1;
  std::string worker_binary;
  std::string default_device = "cpu";  // for jobs that name none
  // Whether this process claims and trains jobs (berth-server --role all or train), or only
  // queues them for processes that do (serve): then it neither recovers nor requeues jobs.
  bool claim_jobs = true;
  // Above zero, watchers also hear of changes other processes make to their jobs (a shared
  // database): the watched jobs are read this often.
  std::chrono::milliseconds watch_poll{0};
  // Who holds this process's leases ("": the host name, which Kubernetes makes the pod's). A
  // worker id that starts again takes back its own jobs at once; other dead workers' jobs wait
  // for their leases to expire. Two live processes must not share one.
  std::string worker_id;
  // How long a claim holds a job without renewal; renewed every third of it. A dead worker's
  // job resumes elsewhere after about this long.
  std::chrono::milliseconds lease{store::kDefaultLeaseMs};
};

// The host name (the default worker id).
std::string DefaultWorkerId();

// A job's event log is for people reading its history: a failed write is logged (event
// job.event_write_failed) and the job carries on.
void AddJobEventOrLog(store::Store* store, const std::string& job_id, const std::string& event,
                      const std::string& detail);

class JobRunner {
 public:
  JobRunner(store::Store* store, JobRunnerOptions options);
  ~JobRunner();  // Stop()

  // Recovers (below) and starts the workers and the lease keeper (with claim_jobs), and the
  // watch poller (with watch_poll).
  absl::Status Start();
  // Jobs whose worker died go back to the queue to resume from their checkpoints: those whose
  // lease expired, and at start-up (`at_start`) those this worker id held. A job that was
  // running at max_interrupted_runs deaths fails instead. Returns the ids queued again.
  absl::StatusOr<std::vector<std::string>> RecoverInterrupted(bool at_start = true);
  // Stops the workers: a running job writes a checkpoint and goes back to QUEUED (in its old
  // place), so the next Start() (or another worker) resumes it. Idempotent.
  void Stop();

  const JobRunnerOptions& options() const { return options_; }

  // Wakes a worker for a newly queued job.
  void Wake();
  // Cancels a job: a queued one at once, a running one at its next micro-batch.
  absl::StatusOr<store::JobRecord> Cancel(const std::string& job_id);

  // `listener` runs (on a worker or caller thread) after every stored change of the job.
  // It must not call Subscribe/Unsubscribe. Unsubscribe waits for a running call to end.
  using Listener = std::function<void()>;
  int64_t Subscribe(const std::string& job_id, Listener listener);
  void Unsubscribe(int64_t token);
  // Calls every listener of every job (e.g. so that watchers notice a shutdown).
  void NotifyAll();

  // This server's rules for base models (options().base_models).
  const service::BaseModelPolicy& base_models() const { return base_models_; }

  // Hooks for metrics and logs, set before Start(): the job after each state change, and each
  // training update (throttled like the stored progress; always for evaluations).
  using StateObserver = std::function<void(const store::JobRecord&)>;
  using ProgressObserver = std::function<void(const std::string& job_id, const data::Progress&)>;
  void set_state_observer(StateObserver observer) { observer_ = std::move(observer); }
  void set_progress_observer(ProgressObserver observer) {
    progress_observer_ = std::move(observer);
  }
  // Lease events: "renewed", "renew_failed" (the store unreachable), "lost" (this worker's
  // job was taken from it) and "rescued" (another worker's job put back in the queue).
  using LeaseObserver = std::function<void(const std::string& event)>;
  void set_lease_observer(LeaseObserver observer) { lease_observer_ = std::move(observer); }

 private:
  // What a worker holds while it runs a job.
  struct Running {
    int64_t attempt = 0;
    std::shared_ptr<std::atomic<bool>> cancel;  // the trainer stops at its next micro-batch
    std::shared_ptr<std::atomic<bool>> lost;    // the lease is gone: write nothing more
    std::shared_ptr<std::atomic<bool>> ending;  // its end is being written: renew no more
  };

  void WorkerLoop();
  // Renews the leases of the running jobs every third of the lease, and rescues other
  // workers' expired ones.
  void LeaseLoop();
  // Renews one job's lease; false when it was lost (then its flags are set).
  bool Renew(const std::string& job_id, const Running& running);
  // A write of the job was refused (ABORTED): says so (metric and log) ...
  void ReportLost(const std::string& job_id, int64_t attempt, const absl::Status& why);
  // ... and, for a running job, sets its flags so that it stops and writes nothing more.
  void MarkLost(const std::string& job_id, const Running& running, const absl::Status& why);
  void Observe(const std::string& lease_event) const {
    if (lease_observer_) lease_observer_(lease_event);
  }
  // Reads the watched jobs every watch_poll and notifies their watchers of changes.
  void WatchLoop();
  // Runs a claimed job to its end (its steps: JobRunner::Execution, in the .cc).
  void RunJob(store::JobRecord job);
  class Execution;
  friend class Execution;
  void Notify(const std::string& job_id);
  // Records the end of the job (fenced by its attempt); whether it landed.
  bool Finish(const store::JobRecord& job, store::JobState state, const std::string& error,
              int64_t version);

  store::Store* const store_;
  const JobRunnerOptions options_;  // worker_id filled in
  const service::BaseModelPolicy base_models_;
  StateObserver observer_;
  ProgressObserver progress_observer_;
  LeaseObserver lease_observer_;

  absl::Mutex mu_;
  absl::CondVar wake_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t wakeups_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Running> running_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_;  // Start and Stop only (the watch poller among them)

  absl::Mutex listeners_mu_;  // held while listeners run
  int64_t next_token_ ABSL_GUARDED_BY(listeners_mu_) = 1;
  std::multimap<std::string, std::pair<int64_t, Listener>> listeners_
      ABSL_GUARDED_BY(listeners_mu_);
};

}  // namespace berth::jobs

#endif  // BERTH_CORE_JOBS_JOB_RUNNER_H_
