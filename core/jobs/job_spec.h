// What a queued fine-tuning job asks for, as the store keeps it (JSON).
#ifndef BERTH_CORE_JOBS_JOB_SPEC_H_
#define BERTH_CORE_JOBS_JOB_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/data/dataset.h"
#include "core/data/training_spec.h"
#include "core/util/json.h"

namespace berth::jobs {

struct JobSpec {
  std::string base_model;
  std::string train_dataset;       // dataset id
  std::string validation_dataset;  // dataset id or ""
  double validation_split = 0.0;
  data::DatasetOptions data;
  data::TrainingSpec training;
  std::string model_name;
  int workers = 1;  // data-parallel processes (c10d ranks) on this server
};

Json JobSpecToJson(const JobSpec& spec);
absl::StatusOr<JobSpec> JobSpecFromJson(const Json& j);

// Checks every field (names, ranges, dataset ids); the message names the field.
absl::Status ValidateJobSpec(const JobSpec& spec);

}  // namespace berth::jobs

#endif  // BERTH_CORE_JOBS_JOB_SPEC_H_
