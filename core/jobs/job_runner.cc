// Training workers over the persistent job queue.
#include "core/jobs/job_runner.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/jobs/rank_job.h"
#include "core/model/config.h"
#include "core/train/distributed.h"
#include "core/train/rank_processes.h"
#include "core/train/trainer.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/log.h"
#include "core/util/status_macros.h"

namespace berth::jobs {
namespace {

Json ProgressJson(const data::Progress& p, const Json& last_eval) {
  Json j = {{"update", p.update},
            {"total_updates", p.total_updates},
            {"epoch", p.epoch},
            {"loss", p.loss},
            {"learning_rate", p.lr},
            {"grad_norm", p.grad_norm},
            {"samples_per_second", p.samples_per_second},
            {"eta_seconds", p.eta_seconds}};
  if (p.world_size > 1) {
    j["world_size"] = p.world_size;
    j["samples_per_second_per_rank"] = p.samples_per_second / p.world_size;
    j["allreduce_share"] = p.allreduce_share;
  }
  if (!last_eval.is_null()) j["last_eval"] = last_eval;
  return j;
}

// Moves a finished model directory to its place under models/, replacing a stale copy a crash
// may have left there (its version was never recorded, so nothing refers to it).
absl::Status InstallModel(const std::string& from, const std::string& to) {
  RETURN_IF_ERROR(MakeDirectories(to.substr(0, to.rfind('/'))));
  if (IsDirectory(to)) RETURN_IF_ERROR(RemoveAll(to));
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot move ", from, " to ", to, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// The update of the checkpoint a checkpoint directory's "latest" names; -1 when it has none.
int64_t LatestUpdate(const std::string& root) {
  auto latest = ReadFileToString(JoinPath(root, "latest"));
  if (!latest.ok()) return -1;
  std::string name(absl::StripAsciiWhitespace(*latest));
  int64_t update = -1;
  if (!absl::StartsWith(name, "ckpt-") || !absl::SimpleAtoi(name.substr(5), &update) ||
      !IsDirectory(JoinPath(root, name)))
    return -1;
  return update;
}

// This attempt's checkpoint directory, `job_dir`/checkpoints-ATTEMPT, holding the newest
// checkpoint of the job's earlier attempts: their directory is renamed to it (one rename on the
// shared volume), so a worker that lost the job but still writes to its own directory can
// neither prune nor overwrite what this attempt resumes from.
absl::StatusOr<std::string> AdoptCheckpoints(const std::string& job_dir, int64_t attempt) {
  const std::string mine = JoinPath(job_dir, absl::StrCat("checkpoints-", attempt));
  if (!IsDirectory(job_dir) || IsDirectory(mine)) return mine;
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(job_dir));
  std::string best;
  int64_t best_update = -1;
  for (const std::string& n : names) {
    // "checkpoints": written by a Berth from before leases.
    if (n != "checkpoints" && !absl::StartsWith(n, "checkpoints-")) continue;
    const int64_t update = LatestUpdate(JoinPath(job_dir, n));
    if (update > best_update) {
      best_update = update;
      best = n;
    }
  }
  if (best.empty()) return mine;
  const std::string from = JoinPath(job_dir, best);
  if (std::rename(from.c_str(), mine.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot move ", from, " to ", mine, ": ", std::strerror(errno)));
  }
  return mine;
}

const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

// Runs `call` (a store read or write) again while the store is unreachable (UNAVAILABLE),
// backing off from 0.1 s to 2 s for about 30 s in all: a database restart or fail-over is no
// reason to fail a job, least of all one whose model is trained. Writes are fenced, so one that
// lands after the lease was lost is refused (ABORTED), never doubled.
template <typename F>
auto RetryWhileUnavailable(F call) -> decltype(call()) {
  auto result = call();
  int64_t waited_ms = 0;
  for (int64_t wait_ms = 100; absl::IsUnavailable(StatusOf(result)) && waited_ms < 30000;
       wait_ms = std::min<int64_t>(wait_ms * 2, 2000)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    waited_ms += wait_ms;
    result = call();
  }
  return result;
}

JobRunnerOptions WithWorkerId(JobRunnerOptions o) {
  if (o.worker_id.empty()) o.worker_id = DefaultWorkerId();
  return o;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string DefaultWorkerId() {
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') return "berth";
  return host;
}

void AddJobEventOrLog(store::Store* store, const std::string& job_id, const std::string& event,
                      const std::string& detail) {
  LogIfError(store->AddJobEvent(job_id, event, detail), "job.event_write_failed",
             {{"job_id", job_id}, {"event", event}});
}

JobRunner::JobRunner(store::Store* store, JobRunnerOptions options)
    : store_(store), options_(WithWorkerId(options)), base_models_(store, options.base_models) {}

JobRunner::~JobRunner() { Stop(); }

absl::StatusOr<std::vector<std::string>> JobRunner::RecoverInterrupted(bool at_start) {
  ASSIGN_OR_RETURN(std::vector<store::JobRecord> rescued,
                   store_->RescueJobs(at_start ? options_.worker_id : "", NowMs()));
  std::vector<std::string> resumed;
  for (const store::JobRecord& job : rescued) {
    const std::string& id = job.id;
    const bool mine = job.lease_owner == options_.worker_id && at_start;
    if (!mine) Observe("rescued");
    LogEvent(
        mine ? "job.requeued" : "job.rescued",
        {{"job_id", id}, {"worker", job.lease_owner}, {"attempt", std::to_string(job.attempt)}});
    RETURN_IF_ERROR(store_->AddJobEvent(
        id, "requeued",
        mine ? "the server stopped while the job was running"
             : absl::StrCat("worker '", job.lease_owner, "' stopped renewing its lease (attempt ",
                            job.attempt, "); rescued by '", options_.worker_id, "'")));
    ASSIGN_OR_RETURN(int64_t deaths, store_->CountJobEvents(id, "requeued"));
    if (deaths >= options_.max_interrupted_runs) {
      LogIfError(RemoveAll(JoinPath(store_->data_dir(), JoinPath("jobs", id))),
                 "job.cleanup_failed", {{"job_id", id}});
      RETURN_IF_ERROR(store_->FinishJob(id, store::JobState::kFailed,
                                        absl::StrCat("the server stopped unexpectedly ", deaths,
                                                     " times while this job was running; it is not "
                                                     "retried again (submit it anew to retry)"),
                                        0));
      continue;
    }
    resumed.push_back(id);
  }
  return resumed;
}

absl::Status JobRunner::Start() {
  if (options_.claim_jobs) RETURN_IF_ERROR(RecoverInterrupted(/*at_start=*/true).status());
  absl::MutexLock lock(&mu_);
  if (started_) return absl::OkStatus();
  started_ = true;
  stopping_ = false;
  if (options_.claim_jobs) {
    for (int i = 0; i < std::max(1, options_.workers); ++i)
      workers_.emplace_back([this] { WorkerLoop(); });
    workers_.emplace_back([this] { LeaseLoop(); });
  }
  if (options_.watch_poll.count() > 0) workers_.emplace_back([this] { WatchLoop(); });
  return absl::OkStatus();
}

void JobRunner::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (!started_) return;
    stopping_ = true;
    for (auto& [id, running] : running_) *running.cancel = true;
  }
  wake_.SignalAll();
  // Each interrupted job writes its checkpoint and goes back to the queue (RunJob).
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  absl::MutexLock lock(&mu_);
  started_ = false;
}

void JobRunner::Wake() {
  {
    absl::MutexLock lock(&mu_);
    ++wakeups_;
  }
  wake_.Signal();
}

absl::StatusOr<store::JobRecord> JobRunner::Cancel(const std::string& job_id) {
  ASSIGN_OR_RETURN(store::JobRecord job, store_->CancelJob(job_id));
  {
    absl::MutexLock lock(&mu_);
    auto it = running_.find(job_id);
    if (it != running_.end()) *it->second.cancel = true;
  }
  if (job.state == store::JobState::kCancelled && observer_) observer_(job);
  Notify(job_id);
  return job;
}

int64_t JobRunner::Subscribe(const std::string& job_id, Listener listener) {
  absl::MutexLock lock(&listeners_mu_);
  const int64_t token = next_token_++;
  listeners_.emplace(job_id, std::make_pair(token, std::move(listener)));
  return token;
}

void JobRunner::Unsubscribe(int64_t token) {
  absl::MutexLock lock(&listeners_mu_);
  for (auto it = listeners_.begin(); it != listeners_.end(); ++it) {
    if (it->second.first == token) {
      listeners_.erase(it);
      return;
    }
  }
}

void JobRunner::NotifyAll() {
  absl::MutexLock lock(&listeners_mu_);
  for (auto& [job_id, entry] : listeners_) entry.second();
}

void JobRunner::Notify(const std::string& job_id) {
  absl::MutexLock lock(&listeners_mu_);
  auto range = listeners_.equal_range(job_id);
  for (auto it = range.first; it != range.second; ++it) it->second.second();
}

void JobRunner::WorkerLoop() {
  uint64_t seen = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      seen = wakeups_;
    }
    auto next = store_->ClaimNextQueued(options_.worker_id, options_.lease.count());
    LogIfError(next.status(), "job.claim_failed");  // retried at the next wake-up or poll
    if (next.ok() && next->has_value()) {
      RunJob(std::move(**next));
      continue;
    }
    absl::MutexLock lock(&mu_);
    // Poll now and then as well, so that a missed wake-up costs at most two seconds.
    const absl::Time poll = absl::Now() + absl::Seconds(2);
    while (!stopping_ && wakeups_ == seen) {
      if (wake_.WaitWithDeadline(&mu_, poll)) break;  // timed out
    }
  }
}

