// JSON form of queued jobs and parsing of model references.
#include "core/service/job_spec.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/store/store.h"
#include "core/util/status_macros.h"

namespace berth::service {

Json JobSpecToJson(const JobSpec& s) {
  const train::TrainingSpec& t = s.training;
  Json training = Json::object();
#define BERTH_TO_JSON(field, flags, help) training[#field] = t.field;
  BERTH_TRAINING_SPEC_FIELDS(BERTH_TO_JSON)
#undef BERTH_TO_JSON
  training["precision"] = t.precision == train::Precision::kBf16 ? "bf16" : "fp32";
  training["metric_for_best"] = t.metric_for_best;
  training["multi_label"] = t.multi_label;
  training["class_weights"] = t.class_weights;
  training["device"] = t.device;
  return Json{{"base_model", s.base_model},
              {"train_dataset", s.train_dataset},
              {"validation_dataset", s.validation_dataset},
              {"validation_split", s.validation_split},
              {"text_column", s.data.text_column},
              {"text_pair_column", s.data.text_pair_column},
              {"label_column", s.data.label_column},
              {"model_name", s.model_name},
              {"workers", s.workers},
              {"training", training}};
}

absl::StatusOr<JobSpec> JobSpecFromJson(const Json& j) {
  try {
    JobSpec s;
    s.base_model = j.at("base_model").get<std::string>();
    s.train_dataset = j.at("train_dataset").get<std::string>();
    s.validation_dataset = j.at("validation_dataset").get<std::string>();
    s.validation_split = j.at("validation_split").get<double>();
    s.data.text_column = j.at("text_column").get<std::string>();
    s.data.text_pair_column = j.at("text_pair_column").get<std::string>();
    s.data.label_column = j.at("label_column").get<std::string>();
    s.model_name = j.at("model_name").get<std::string>();
    s.workers = j.value("workers", 1);  // absent in specs stored before data-parallel jobs
    const Json& t = j.at("training");
    train::TrainingSpec& o = s.training;
#define BERTH_FROM_JSON(field, flags, help) t.at(#field).get_to(o.field);
    BERTH_TRAINING_SPEC_FIELDS(BERTH_FROM_JSON)
#undef BERTH_FROM_JSON
    o.precision = t.at("precision").get<std::string>() == "bf16" ? train::Precision::kBf16
                                                                 : train::Precision::kFp32;
    o.metric_for_best = t.at("metric_for_best").get<std::string>();
    o.multi_label = t.at("multi_label").get<bool>();
    o.class_weights = t.at("class_weights").get<std::vector<double>>();
    o.device = t.value("device", "cpu");  // absent in specs stored before devices
    s.data.multi_label = o.multi_label;
    return s;
  } catch (const Json::exception& e) {
    return absl::DataLossError(absl::StrCat("stored job spec is malformed: ", e.what()));
  }
}

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

namespace {

bool IsHexDigest(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status ValidateColumn(const std::string& value, absl::string_view field) {
  if (value.size() > 256)
    return absl::InvalidArgumentError(absl::StrCat(field, ": longer than 256 bytes"));
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": control characters are not allowed"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateJobSpec(const JobSpec& s) {
  if (s.base_model.empty()) return absl::InvalidArgumentError("base_model: required");
  if (s.base_model.size() > 512)
    return absl::InvalidArgumentError("base_model: longer than 512 bytes");
  if (absl::StrContains(s.base_model, ".."))
    return absl::InvalidArgumentError("base_model: '..' is not allowed");
  if (s.train_dataset.empty()) return absl::InvalidArgumentError("train_dataset_id: required");
  if (!IsHexDigest(s.train_dataset)) {
    return absl::InvalidArgumentError(
        "train_dataset_id: not a dataset id (64 lowercase hex digits)");
  }
  if (!s.validation_dataset.empty() && !IsHexDigest(s.validation_dataset)) {
    return absl::InvalidArgumentError(
        "validation_dataset_id: not a dataset id (64 lowercase hex digits)");
  }
  if (!(s.validation_split >= 0.0 && s.validation_split <= 0.9)) {
    return absl::InvalidArgumentError("validation_split: must be in [0, 0.9]");
  }
  if (s.workers < 1 || s.workers > 64)
    return absl::InvalidArgumentError("workers: must be in [1, 64]");
  if (!s.validation_dataset.empty() && s.validation_split > 0) {
    return absl::InvalidArgumentError(
        "validation_split: give a validation dataset or a split, not both");
  }
  RETURN_IF_ERROR(ValidateColumn(s.data.text_column, "text_column"));
  RETURN_IF_ERROR(ValidateColumn(s.data.text_pair_column, "text_pair_column"));
  RETURN_IF_ERROR(ValidateColumn(s.data.label_column, "label_column"));
  if (s.data.label_column.empty())
    return absl::InvalidArgumentError("label_column: must not be empty");
  RETURN_IF_ERROR(store::ValidateName(s.model_name, "model_name"));
  absl::Status st = train::ValidateSpec(s.training);
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("hyperparameters.", st.message()));
  return absl::OkStatus();
}

absl::StatusOr<ModelRef> ParseModelRef(absl::string_view text, int64_t version,
                                       absl::string_view alias, absl::string_view field) {
  ModelRef ref;
  absl::string_view name = text;
  if (size_t at = text.find('@'); at != absl::string_view::npos) {
    name = text.substr(0, at);
    ref.alias = std::string(text.substr(at + 1));
    if (ref.alias.empty())
      return absl::InvalidArgumentError(absl::StrCat(field, ": empty alias after '@'"));
  } else if (size_t colon = text.find(':'); colon != absl::string_view::npos) {
    name = text.substr(0, colon);
    if (!absl::SimpleAtoi(text.substr(colon + 1), &ref.version) || ref.version <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": '", text.substr(colon + 1),
                                                     "' is not a version (a positive integer)"));
    }
  }
  ref.name = std::string(name);
  RETURN_IF_ERROR(store::ValidateName(ref.name, field));
  if (version < 0) return absl::InvalidArgumentError("version: must not be negative");
  if (version > 0) {
    if (ref.version != 0 && ref.version != version) {
      return absl::InvalidArgumentError(
          absl::StrCat("version: ", version, " conflicts with ", field, " '", text, "'"));
    }
    ref.version = version;
  }
  if (!alias.empty()) {
    RETURN_IF_ERROR(store::ValidateName(alias, "alias"));
    if (!ref.alias.empty() && ref.alias != alias) {
      return absl::InvalidArgumentError(
          absl::StrCat("alias: '", alias, "' conflicts with ", field, " '", text, "'"));
    }
    ref.alias = std::string(alias);
  }
  if (!ref.alias.empty()) RETURN_IF_ERROR(store::ValidateName(ref.alias, "alias"));
  if (!ref.alias.empty() && ref.version != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": give a version or an alias, not both"));
  }
  return ref;
}

}  // namespace berth::service
