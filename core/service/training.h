// The training side's front door: what UploadDataset and StartTraining do between the request
// and the store. The gRPC handlers convert the request and the reply; the rules live here:
// uploads that hash, parse and fit the limits; a spec that validates, datasets that fit the
// columns asked for, request_id idempotency, queue limits and the base-model policy.
#ifndef BERTH_CORE_SERVICE_TRAINING_H_
#define BERTH_CORE_SERVICE_TRAINING_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "core/service/job_runner.h"
#include "core/service/job_spec.h"
#include "core/store/store.h"
#include "core/train/dataset.h"

namespace berth::service {

struct AdmissionLimits {
  int max_queued_jobs = 1000;            // jobs waiting, all submitters together
  int max_queued_jobs_per_token = 50;    // jobs waiting, per submitter (with an id)
  int64_t max_dataset_rows = 5'000'000;  // rows per uploaded dataset
};

// An upload's name and columns, checked before its bytes arrive: a plain file name with a
// dataset extension (.csv, .tsv, .jsonl, .json), column names of at most 256 bytes.
absl::Status ValidateUpload(const std::string& file_name, const train::DatasetOptions& columns);

struct StoredDataset {
  store::DatasetRecord record;
  bool already_present = false;  // the same bytes were uploaded before
};

// Who submits. The authentication layer fills it in; with authentication off it is empty and
// allows everything.
struct Submitter {
  std::string id;  // the API token's id; "" when authentication is off
  // OK when the submitter may read registered model `name` (its base model).
  std::function<absl::Status(const std::string& name)> may_read_model;
  // OK when the submitter may see a job that `created_by` submitted (a retried request_id).
  std::function<absl::Status(const std::string& created_by)> may_see_job;
};

struct Submission {
  store::JobRecord job;
  bool existed = false;  // request_id was seen before: this is the job it created then
};

class Training {
 public:
  // `on_refusal(limit)` hears of each request a limit turned away ("train_procs",
  // "queued_jobs", "queued_jobs_per_token", "dataset_rows"), for metrics.
  Training(store::Store* store, JobRunner* runner, AdmissionLimits limits,
           std::function<void(const char* limit)> on_refusal);

  // Queues a fine-tuning job, or returns the one an earlier call with the same request_id
  // queued. Every error names the field at fault.
  absl::StatusOr<Submission> Submit(JobSpec spec, const std::string& request_id,
                                    const Submitter& who);

  // Stores an uploaded dataset under its SHA-256: the bytes must hash to `client_sha256` when
  // one is given, parse with `columns`, and hold at most max_dataset_rows rows.
  absl::StatusOr<StoredDataset> PutDataset(const std::string& data, const std::string& file_name,
                                           const train::DatasetOptions& columns,
                                           const std::string& client_sha256);

 private:
  absl::Status CheckDatasets(const JobSpec& spec) const;
  absl::Status CheckQueueRoom(const Submitter& who) const;

  store::Store* const store_;
  JobRunner* const runner_;
  const AdmissionLimits limits_;
  const std::function<void(const char*)> on_refusal_;
};

}  // namespace berth::service

#endif  // BERTH_CORE_SERVICE_TRAINING_H_