bool JobRunner::Renew(const std::string& job_id, const Running& running) {
  if (*running.lost) return false;
  if (*running.ending) return true;
  auto renewed = store_->RenewLease(job_id, running.attempt, options_.lease.count());
  if (*running.ending) return true;  // it ended meanwhile: not running is no loss
  if (renewed.ok()) {
    Observe("renewed");
    if (*renewed) *running.cancel = true;  // cancelled through another process
    return true;
  }
  if (!absl::IsAborted(renewed.status())) {
    // The store is unreachable: keep training and try again; whether the lease held is
    // known when it answers (the version write is fenced either way).
    Observe("renew_failed");
    LogIfError(renewed.status(), "job.lease_renew_failed", {{"job_id", job_id}});
    return true;
  }
  MarkLost(job_id, running, renewed.status());
  return false;
}

void JobRunner::ReportLost(const std::string& job_id, int64_t attempt, const absl::Status& why) {
  Observe("lost");
  LogEvent("job.lease_lost", {{"job_id", job_id},
                              {"attempt", std::to_string(attempt)},
                              {"reason", std::string(why.message())}});
}

void JobRunner::MarkLost(const std::string& job_id, const Running& running,
                         const absl::Status& why) {
  if (running.lost->exchange(true)) return;  // said once
  ReportLost(job_id, running.attempt, why);
  *running.cancel = true;
}

