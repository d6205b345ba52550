// JSON form of queued jobs, and their validation.
#include "core/jobs/job_spec.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/store/store.h"
#include "core/train/trainer.h"
#include "core/util/status_macros.h"

namespace berth::jobs {

Json JobSpecToJson(const JobSpec& s) {
  const data::TrainingSpec& t = s.training;
  Json training = Json::object();
#define BERTH_TO_JSON(field, flags, help) training[#field] = t.field;
  BERTH_TRAINING_SPEC_FIELDS(BERTH_TO_JSON)
#undef BERTH_TO_JSON
  training["precision"] = t.precision == data::Precision::kBf16 ? "bf16" : "fp32";
  training["metric_for_best"] = t.metric_for_best;
  training["multi_label"] = t.multi_label;
  training["score_loss"] = t.score_loss;
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
    data::TrainingSpec& o = s.training;
#define BERTH_FROM_JSON(field, flags, help) t.at(#field).get_to(o.field);
    BERTH_TRAINING_SPEC_FIELDS(BERTH_FROM_JSON)
#undef BERTH_FROM_JSON
    o.precision = t.at("precision").get<std::string>() == "bf16" ? data::Precision::kBf16
                                                                 : data::Precision::kFp32;
    o.metric_for_best = t.at("metric_for_best").get<std::string>();
    o.multi_label = t.at("multi_label").get<bool>();
    o.score_loss = t.value("score_loss", "");  // absent in specs stored before scorers
    o.class_weights = t.at("class_weights").get<std::vector<double>>();
    o.device = t.value("device", "cpu");  // absent in specs stored before devices
    s.data.multi_label = o.multi_label;
    return s;
  } catch (const Json::exception& e) {
    return absl::DataLossError(absl::StrCat("stored job spec is malformed: ", e.what()));
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

}  // namespace berth::jobs
