// Training workers over the persistent job queue.
#include "core/service/job_runner.h"

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
#include "core/model/config.h"
#include "core/train/distributed.h"
#include "core/train/rank_processes.h"
#include "core/train/trainer.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/log.h"
#include "core/util/status_macros.h"

namespace berth::service {
namespace {

Json ProgressJson(const train::Progress& p, const Json& last_eval) {
  Json j = {{"update", p.update},
            {"total_updates", p.total_updates},
            {"epoch", p.epoch},
            {"loss", p.loss},
            {"learning_rate", p.lr},
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
  AddJobEventOrLog(store_, job.id, std::string(store::JobStateName(state)), error);
  if (observer_) {
    auto fresh = store_->GetJob(job.id);
    if (fresh.ok()) observer_(*fresh);
  }
  Notify(job.id);
  return s.ok();
}

void JobRunner::RunJob(store::JobRecord job) {
  Running running{job.attempt, std::make_shared<std::atomic<bool>>(false),
                  std::make_shared<std::atomic<bool>>(false),
                  std::make_shared<std::atomic<bool>>(false)};
  const std::shared_ptr<std::atomic<bool>>& flag = running.cancel;
  const std::shared_ptr<std::atomic<bool>>& lost = running.lost;
  {
    absl::MutexLock lock(&mu_);
    running_[job.id] = running;
    if (stopping_) *flag = true;
  }
  // A cancel that landed between the claim and the line above is in the store only.
  if (auto fresh = store_->GetJob(job.id); fresh.ok())
    job.cancel_requested = fresh->cancel_requested;
  if (job.cancel_requested) *flag = true;
  struct Unregister {
    JobRunner* self;
    std::string id;
    ~Unregister() {
      absl::MutexLock lock(&self->mu_);
      self->running_.erase(id);
    }
  } unregister{this, job.id};

  if (observer_) observer_(job);
  Notify(job.id);
  const std::string job_dir = JoinPath(store_->data_dir(), JoinPath("jobs", job.id));
  // Removes the job's files (watchers that see it end find them gone), then ends it; a worker
  // that lost the job to another touches neither, so the lease is checked first.
  auto end = [&](store::JobState state, const std::string& error, int64_t version) {
    if (!Renew(job.id, running)) return;
    LogIfError(RemoveAll(job_dir), "job.cleanup_failed", {{"job_id", job.id}});
    *running.ending = true;
    Finish(job, state, error, version);
  };
  // A failed job is not retried: its checkpoints would only take space.
  auto fail = [&](const absl::Status& s) {
    end(store::JobState::kFailed, std::string(s.message()), 0);
  };
  // The store still unreachable after RetryWhileUnavailable: the job is left RUNNING, with
  // its checkpoints, and resumes on whichever worker rescues it once its lease has expired.
  auto left_to_rescue = [&](const absl::Status& s) {
    LogEvent("job.store_unavailable", {{"job_id", job.id}, {"error", std::string(s.message())}});
  };
  if (job.cancel_requested) return end(store::JobState::kCancelled, "", 0);
  auto parsed = ParseJson(job.spec, "job spec");
  if (!parsed.ok()) return fail(parsed.status());
  auto spec = JobSpecFromJson(*parsed);
  if (!spec.ok()) return fail(spec.status());

  train::FineTuneJob ft;
  // Pinned to a version at submission.
  auto base = RetryWhileUnavailable([&] { return base_models_.Resolve(job.base_model); });
  if (absl::IsUnavailable(base.status())) return left_to_rescue(base.status());
  if (!base.ok()) return fail(base.status());
  ft.base_model = *base;
  auto train_data = RetryWhileUnavailable([&] { return store_->GetDataset(spec->train_dataset); });
  if (absl::IsUnavailable(train_data.status())) return left_to_rescue(train_data.status());
  if (!train_data.ok()) return fail(train_data.status());
  ft.train_path = JoinPath(store_->data_dir(), train_data->path);
  if (!spec->validation_dataset.empty()) {
    auto v = RetryWhileUnavailable([&] { return store_->GetDataset(spec->validation_dataset); });
    if (absl::IsUnavailable(v.status())) return left_to_rescue(v.status());
    if (!v.ok()) return fail(v.status());
    ft.validation_path = JoinPath(store_->data_dir(), v->path);
  }
  ft.validation_split = spec->validation_split;
  ft.data = spec->data;
  ft.spec = spec->training;
  ft.spec.num_threads = options_.threads_per_job;
  // Each attempt saves its model apart: one that lost its lease late cannot touch the next's.
  ft.output_dir = JoinPath(job_dir, absl::StrCat("model-", job.attempt));
  ft.may_write = [&]() -> absl::Status {
    if (Renew(job.id, running)) return absl::OkStatus();
    return absl::AbortedError(
        absl::StrCat("job '", job.id, "' lost its lease (attempt ", job.attempt, ")"));
  };
  auto checkpoints = AdoptCheckpoints(job_dir, job.attempt);
  if (!checkpoints.ok()) return fail(checkpoints.status());
  ft.checkpoint_dir = *checkpoints;
  ft.resume = IsRegularFile(JoinPath(ft.checkpoint_dir, "latest"));
  ft.keep_checkpoints = true;  // removed below once the version is recorded
  if (ft.resume) AddJobEventOrLog(store_, job.id, "resumed", ft.checkpoint_dir);

  // Data-parallel: this thread is rank 0; ranks 1..N-1 are child processes.
  std::unique_ptr<train::RankProcesses> ranks;
  std::unique_ptr<train::DistributedGroup> group;
  if (spec->workers > 1) {
    if (spec->workers > options_.max_train_procs) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("workers: ", spec->workers, " is more than this server's ",
                       "--max-train-procs (", options_.max_train_procs, ")")));
    }
    const int port = train::FreeLoopbackPort();
    const std::string rank_file = JoinPath(job_dir, "rank-job.json");
    absl::Status st = MakeDirectories(job_dir);
    if (st.ok()) st = WriteFileAtomically(rank_file, RankJobToJson(ft, *spec).dump(2));
    if (!st.ok()) return fail(st);
    auto started =
        train::RankProcesses::Start({options_.worker_binary, "train-rank", "--job", rank_file},
                                    spec->workers, /*first_rank=*/1, port, job_dir);
    if (!started.ok()) return fail(started.status());
    ranks = std::move(*started);
    train::DistributedOptions o;
    o.master_port = port;
    o.world_size = spec->workers;
    o.local_world_size = spec->workers;
    o.timeout = std::chrono::seconds(120);
    auto joined = train::DistributedGroup::Join(o);
    if (!joined.ok()) {
      absl::Status why = ranks->Wait(std::chrono::milliseconds(0));
      return fail(why.ok() ? joined.status() : why);
    }
    group = std::move(*joined);
    ft.group = group.get();
    AddJobEventOrLog(store_, job.id, "ranks",
                     absl::StrCat(spec->workers, " processes, rendezvous 127.0.0.1:", port));
  }