void JobRunner::LeaseLoop() {
  const absl::Duration period = absl::FromChrono(options_.lease) / 3;
  while (true) {
    std::map<std::string, Running> running;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), period);
      if (stopping_) return;
      running = running_;
    }
    for (const auto& [id, r] : running) Renew(id, r);
    auto rescued = RecoverInterrupted(/*at_start=*/false);
    LogIfError(rescued.status(), "job.rescue_failed");  // tried again next period
    if (rescued.ok() && !rescued->empty()) {
      absl::MutexLock lock(&mu_);
      ++wakeups_;
      wake_.SignalAll();
    }
  }
}

void JobRunner::WatchLoop() {
  std::map<std::string, std::string> seen;  // job id -> what its watchers last heard
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::FromChrono(options_.watch_poll));
      if (stopping_) return;
    }
    std::vector<std::string> watched;
    {
      absl::MutexLock lock(&listeners_mu_);
      for (auto it = listeners_.begin(); it != listeners_.end();
           it = listeners_.upper_bound(it->first)) {
        watched.push_back(it->first);
      }
    }
    std::map<std::string, std::string> now;
    for (const std::string& id : watched) {
      auto job = store_->GetJob(id);
      if (!job.ok()) continue;  // unreachable for now, or gone: the watcher's own read says
      std::string key = absl::StrCat(store::JobStateName(job->state), "|", job->cancel_requested,
                                     "|", job->model_version, "|", job->progress);
      auto it = seen.find(id);
      if (it == seen.end() || it->second != key) Notify(id);
      now[id] = std::move(key);
    }
    seen = std::move(now);
  }
}

