// The training side's front door: what UploadDataset and StartTraining do between the request
// and the store. The gRPC handlers convert the request and the reply; the rules live here:
// uploads that hash, parse and fit the limits; a spec that validates, datasets that fit the
// columns asked for, request_id idempotency, queue limits and the base-model policy.
#ifndef BERTH_CORE_JOBS_TRAINING_H_
#define BERTH_CORE_JOBS_TRAINING_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/jobs/job_runner.h"
#include "core/jobs/job_spec.h"
#include "core/service/limits.h"
#include "core/store/store.h"

namespace berth::jobs {

// An upload's name and columns, checked before its bytes arrive: a plain file name with a
// dataset extension (.csv, .tsv, .jsonl, .json), column names of at most 256 bytes.
absl::Status ValidateUpload(const std::string& file_name, const data::DatasetOptions& columns);

// A job id as this server issues them: letters, digits and '-', at most 64.
absl::Status ValidateJobId(const std::string& id);

struct StoredDataset {
  store::DatasetRecord record;
  bool already_present = false;  // the same bytes were uploaded before
};

// Who asks. The authentication layer fills it in; with authentication off it is empty and
// allows everything.
struct Submitter {
  std::string id;             // the API token's id; "" when authentication is off
  bool sees_all_jobs = true;  // lists every job (an administrator), else only its own
  // OK when the submitter may read registered model `name` (its base model).
  std::function<absl::Status(const std::string& name)> may_read_model;
  // OK when the submitter may see a job that `created_by` submitted (a retried request_id, a
  // status, a watch, a cancel).
  std::function<absl::Status(const std::string& created_by)> may_see_job;
};

struct Submission {
  store::JobRecord job;
  bool existed = false;  // request_id was seen before: this is the job it created then
};

struct ListJobsRequest {
  int64_t page_size = 0;  // 0: 50
  std::string page_token;
  std::optional<store::JobState> state;  // only jobs in this state
  bool unknown_state = false;            // the door was given a state it does not know (refused)
};

struct JobPage {
  std::vector<store::JobRecord> jobs;
  std::string next_page_token;  // "" after the last page
};

// A job being watched: `on_change` is called after every stored change of it until the watch
// goes (which waits for a call in progress). Holds one of the service's stream slots.
class JobWatch {
 public:
  ~JobWatch();
  // The job as stored now.
  absl::StatusOr<store::JobRecord> Latest() const;

 private:
  friend class Training;
  JobWatch(store::Store* store, JobRunner* runner, std::string job_id, service::Slots::Held slot)
      : store_(store), runner_(runner), job_id_(std::move(job_id)), slot_(std::move(slot)) {}
  store::Store* const store_;
  JobRunner* const runner_;
  const std::string job_id_;
  service::Slots::Held slot_;
  int64_t token_ = 0;
};

// The training facade: datasets, and the jobs that train on them, as every front door sees
// them. Every error names the field at fault; a job another token submitted is
// PERMISSION_DENIED unless the caller sees all jobs.
class Training {
 public:
  // `streams` and `uploads` count what is held open across the service; `observer` may be null.
  Training(store::Store* store, JobRunner* runner, const service::Limits& limits,
           service::Slots* streams, service::Slots* uploads, service::Observer* observer);

  // Queues a fine-tuning job, or returns the one an earlier call with the same request_id
  // queued. Reads the datasets again: never on a network thread.
  absl::StatusOr<Submission> Submit(JobSpec spec, const std::string& request_id,
                                    const Submitter& who);
  absl::StatusOr<store::JobRecord> Get(const std::string& job_id, const Submitter& who) const;
  // Cancels a job: a queued one at once, a running one at its next micro-batch.
  absl::StatusOr<store::JobRecord> Cancel(const std::string& job_id, const Submitter& who);
  absl::StatusOr<JobPage> List(const ListJobsRequest& request, const Submitter& who) const;
  // The spec a request that sets nothing gets: every option's default, this server's device.
  JobSpec Defaults() const;
  // A job's history after event `after_id` (0: from its start), oldest first, at most
  // `page_size` (0: 1000; at most 10000): state changes, errors, and a "progress" point per
  // stored progress, from which its curves are drawn.
  absl::StatusOr<std::vector<store::JobEvent>> Events(const std::string& job_id, int64_t after_id,
                                                      int64_t page_size,
                                                      const Submitter& who) const;
  // Starts watching a job the caller may see; `on_change` runs on whichever thread stored the
  // change (keep it short, and never start or end a watch from it).
  absl::StatusOr<std::unique_ptr<JobWatch>> Watch(const std::string& job_id, const Submitter& who,
                                                  std::function<void()> on_change);

  // A dataset upload's start: an upload slot, and the buffer its bytes fill (its name and
  // columns are checked by ValidateUpload when they arrive).
  absl::StatusOr<service::Upload> BeginUpload() const;
  // Stores an uploaded dataset under its SHA-256: the bytes must hash to `client_sha256` when
  // one is given, parse with `columns`, and hold at most max_dataset_rows rows. Parses: never
  // on a network thread.
  absl::StatusOr<StoredDataset> PutDataset(const std::string& data, const std::string& file_name,
                                           const data::DatasetOptions& columns,
                                           const std::string& client_sha256);

 private:
  absl::Status CheckDatasets(const JobSpec& spec) const;
  absl::Status CheckQueueRoom(const Submitter& who) const;
  void Refused(const char* limit) const {
    if (observer_ != nullptr) observer_->OnRefusal(limit);
  }

  store::Store* const store_;
  JobRunner* const runner_;
  const service::Limits limits_;
  service::Slots* const streams_;
  service::Slots* const uploads_;
  service::Observer* const observer_;
};

}  // namespace berth::jobs

#endif  // BERTH_CORE_JOBS_TRAINING_H_
