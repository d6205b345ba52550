// berth.v1 messages ↔ core types.
#include "server/convert.h"

#include <algorithm>
#include <type_traits>

#include "core/data/metrics.h"
#include "core/util/json.h"

namespace berth::server {
namespace {

void EvalToProto(const Json& j, v1::EvalMetrics* out) {
  out->set_loss(j.value("loss", 0.0));
  out->set_accuracy(j.value("accuracy", 0.0));
  out->set_macro_f1(j.value("macro_f1", 0.0));
  out->set_micro_f1(j.value("micro_f1", 0.0));
  out->set_examples(j.value("examples", int64_t{0}));
  out->set_update(j.value("update", int64_t{0}));
  out->set_epoch(j.value("epoch", 0.0));
  out->set_pearson(j.value("pearson", 0.0));
  out->set_spearman(j.value("spearman", 0.0));
  out->set_macro_precision(j.value("macro_precision", 0.0));
  out->set_macro_recall(j.value("macro_recall", 0.0));
  out->set_micro_precision(j.value("micro_precision", 0.0));
  out->set_micro_recall(j.value("micro_recall", 0.0));
  out->set_hamming_loss(j.value("hamming_loss", 0.0));
  const data::EvalMetrics m = data::EvalMetrics::FromJson(j);
  out->set_scored(m.scored);
  for (const std::string& l : m.labels) out->add_labels(l);
  for (size_t i = 0; i < m.per_label.size(); ++i) {
    v1::LabelMetrics* l = out->add_per_label();
    if (i < m.labels.size()) l->set_label(m.labels[i]);
    l->set_precision(m.per_label[i].precision);
    l->set_recall(m.per_label[i].recall);
    l->set_f1(m.per_label[i].f1);
    l->set_support(m.per_label[i].support);
  }
  for (const std::vector<int64_t>& row : m.confusion) {
    v1::ConfusionRow* r = out->add_confusion_matrix();
    for (int64_t c : row) r->add_counts(c);
  }
}

// A stored progress point (the job runner's JSON) as the message.
void ProgressToProto(const Json& p, v1::JobProgress* pr) {
  pr->set_update(p.value("update", int64_t{0}));
  pr->set_total_updates(p.value("total_updates", int64_t{0}));
  pr->set_epoch(p.value("epoch", 0.0));
  pr->set_loss(p.value("loss", 0.0));
  pr->set_learning_rate(p.value("learning_rate", 0.0));
  pr->set_grad_norm(p.value("grad_norm", 0.0));
  pr->set_samples_per_second(p.value("samples_per_second", 0.0));
  pr->set_eta_seconds(p.value("eta_seconds", 0.0));
  pr->set_world_size(p.value("world_size", 1));
  pr->set_samples_per_second_per_rank(
      p.value("samples_per_second_per_rank", p.value("samples_per_second", 0.0)));
  pr->set_allreduce_share(p.value("allreduce_share", 0.0));
  if (p.contains("last_eval") && p["last_eval"].is_object())
    EvalToProto(p["last_eval"], pr->mutable_last_eval());
}

}  // namespace

service::Truncation FromProto(v1::Truncation t) {
  switch (t) {
    case v1::TRUNCATION_UNSPECIFIED:
      return service::Truncation::kDefault;
    case v1::TRUNCATION_RIGHT:
      return service::Truncation::kRight;
    case v1::TRUNCATION_LEFT:
      return service::Truncation::kLeft;
    case v1::TRUNCATION_WINDOW:
      return service::Truncation::kWindow;
    case v1::TRUNCATION_NONE:
      return service::Truncation::kNone;
    default:
      return service::Truncation::kInvalid;
  }
}

service::ClassifyRequest FromProto(const v1::ClassifyRequest& r) {
  service::ClassifyRequest out;
  out.model = ToSelector(r);
  out.texts.assign(r.texts().begin(), r.texts().end());
  out.text_pairs.assign(r.text_pairs().begin(), r.text_pairs().end());
  out.top_k = r.top_k();
  out.raw_scores = r.raw_scores();
  out.truncation = FromProto(r.truncation());
  out.max_length = r.max_length();
  out.stride = r.stride();
  return out;
}

service::TokenizeRequest FromProto(const v1::TokenizeRequest& r) {
  service::TokenizeRequest out;
  out.model = ToSelector(r);
  out.texts.assign(r.texts().begin(), r.texts().end());
  out.text_pairs.assign(r.text_pairs().begin(), r.text_pairs().end());
  out.max_length = r.max_length();
  out.truncation = FromProto(r.truncation());
  return out;
}

service::EmbedRequest FromProto(const v1::EmbedRequest& r) {
  service::EmbedRequest out;
  out.model = ToSelector(r);
  out.texts.assign(r.texts().begin(), r.texts().end());
  out.truncation = FromProto(r.truncation());
  out.max_length = r.max_length();
  if (r.has_normalize()) out.normalize = r.normalize();
  if (r.has_dimensions()) out.dimensions = r.dimensions();
  return out;
}

service::RerankRequest FromProto(const v1::RerankRequest& r) {
  service::RerankRequest out;
  out.model = ToSelector(r);
  out.query = r.query();
  out.texts.assign(r.texts().begin(), r.texts().end());
  out.raw_scores = r.raw_scores();
  out.truncation = FromProto(r.truncation());
  return out;
}

void ToProto(const service::EmbedReply& reply, v1::EmbedResponse* out) {
  out->Clear();
  out->set_model(reply.model);
  out->set_model_version(reply.model_version);
  out->set_dimensions(static_cast<int32_t>(reply.dimensions));
  out->set_normalized(reply.normalized);
  for (const ClassifyResult& c : reply.results) {
    v1::Embedding* e = out->add_embeddings();
    e->mutable_values()->Assign(c.embedding.begin(), c.embedding.end());
    e->set_num_tokens(c.num_tokens);
    e->set_truncated(c.truncated);
    out->set_queue_seconds(std::max(out->queue_seconds(), c.queue_seconds));
    out->set_compute_seconds(std::max(out->compute_seconds(), c.compute_seconds));
  }
}

void ToProto(const service::RerankReply& reply, v1::RerankResponse* out) {
  out->Clear();
  out->set_model(reply.model);
  out->set_model_version(reply.model_version);
  for (const service::RerankResult& r : reply.results) {
    v1::RankedText* t = out->add_results();
    t->set_index(static_cast<int32_t>(r.index));
    t->set_score(r.score);
  }
}

void ToProto(const service::ClassifyReply& reply, v1::ClassifyResponse* out) {
  out->Clear();
  out->set_model(reply.model);
  out->set_model_version(reply.model_version);
  for (const std::string& l : reply.labels) out->add_labels(l);
  for (const ClassifyResult& c : reply.results) ToProto(c, out->add_results());
  out->set_queue_seconds(reply.queue_seconds);
  out->set_compute_seconds(reply.compute_seconds);
}

void ToProto(const service::TokenizeReply& reply, v1::TokenizeResponse* out) {
  for (const text::Encoding& e : reply.encodings) {
    v1::Encoding* enc = out->add_encodings();
    enc->mutable_input_ids()->Add(e.input_ids.begin(), e.input_ids.end());
    enc->mutable_token_type_ids()->Add(e.token_type_ids.begin(), e.token_type_ids.end());
    enc->mutable_attention_mask()->Add(e.attention_mask.begin(), e.attention_mask.end());
    for (const std::string& t : e.tokens) enc->add_tokens(t);
    enc->set_truncated(e.truncated);
  }
  out->set_model_version(reply.model_version);
}

service::ImportSource ToImportSource(const v1::ImportModelInfo& info) {
  service::ImportSource s;
  switch (info.source_case()) {
    case v1::ImportModelInfo::kDirectory:
      s.kind = service::ImportSource::Kind::kDirectory;
      s.location = info.directory();
      break;
    case v1::ImportModelInfo::kHubId:
      s.kind = service::ImportSource::Kind::kHub;
      s.location = info.hub_id();
      break;
    case v1::ImportModelInfo::kArchive:
      s.kind = service::ImportSource::Kind::kArchive;
      break;
    default:
      s.kind = service::ImportSource::Kind::kUnset;
      break;
  }
  return s;
}

data::DatasetOptions ToDatasetOptions(const v1::DatasetInfo& info) {
  data::DatasetOptions o;
  o.text_column = info.text_column();
  o.text_pair_column = info.text_pair_column();
  if (!info.label_column().empty()) o.label_column = info.label_column();
  o.multi_label = info.multi_label();
  return o;
}

jobs::ListJobsRequest FromProto(const v1::ListJobsRequest& r) {
  jobs::ListJobsRequest out;
  out.page_size = r.page_size();
  out.page_token = r.page_token();
  if (r.state() != v1::JOB_STATE_UNSPECIFIED) {
    out.state = FromProto(r.state());
    out.unknown_state = !out.state.has_value();
  }
  return out;
}

void ToProto(const jobs::StoredDataset& stored, v1::UploadDatasetResponse* out) {
  const store::DatasetRecord& rec = stored.record;
  out->set_dataset_id(rec.id);
  out->set_rows(rec.rows);
  out->set_bytes(rec.bytes);
  out->set_already_present(stored.already_present);
  for (const auto& [label, n] : rec.label_counts) (*out->mutable_label_counts())[label] = n;
}

void ToProto(const jobs::Submission& sub, v1::StartTrainingResponse* out) {
  out->set_job_id(sub.job.id);
  out->set_existing(sub.existed);
  ToProto(sub.job, out->mutable_status());
}

void ToProto(const jobs::JobPage& page, v1::ListJobsResponse* out) {
  for (const store::JobRecord& j : page.jobs) ToProto(j, out->add_jobs());
  out->set_next_page_token(page.next_page_token);
}

jobs::JobSpec ToJobSpec(const v1::StartTrainingRequest& r) {
  jobs::JobSpec s;
  s.base_model = r.base_model();
  s.train_dataset = r.train_dataset_id();
  s.validation_dataset = r.validation_dataset_id();
  s.validation_split = r.validation_split();
  s.data.text_column = r.text_column();
  s.data.text_pair_column = r.text_pair_column();
  s.data.label_column = r.label_column().empty() ? "label" : r.label_column();
  s.model_name = r.model_name();
  s.workers = r.workers() == 0 ? 1 : r.workers();  // 0: unset
  const v1::Hyperparameters& h = r.hyperparameters();
  data::TrainingSpec& t = s.training;
  t.multi_label = r.task() == v1::TASK_MULTI_LABEL;
  t.score_loss = r.task() == v1::TASK_SCORE_BCE   ? "bce"
                 : r.task() == v1::TASK_SCORE_MSE ? "mse"
                                                  : "";
  s.data.multi_label = t.multi_label;
#define BERTH_FROM_PROTO(field, flags, help) \
  if (h.has_##field()) t.field = h.field();
  BERTH_TRAINING_SPEC_FIELDS(BERTH_FROM_PROTO)
#undef BERTH_FROM_PROTO
  t.precision =
      h.precision() == v1::PRECISION_BF16 ? data::Precision::kBf16 : data::Precision::kFp32;
  t.metric_for_best = h.metric_for_best();
  t.class_weights.assign(h.class_weights().begin(), h.class_weights().end());
  t.device = h.device();  // "": the server's default, filled in by the training service
  return s;
}

void ToProto(const jobs::JobSpec& s, v1::StartTrainingRequest* out) {
  out->Clear();
  out->set_base_model(s.base_model);
  out->set_train_dataset_id(s.train_dataset);
  out->set_validation_dataset_id(s.validation_dataset);
  out->set_validation_split(s.validation_split);
  out->set_text_column(s.data.text_column);
  out->set_text_pair_column(s.data.text_pair_column);
  out->set_label_column(s.data.label_column);
  out->set_model_name(s.model_name);
  out->set_workers(s.workers);
  const data::TrainingSpec& t = s.training;
  out->set_task(t.multi_label           ? v1::TASK_MULTI_LABEL
                : t.score_loss == "bce" ? v1::TASK_SCORE_BCE
                : t.score_loss == "mse" ? v1::TASK_SCORE_MSE
                                        : v1::TASK_SINGLE_LABEL);
  v1::Hyperparameters* h = out->mutable_hyperparameters();
#define BERTH_TO_PROTO(field, flags, help) \
  h->set_##field(static_cast<std::decay_t<decltype(h->field())>>(t.field));
  BERTH_TRAINING_SPEC_FIELDS(BERTH_TO_PROTO)
#undef BERTH_TO_PROTO
  h->set_precision(t.precision == data::Precision::kBf16 ? v1::PRECISION_BF16 : v1::PRECISION_FP32);
  h->set_metric_for_best(t.metric_for_best);
  for (double w : t.class_weights) h->add_class_weights(w);
  h->set_device(t.device);
}

v1::JobState ToProto(store::JobState state) {
  switch (state) {
    case store::JobState::kQueued:
      return v1::JOB_STATE_QUEUED;
    case store::JobState::kRunning:
      return v1::JOB_STATE_RUNNING;
    case store::JobState::kSucceeded:
      return v1::JOB_STATE_SUCCEEDED;
    case store::JobState::kFailed:
      return v1::JOB_STATE_FAILED;
    case store::JobState::kCancelled:
      return v1::JOB_STATE_CANCELLED;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

std::optional<store::JobState> FromProto(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_QUEUED:
      return store::JobState::kQueued;
    case v1::JOB_STATE_RUNNING:
      return store::JobState::kRunning;
    case v1::JOB_STATE_SUCCEEDED:
      return store::JobState::kSucceeded;
    case v1::JOB_STATE_FAILED:
      return store::JobState::kFailed;
    case v1::JOB_STATE_CANCELLED:
      return store::JobState::kCancelled;
    default:
      return std::nullopt;
  }
}

void ToProto(const store::JobRecord& job, v1::JobStatus* out) {
  out->Clear();
  out->set_job_id(job.id);
  out->set_state(ToProto(job.state));
  out->set_error(job.error);
  out->set_model_name(job.model_name);
  out->set_model_version(job.model_version);
  out->set_base_model(job.base_model);
  out->set_cancel_requested(job.cancel_requested);
  out->set_created_unix_ms(job.created_ms);
  out->set_started_unix_ms(job.started_ms);
  out->set_finished_unix_ms(job.finished_ms);
  out->set_request_id(job.request_id);
  if (auto spec_json = ParseJson(job.spec, "job spec"); spec_json.ok()) {
    if (auto spec = jobs::JobSpecFromJson(*spec_json); spec.ok())
      ToProto(*spec, out->mutable_spec());
  }
  if (job.progress.empty()) return;
  auto p = ParseJson(job.progress, "job progress");
  if (!p.ok() || !p->is_object()) return;
  ProgressToProto(*p, out->mutable_progress());
}

void ToProto(const service::ModelStatistics& m, v1::LoadedModel* out) {
  out->set_name(m.name);
  out->set_version(m.version);
  out->set_queue_depth(m.queue_depth);
  out->set_inference_count(static_cast<int64_t>(m.inference_count));
  out->set_execution_count(static_cast<int64_t>(m.execution_count));
  out->set_success_count(static_cast<int64_t>(m.success.count));
  out->set_fail_count(static_cast<int64_t>(m.fail.count));
  out->set_last_inference_unix_ms(static_cast<int64_t>(m.last_inference_ms));
}

void ToProto(const std::vector<store::JobEvent>& events, v1::ListJobEventsResponse* out) {
  out->Clear();
  for (const store::JobEvent& e : events) {
    v1::JobEvent* m = out->add_events();
    m->set_id(e.id);
    m->set_unix_ms(e.at_ms);
    m->set_kind(e.kind);
    if (e.kind != "progress") {
      m->set_detail(e.body);
      continue;
    }
    auto p = ParseJson(e.body, "job event");
    if (p.ok() && p->is_object()) ProgressToProto(*p, m->mutable_progress());
  }
}

void ToProto(const store::ModelRecord& m, const std::string& config_json, v1::ModelVersion* out) {
  out->Clear();
  out->set_name(m.name);
  out->set_version(m.version);
  for (const std::string& a : m.aliases) out->add_aliases(a);
  out->set_job_id(m.job_id);
  out->set_created_unix_ms(m.created_ms);
  out->set_config_json(config_json);
  auto meta = ParseJson(m.metadata, "model metadata");
  if (!meta.ok() || !meta->is_object()) return;
  if (meta->contains("labels") && (*meta)["labels"].is_array()) {
    for (const Json& l : (*meta)["labels"]) {
      if (l.is_string()) out->add_labels(l.get<std::string>());
    }
  }
  out->set_model_type(meta->value("model_type", ""));
  out->set_base_model(meta->value("base_model", ""));
  out->set_multi_label(meta->value("multi_label", false));
  out->set_imported_from(meta->value("imported_from", ""));
  if (meta->contains("metrics") && (*meta)["metrics"].is_object())
    EvalToProto((*meta)["metrics"], out->mutable_metrics());
}

void ToProto(const ClassifyResult& r, v1::Classification* out) {
  out->set_label(r.label);
  out->set_score(r.score);
  for (float s : r.scores) out->add_scores(s);
  for (const LabelScore& t : r.top_k) {
    v1::LabelScore* ls = out->add_top_k();
    ls->set_label(t.label);
    ls->set_score(t.score);
  }
  for (float l : r.logits) out->add_logits(l);
  out->set_num_tokens(r.num_tokens);
  out->set_truncated(r.truncated);
  for (const LabelScore& p : r.predicted) out->add_predicted(p.label);
}

}  // namespace berth::server