bool JobRunner::Finish(const store::JobRecord& job, store::JobState state, const std::string& error,
                       int64_t version) {
  // A failing disk may refuse the write for a moment: try a few times. If it never lands, the
  // job stays RUNNING in the store and is rescued when its lease expires (no job is lost, and
  // a version it registered is found again rather than duplicated).
  absl::Status s;
  for (int attempt = 0; attempt < 4; ++attempt) {
    s = RetryWhileUnavailable(
        [&] { return store_->FinishJob(job.id, state, error, version, job.attempt); });
    if (s.ok() || absl::IsAborted(s) || attempt == 3) break;
    std::this_thread::sleep_for(
        std::chrono::milliseconds(100 << (2 * attempt)));  // 0.1, 0.4, 1.6 s
  }
  if (absl::IsAborted(s)) {
    // Another worker has the job now; what it does is its own to report.
    ReportLost(job.id, job.attempt, s);
    return false;
  }
  if (!s.ok()) AddJobEventOrLog(store_, job.id, "error", std::string(s.message()));
  AddJobEventOrLog(store_, job.id, absl::AsciiStrToLower(store::JobStateName(state)), error);
  if (observer_) {
    auto fresh = store_->GetJob(job.id);
    if (fresh.ok()) observer_(*fresh);
  }
  Notify(job.id);
  return s.ok();
}

// One claimed job from its start to its end, in named steps: Prepare (spec, base model,
// datasets, checkpoints), StartRanks (data-parallel), Train, then Publish (the version) or the
// end a cancel or a shutdown asks for. A step's error fails the job, unless it was the store
// that stayed unreachable: then the job is left RUNNING, with its checkpoints, and resumes on
// whichever worker rescues it once its lease has expired.
class JobRunner::Execution {
 public:
  Execution(JobRunner* runner, store::JobRecord job);
  ~Execution();  // unregisters the job
  void Run();

 private:
  absl::Status Prepare();
  absl::Status StartRanks();
  absl::StatusOr<train::TrainResult> Train();
  absl::Status Publish(const train::TrainResult& result);
  void OnProgress(const data::Progress& p);
  // A cancelled run: a cancel asked for, or (without one) the server shutting down.
  void Stopped();
  // Removes the job's files (watchers that see it end find them gone), then ends it; a worker
  // that lost the job to another touches neither, so the lease is checked first.
  void End(store::JobState state, const std::string& error, int64_t version);
  // A failed job is not retried: its checkpoints would only take space.
  void Fail(const absl::Status& s);
  // A store call retried while the store is unreachable; one that stays unreachable marks the
  // run as left to be rescued.
  template <typename F>
  auto FromStore(F call) -> decltype(call());

