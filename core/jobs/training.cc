// Admission of fine-tuning jobs.
#include "core/jobs/training.h"

#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/data/dataset.h"
#include "core/jobs/job_runner.h"
#include "core/util/digest.h"
#include "core/util/files.h"
#include "core/util/status_macros.h"

namespace berth::jobs {
namespace {

// request_id is stored and printed: bounded, and no control characters in logs.
absl::Status CheckRequestId(const std::string& rid) {
  if (rid.size() > 128) return absl::InvalidArgumentError("request_id: longer than 128 characters");
  for (char c : rid) {
    if (static_cast<unsigned char>(c) < 0x20)
      return absl::InvalidArgumentError("request_id: control characters");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateUpload(const std::string& name, const data::DatasetOptions& columns) {
  if (name.empty()) return absl::InvalidArgumentError("info.file_name: required");
  if (name.size() > 255) return absl::InvalidArgumentError("info.file_name: longer than 255 bytes");
  if (absl::StrContains(name, '/') || absl::StrContains(name, '\\') ||
      absl::StrContains(name, "..") || absl::StrContains(name, '\0')) {
    return absl::InvalidArgumentError(
        "info.file_name: must be a plain file name (no path separators or '..')");
  }
  const std::string lower = absl::AsciiStrToLower(name);
  if (!absl::EndsWith(lower, ".csv") && !absl::EndsWith(lower, ".tsv") &&
      !absl::EndsWith(lower, ".jsonl") && !absl::EndsWith(lower, ".json")) {
    return absl::InvalidArgumentError(
        "info.file_name: the extension must be .csv, .tsv, .jsonl or .json");
  }
  for (const std::string* c :
       {&columns.text_column, &columns.text_pair_column, &columns.label_column}) {
    if (c->size() > 256)
      return absl::InvalidArgumentError("info: a column name is longer than 256 bytes");
  }
  return absl::OkStatus();
}

absl::Status ValidateJobId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("job_id: required");
  if (id.size() > 64) return absl::InvalidArgumentError("job_id: longer than 64 characters");
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') {
      return absl::InvalidArgumentError("job_id: only letters, digits and '-' are allowed");
    }
  }
  return absl::OkStatus();
}

Training::Training(store::Store* store, JobRunner* runner, const service::Limits& limits,
                   service::Slots* streams, service::Slots* uploads, service::Observer* observer)
    : store_(store),
      runner_(runner),
      limits_(limits),
      streams_(streams),
      uploads_(uploads),
      observer_(observer) {}

// The uploaded datasets are read again with this request's columns, so that a job that cannot
// train is refused now rather than failing in the queue.
absl::Status Training::CheckDatasets(const JobSpec& spec) const {
  const int64_t classes_hint = static_cast<int64_t>(spec.training.class_weights.size());
  for (const auto& [field, id] :
       {std::make_pair("train_dataset_id", spec.train_dataset),
        std::make_pair("validation_dataset_id", spec.validation_dataset)}) {
    if (id.empty()) continue;
    auto rec = store_->GetDataset(id);
    if (!rec.ok())
      return absl::NotFoundError(absl::StrCat(field, ": no dataset ", id, " (upload it first)"));
    ASSIGN_OR_RETURN(std::string contents,
                     ReadFileToString(JoinPath(store_->data_dir(), rec->path)));
    auto parsed = data::ParseDataset(contents, rec->name, spec.data);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " ", id.substr(0, 12), "… does not fit this request (text_column '",
                       spec.data.text_column, "', label_column '", spec.data.label_column,
                       "'): ", parsed.status().message()));
    }
    const size_t labels = data::CollectLabels(*parsed).size();
    if (classes_hint > 0 && std::string(field) == "train_dataset_id" &&
        classes_hint != static_cast<int64_t>(labels)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "hyperparameters.class_weights: ", classes_hint, " weights for ", labels, " labels"));
    }
  }
  return absl::OkStatus();
}