  auto last_store = std::chrono::steady_clock::now() - std::chrono::hours(1);
  Json last_eval;
  auto on_progress = [&](const train::Progress& p) {
    if (p.eval != nullptr) {
      last_eval = p.eval->ToJson();
      last_eval["update"] = p.update;
      last_eval["epoch"] = p.epoch;
    }
    const auto now = std::chrono::steady_clock::now();
    if (p.eval == nullptr && p.update != p.total_updates &&
        now - last_store < options_.progress_interval)
      return;
    last_store = now;
    if (progress_observer_) progress_observer_(job.id, p);
    auto cancel = store_->UpdateProgress(job.id, ProgressJson(p, last_eval).dump(), job.attempt,
                                         options_.lease.count());
    if (cancel.ok()) Notify(job.id);
    // A cancel through another process sharing the database is in the store only.
    if (cancel.ok() && *cancel) *flag = true;
    if (absl::IsAborted(cancel.status())) MarkLost(job.id, running, cancel.status());
  };
  auto result = train::RunFineTune(ft, on_progress, flag.get());
  if (ranks != nullptr) {
    // The other ranks end with rank 0 (after its last collective); one that died explains a
    // broken group better than rank 0's own error.
    absl::Status ended =
        ranks->Wait(result.ok() ? std::chrono::seconds(60) : std::chrono::seconds(10));
    if (!result.ok() && !ended.ok()) return fail(ended);
    if (result.ok() && !ended.ok() && !result->cancelled) return fail(ended);
  }
  if (!result.ok()) return fail(result.status());
  if (result->cancelled) {
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      stopping = stopping_;
    }
    if (*lost) return;
    auto fresh = store_->GetJob(job.id);
    if (stopping && !(fresh.ok() && fresh->cancel_requested)) {
      // Shutting down: the checkpoint is written; the job goes back to the queue in its old
      // place (if that write fails, its lease expires and it is rescued all the same).
      AddJobEventOrLog(store_, job.id, "interrupted", "server shutdown; checkpoint written");
      *running.ending = true;
      LogIfError(store_->ReleaseJob(job.id, job.attempt), "job.requeue_failed",
                 {{"job_id", job.id}});
      return;
    }
    return end(store::JobState::kCancelled, "", 0);
  }

  // Success: describe the model beside its weights, then move it into models/ and record the
  // version in one store transaction (a retry after a crash finds the same version).
  Json meta = {{"name", spec->model_name},
               {"job_id", job.id},
               {"base_model", spec->base_model},
               {"labels", result->labels},
               {"multi_label", spec->training.multi_label},
               {"train_loss", result->train_loss},
               {"updates", result->updates},
               {"train_dataset", spec->train_dataset}};
  if (result->best) meta["metrics"] = result->best->ToJson();
  if (result->best) meta["metrics"]["update"] = result->best_update;
  if (auto cfg = ReadJsonFile(JoinPath(ft.output_dir, "config.json")); cfg.ok()) {
    meta["model_type"] = cfg->value("model_type", "");
  }
  absl::Status s = WriteFileAtomically(JoinPath(ft.output_dir, "berth.json"), meta.dump(2));
  if (s.ok() && result->best) {
    s = WriteFileAtomically(JoinPath(ft.output_dir, "metrics.json"),
                            result->best->ToJson().dump(2));
  }
  if (!s.ok()) return fail(s);
  // Fenced: recorded (and installed) only while this attempt holds the job.
  auto record = RetryWhileUnavailable([&] {
    return store_->AddModelVersion(
        spec->model_name, job.id, meta.dump(),
        [&](int64_t version) -> absl::StatusOr<std::string> {
          const std::string rel =
              JoinPath("models", JoinPath(spec->model_name, std::to_string(version)));
          RETURN_IF_ERROR(InstallModel(ft.output_dir, JoinPath(store_->data_dir(), rel)));
          return rel;
        },
        job.attempt);
  });
  if (absl::IsAborted(record.status())) MarkLost(job.id, running, record.status());
  if (absl::IsUnavailable(record.status())) return left_to_rescue(record.status());
  if (!record.ok()) return fail(record.status());
  end(store::JobState::kSucceeded, "", record->version);
}

}  // namespace berth::service
