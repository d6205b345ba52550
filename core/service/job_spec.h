// What a queued fine-tuning job asks for, as the store keeps it (JSON), plus model references
// ("NAME", "NAME:VERSION", "NAME@ALIAS") as users write them.
#ifndef BERTH_CORE_SERVICE_JOB_SPEC_H_
#define BERTH_CORE_SERVICE_JOB_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/train/dataset.h"
#include "core/train/trainer.h"
#include "core/util/json.h"

namespace berth::service {

struct JobSpec {
  std::string base_model;
  std::string train_dataset;       // dataset id
  std::string validation_dataset;  // dataset id or ""
  double validation_split = 0.0;
  train::DatasetOptions data;
  train::TrainingSpec training;
  std::string model_name;
  int workers = 1;  // data-parallel processes (c10d ranks) on this server
};

Json JobSpecToJson(const JobSpec& spec);
absl::StatusOr<JobSpec> JobSpecFromJson(const Json& j);

// What ranks 1..N-1 of a data-parallel job need to run the same fine-tuning as rank 0 (the
// server): the job's resolved paths and its spec (`berth train-rank --job FILE` reads it).
Json RankJobToJson(const train::FineTuneJob& job, const JobSpec& spec);
absl::StatusOr<train::FineTuneJob> RankJobFromJson(const Json& j);

// Checks every field (names, ranges, dataset ids); the message names the field.
absl::Status ValidateJobSpec(const JobSpec& spec);

struct ModelRef {
  std::string name;
  int64_t version = 0;  // 0: the latest (or the alias's)
  std::string alias;
};

// Parses "NAME", "NAME:VERSION" or "NAME@ALIAS"; `version`/`alias` given separately are
// merged in (a conflict is an error). Messages name `field`.
absl::StatusOr<ModelRef> ParseModelRef(absl::string_view text, int64_t version,
                                       absl::string_view alias, absl::string_view field);

}  // namespace berth::service

#endif  // BERTH_CORE_SERVICE_JOB_SPEC_H_
