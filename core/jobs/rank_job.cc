// The JSON a data-parallel job's ranks 1..N-1 read.
#include "core/jobs/rank_job.h"

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace berth::jobs {

Json RankJobToJson(const train::FineTuneJob& job, const JobSpec& spec) {
  return Json{{"spec", JobSpecToJson(spec)},  {"base_model", job.base_model},
              {"train_path", job.train_path}, {"validation_path", job.validation_path},
              {"output_dir", job.output_dir}, {"checkpoint_dir", job.checkpoint_dir},
              {"resume", job.resume},         {"threads", job.spec.num_threads}};
}

absl::StatusOr<train::FineTuneJob> RankJobFromJson(const Json& j) {
  if (!j.is_object() || !j.contains("spec"))
    return absl::InvalidArgumentError("rank job: no 'spec'");
  ASSIGN_OR_RETURN(JobSpec spec, JobSpecFromJson(j["spec"]));
  try {
    train::FineTuneJob job;
    job.base_model = j.at("base_model").get<std::string>();
    job.train_path = j.at("train_path").get<std::string>();
    job.validation_path = j.at("validation_path").get<std::string>();
    job.validation_split = spec.validation_split;
    job.data = spec.data;
    job.spec = spec.training;
    job.spec.num_threads = j.at("threads").get<int>();
    job.output_dir = j.at("output_dir").get<std::string>();
    job.checkpoint_dir = j.at("checkpoint_dir").get<std::string>();
    job.resume = j.at("resume").get<bool>();
    job.keep_checkpoints = true;  // rank 0 owns the job's files
    return job;
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("rank job: ", e.what()));
  }
}

}  // namespace berth::jobs