absl::Status Training::CheckQueueRoom(const Submitter& who) const {
  ASSIGN_OR_RETURN(auto all, store_->CountJobs());
  if (all[store::JobState::kQueued] >= limits_.max_queued_jobs) {
    Refused("queued_jobs");
    return absl::ResourceExhaustedError(absl::StrCat(
        all[store::JobState::kQueued], " jobs are queued, the server's limit; retry later"));
  }
  if (who.id.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto mine, store_->CountJobs(who.id));
  if (mine[store::JobState::kQueued] >= limits_.max_queued_jobs_per_token) {
    Refused("queued_jobs_per_token");
    return absl::ResourceExhaustedError(
        absl::StrCat("token '", who.id, "' has ", mine[store::JobState::kQueued],
                     " jobs queued, its limit; retry when one has started"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Submission> Training::Submit(JobSpec spec, const std::string& request_id,
                                            const Submitter& who) {
  if (spec.training.device.empty()) spec.training.device = runner_->options().default_device;
  RETURN_IF_ERROR(ValidateJobSpec(spec));
  if (spec.workers > runner_->options().max_train_procs) {
    Refused("train_procs");
    return absl::InvalidArgumentError(
        absl::StrCat("workers: ", spec.workers, " processes asked for, this server ", "allows ",
                     runner_->options().max_train_procs, " per job (--max-train-procs)"));
  }
  RETURN_IF_ERROR(CheckRequestId(request_id));
  RETURN_IF_ERROR(CheckDatasets(spec));
  ASSIGN_OR_RETURN(service::BaseModelRef pinned, runner_->base_models().Pin(spec.base_model));
  if (who.may_read_model && pinned.kind == service::BaseModelRef::Kind::kRegistered) {
    // A registered base model is read: the submitter's model permissions apply to it too.
    RETURN_IF_ERROR(who.may_read_model(pinned.model.name));
  }
  // A retry of a request already queued is not a new job, so the limits do not apply to it.
  ASSIGN_OR_RETURN(std::optional<store::JobRecord> earlier, store_->FindJobByRequestId(request_id));
  if (!earlier) RETURN_IF_ERROR(CheckQueueRoom(who));
  Submission out;
  ASSIGN_OR_RETURN(out.job, store_->CreateJob(JobSpecToJson(spec).dump(), spec.model_name,
                                              pinned.ToString(), request_id, &out.existed, who.id));
  if (out.existed) {
    if (who.may_see_job) RETURN_IF_ERROR(who.may_see_job(out.job.created_by));
    return out;
  }
  AddJobEventOrLog(store_, out.job.id, "queued", "");
  runner_->Wake();
  return out;
}

absl::StatusOr<StoredDataset> Training::PutDataset(const std::string& data,
                                                   const std::string& file_name,
                                                   const data::DatasetOptions& columns,
                                                   const std::string& client_sha256) {
  if (data.empty()) return absl::InvalidArgumentError("data: the upload is empty");
  const std::string digest = Sha256Hex(data);
  if (!client_sha256.empty() && absl::AsciiStrToLower(client_sha256) != digest) {
    return absl::InvalidArgumentError(
        absl::StrCat("sha256: the ", data.size(), " bytes received hash to ", digest,
                     ", not the digest the client sent; the upload was incomplete or corrupted and "
                     "was not stored"));
  }
  ASSIGN_OR_RETURN(data::Dataset parsed, data::ParseDataset(data, file_name, columns));
  if (static_cast<int64_t>(parsed.examples.size()) > limits_.max_dataset_rows) {
    Refused("dataset_rows");
    return absl::InvalidArgumentError(absl::StrCat("data: ", parsed.examples.size(),
                                                   " rows; this server takes at most ",
                                                   limits_.max_dataset_rows, " per dataset"));
  }
  StoredDataset out;
  out.already_present = store_->GetDataset(digest).ok();
  ASSIGN_OR_RETURN(out.record,
                   store_->PutDataset(data, file_name, static_cast<int64_t>(parsed.examples.size()),
                                      data::LabelCounts(parsed)));
  if (!out.already_present && observer_ != nullptr) observer_->OnDatasetStored(out.record.bytes);
  return out;
}

absl::StatusOr<store::JobRecord> Training::Get(const std::string& job_id,
                                               const Submitter& who) const {
  RETURN_IF_ERROR(ValidateJobId(job_id));
  ASSIGN_OR_RETURN(store::JobRecord job, store_->GetJob(job_id));
  if (who.may_see_job) RETURN_IF_ERROR(who.may_see_job(job.created_by));
  return job;
}

absl::StatusOr<store::JobRecord> Training::Cancel(const std::string& job_id, const Submitter& who) {
  RETURN_IF_ERROR(Get(job_id, who).status());
  return runner_->Cancel(job_id);
}

JobSpec Training::Defaults() const {
  JobSpec spec;
  spec.training.device = runner_->options().default_device;
  return spec;
}

absl::StatusOr<std::vector<store::JobEvent>> Training::Events(const std::string& job_id,
                                                              int64_t after_id, int64_t page_size,
                                                              const Submitter& who) const {
  constexpr int64_t kMaxEventPage = 10000;
  if (page_size < 0 || page_size > kMaxEventPage) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be in [0, ", kMaxEventPage, "]"));
  }
  if (after_id < 0) return absl::InvalidArgumentError("after_id: must not be negative");
  RETURN_IF_ERROR(Get(job_id, who).status());
  return store_->ListJobEvents(job_id, after_id,
                               static_cast<int>(page_size == 0 ? 1000 : page_size));
}

absl::StatusOr<JobPage> Training::List(const ListJobsRequest& r, const Submitter& who) const {
  if (r.page_size < 0 || r.page_size > limits_.max_page_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be in [0, ", limits_.max_page_size, "]"));
  }
  if (r.page_token.size() > 128)
    return absl::InvalidArgumentError("page_token: not a token this server issued");
  if (r.unknown_state) return absl::InvalidArgumentError("state: unknown job state");
  JobPage page;
  // Without admin rights a token lists its own jobs.
  ASSIGN_OR_RETURN(
      page.jobs,
      store_->ListJobs(r.state, r.page_size == 0 ? 50 : static_cast<int>(r.page_size), r.page_token,
                       &page.next_page_token, who.sees_all_jobs ? "" : who.id));
  return page;
}

absl::StatusOr<std::unique_ptr<JobWatch>> Training::Watch(const std::string& job_id,
                                                          const Submitter& who,
                                                          std::function<void()> on_change) {
  RETURN_IF_ERROR(Get(job_id, who).status());
  ASSIGN_OR_RETURN(service::Slots::Held slot, streams_->Take());
  std::unique_ptr<JobWatch> watch(new JobWatch(store_, runner_, job_id, std::move(slot)));
  watch->token_ = runner_->Subscribe(job_id, std::move(on_change));
  return watch;
}

JobWatch::~JobWatch() { runner_->Unsubscribe(token_); }

absl::StatusOr<store::JobRecord> JobWatch::Latest() const { return store_->GetJob(job_id_); }

absl::StatusOr<service::Upload> Training::BeginUpload() const {
  ASSIGN_OR_RETURN(service::Slots::Held slot, uploads_->Take());
  return service::Upload{std::move(slot),
                         service::UploadBuffer(limits_.max_upload_bytes, "the upload", observer_)};
}

}  // namespace berth::jobs