  JobRunner* const r_;
  store::JobRecord job_;
  const Running held_;
  const std::string job_dir_;
  JobSpec spec_;
  train::FineTuneJob ft_;
  std::unique_ptr<train::RankProcesses> ranks_;
  std::unique_ptr<train::DistributedGroup> group_;
  bool store_unreachable_ = false;
  std::chrono::steady_clock::time_point last_store_ =
      std::chrono::steady_clock::now() - std::chrono::hours(1);
  Json last_eval_;
  int64_t version_ = 0;
};

JobRunner::Execution::Execution(JobRunner* runner, store::JobRecord job)
    : r_(runner),
      job_(std::move(job)),
      held_{job_.attempt, std::make_shared<std::atomic<bool>>(false),
            std::make_shared<std::atomic<bool>>(false), std::make_shared<std::atomic<bool>>(false)},
      job_dir_(JoinPath(r_->store_->data_dir(), JoinPath("jobs", job_.id))) {
  {
    absl::MutexLock lock(&r_->mu_);
    r_->running_[job_.id] = held_;
    if (r_->stopping_) *held_.cancel = true;
  }
  // A cancel that landed between the claim and the line above is in the store only.
  if (auto fresh = r_->store_->GetJob(job_.id); fresh.ok())
    job_.cancel_requested = fresh->cancel_requested;
  if (job_.cancel_requested) *held_.cancel = true;
}

JobRunner::Execution::~Execution() {
  absl::MutexLock lock(&r_->mu_);
  r_->running_.erase(job_.id);
}

template <typename F>
auto JobRunner::Execution::FromStore(F call) -> decltype(call()) {
  auto result = RetryWhileUnavailable(std::move(call));
  if (absl::IsUnavailable(StatusOf(result))) store_unreachable_ = true;
  return result;
}

void JobRunner::Execution::Run() {
  if (r_->observer_) r_->observer_(job_);
  r_->Notify(job_.id);
  if (job_.cancel_requested) return End(store::JobState::kCancelled, "", 0);
  if (absl::Status s = Prepare(); !s.ok()) return Fail(s);
  if (absl::Status s = StartRanks(); !s.ok()) return Fail(s);
  absl::StatusOr<train::TrainResult> result = Train();
  if (!result.ok()) return Fail(result.status());
  if (result->cancelled) return Stopped();
  if (absl::Status s = Publish(*result); !s.ok()) return Fail(s);
  End(store::JobState::kSucceeded, "", version_);
}

absl::Status JobRunner::Execution::Prepare() {
  ASSIGN_OR_RETURN(Json parsed, ParseJson(job_.spec, "job spec"));
  ASSIGN_OR_RETURN(spec_, JobSpecFromJson(parsed));
  // Pinned to a version at submission.
  ASSIGN_OR_RETURN(ft_.base_model,
                   FromStore([&] { return r_->base_models_.Resolve(job_.base_model); }));
  ASSIGN_OR_RETURN(store::DatasetRecord train_data,
                   FromStore([&] { return r_->store_->GetDataset(spec_.train_dataset); }));
  ft_.train_path = JoinPath(r_->store_->data_dir(), train_data.path);
  if (!spec_.validation_dataset.empty()) {
    ASSIGN_OR_RETURN(store::DatasetRecord v,
                     FromStore([&] { return r_->store_->GetDataset(spec_.validation_dataset); }));
    ft_.validation_path = JoinPath(r_->store_->data_dir(), v.path);
  }
  ft_.validation_split = spec_.validation_split;
  ft_.data = spec_.data;
  ft_.spec = spec_.training;
  ft_.spec.num_threads = r_->options_.threads_per_job;
  // Each attempt saves its model apart: one that lost its lease late cannot touch the next's.
  ft_.output_dir = JoinPath(job_dir_, absl::StrCat("model-", job_.attempt));
  ft_.may_write = [this]() -> absl::Status {
    if (r_->Renew(job_.id, held_)) return absl::OkStatus();
    return absl::AbortedError(
        absl::StrCat("job '", job_.id, "' lost its lease (attempt ", job_.attempt, ")"));
  };
  ASSIGN_OR_RETURN(ft_.checkpoint_dir, AdoptCheckpoints(job_dir_, job_.attempt));
  ft_.resume = IsRegularFile(JoinPath(ft_.checkpoint_dir, "latest"));
  ft_.keep_checkpoints = true;  // removed by End once the version is recorded
  AddJobEventOrLog(r_->store_, job_.id, ft_.resume ? "resumed" : "started",
                   absl::StrCat("attempt ", job_.attempt, " on ", r_->options_.worker_id,
                                ft_.resume ? " from " + ft_.checkpoint_dir : std::string()));
  return absl::OkStatus();
}

