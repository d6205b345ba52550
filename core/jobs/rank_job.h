// What ranks 1..N-1 of a data-parallel job need to run the same fine-tuning as rank 0 (the
// server): the job's resolved paths and its spec (`berth train-rank --job FILE` reads it).
#ifndef BERTH_CORE_JOBS_RANK_JOB_H_
#define BERTH_CORE_JOBS_RANK_JOB_H_

#include "absl/status/statusor.h"
#include "core/jobs/job_spec.h"
#include "core/train/trainer.h"
#include "core/util/json.h"

namespace berth::jobs {

Json RankJobToJson(const train::FineTuneJob& job, const JobSpec& spec);
absl::StatusOr<train::FineTuneJob> RankJobFromJson(const Json& j);

}  // namespace berth::jobs

#endif  // BERTH_CORE_JOBS_RANK_JOB_H_