// Data-parallel: this thread is rank 0; ranks 1..N-1 are child processes, started as the
// CLI's launcher starts its ranks (train::LaunchLocalRanks).
absl::Status JobRunner::Execution::StartRanks() {
  if (spec_.workers <= 1) return absl::OkStatus();
  if (spec_.workers > r_->options_.max_train_procs) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers: ", spec_.workers, " is more than this server's ",
                     "--max-train-procs (", r_->options_.max_train_procs, ")"));
  }
  const std::string rank_file = JoinPath(job_dir_, "rank-job.json");
  RETURN_IF_ERROR(MakeDirectories(job_dir_));
  RETURN_IF_ERROR(WriteFileAtomically(rank_file, RankJobToJson(ft_, spec_).dump(2)));
  ASSIGN_OR_RETURN(
      train::LocalRanks ranks,
      train::LaunchLocalRanks({r_->options_.worker_binary, "train-rank", "--job", rank_file},
                              spec_.workers, /*first_rank=*/1, job_dir_));
  ranks_ = std::move(ranks.processes);
  train::DistributedOptions o;
  o.master_port = ranks.port;
  o.world_size = spec_.workers;
  o.local_world_size = spec_.workers;
  o.timeout = std::chrono::seconds(120);
  auto joined = train::DistributedGroup::Join(o);
  if (!joined.ok()) return ranks_->CauseAfterOwnFailure(joined.status(), std::chrono::seconds(2));
  group_ = std::move(*joined);
  ft_.group = group_.get();
  AddJobEventOrLog(r_->store_, job_.id, "ranks",
                   absl::StrCat(spec_.workers, " processes, rendezvous 127.0.0.1:", ranks.port));
  return absl::OkStatus();
}

absl::StatusOr<train::TrainResult> JobRunner::Execution::Train() {
  auto result = train::RunFineTune(
      ft_, [this](const data::Progress& p) { OnProgress(p); }, held_.cancel.get());
  if (ranks_ == nullptr) return result;
  // A rank that was killed, or failed first, explains a broken group better than rank 0's
  // own error; the other ranks end with rank 0 (after its last collective).
  if (!result.ok()) return ranks_->CauseAfterOwnFailure(result.status(), std::chrono::seconds(10));
  absl::Status ended = ranks_->Wait(std::chrono::seconds(60));
  if (!ended.ok() && !result->cancelled) return ended;
  return result;
}

void JobRunner::Execution::OnProgress(const data::Progress& p) {
  if (p.eval != nullptr) {
    last_eval_ = p.eval->ToJson();
    last_eval_["update"] = p.update;
    last_eval_["epoch"] = p.epoch;
  }
  const auto now = std::chrono::steady_clock::now();
  if (p.eval == nullptr && p.update != p.total_updates &&
      now - last_store_ < r_->options_.progress_interval)
    return;
  last_store_ = now;
  if (r_->progress_observer_) r_->progress_observer_(job_.id, p);
  auto cancel = r_->store_->UpdateProgress(job_.id, ProgressJson(p, last_eval_).dump(),
                                           job_.attempt, r_->options_.lease.count());
  // The job's curves: every stored point joins its history, an evaluation's metrics only on
  // the point that ran it.
  if (cancel.ok()) {
    AddJobEventOrLog(r_->store_, job_.id, "progress",
                     ProgressJson(p, p.eval != nullptr ? last_eval_ : Json()).dump());
    r_->Notify(job_.id);
  }
  // A cancel through another process sharing the database is in the store only.
  if (cancel.ok() && *cancel) *held_.cancel = true;
  if (absl::IsAborted(cancel.status())) r_->MarkLost(job_.id, held_, cancel.status());
}

void JobRunner::Execution::Stopped() {
  bool stopping;
  {
    absl::MutexLock lock(&r_->mu_);
    stopping = r_->stopping_;
  }
  if (*held_.lost) return;
  auto fresh = r_->store_->GetJob(job_.id);
  if (stopping && !(fresh.ok() && fresh->cancel_requested)) {
    // Shutting down: the checkpoint is written; the job goes back to the queue in its old
    // place (if that write fails, its lease expires and it is rescued all the same).
    AddJobEventOrLog(r_->store_, job_.id, "interrupted", "server shutdown; checkpoint written");
    *held_.ending = true;
    LogIfError(r_->store_->ReleaseJob(job_.id, job_.attempt), "job.requeue_failed",
               {{"job_id", job_.id}});
    return;
  }
  End(store::JobState::kCancelled, "", 0);
}

// Describes the model beside its weights, then moves it into models/ and records the version
// in one store transaction (a retry after a crash finds the same version).
absl::Status JobRunner::Execution::Publish(const train::TrainResult& result) {
  Json meta = {{"name", spec_.model_name},
               {"job_id", job_.id},
               {"base_model", spec_.base_model},
               {"labels", result.labels},
               {"multi_label", spec_.training.multi_label},
               {"score_loss", spec_.training.score_loss},
               {"train_loss", result.train_loss},
               {"updates", result.updates},
               {"train_dataset", spec_.train_dataset}};
  if (result.best) meta["metrics"] = result.best->ToJson();
  if (result.best) meta["metrics"]["update"] = result.best_update;
  if (auto cfg = ReadJsonFile(JoinPath(ft_.output_dir, "config.json")); cfg.ok()) {
    meta["model_type"] = cfg->value("model_type", "");
  }
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(ft_.output_dir, "berth.json"), meta.dump(2)));
  if (result.best) {
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(ft_.output_dir, "metrics.json"),
                                        result.best->ToJson().dump(2)));
  }
  // Fenced: recorded (and installed) only while this attempt holds the job.
  auto record = FromStore([&] {
    return r_->store_->AddModelVersion(
        spec_.model_name, job_.id, meta.dump(),
        [&](int64_t version) -> absl::StatusOr<std::string> {
          const std::string rel =
              JoinPath("models", JoinPath(spec_.model_name, std::to_string(version)));
          RETURN_IF_ERROR(InstallModel(ft_.output_dir, JoinPath(r_->store_->data_dir(), rel)));
          return rel;
        },
        job_.attempt);
  });
  if (absl::IsAborted(record.status())) r_->MarkLost(job_.id, held_, record.status());
  if (!record.ok()) return record.status();
  version_ = record->version;
  return absl::OkStatus();
}

void JobRunner::Execution::End(store::JobState state, const std::string& error, int64_t version) {
  if (!r_->Renew(job_.id, held_)) return;
  LogIfError(RemoveAll(job_dir_), "job.cleanup_failed", {{"job_id", job_.id}});
  *held_.ending = true;
  r_->Finish(job_, state, error, version);
}

void JobRunner::Execution::Fail(const absl::Status& s) {
  if (store_unreachable_) {
    LogEvent("job.store_unavailable", {{"job_id", job_.id}, {"error", std::string(s.message())}});
    return;
  }
  End(store::JobState::kFailed, std::string(s.message()), 0);
}

void JobRunner::RunJob(store::JobRecord job) { Execution(this, std::move(job)).Run(); }

}  // namespace berth::jobs
