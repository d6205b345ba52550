// berth.v1 <-> core conversions (server/convert.h), the one place enum mappings live: every
// value maps both ways, unknown values become the facades' "invalid" values, unset proto fields
// keep core's defaults, and stored JSON (progress, model metadata) reaches the reply.
#include "server/convert.h"

#include <gtest/gtest.h>

namespace berth::server {
namespace {

TEST(ConvertTest, JobStatesMapBothWaysAndUnknownOnesAreNone) {
  for (store::JobState s :
       {store::JobState::kQueued, store::JobState::kRunning, store::JobState::kSucceeded,
        store::JobState::kFailed, store::JobState::kCancelled}) {
    EXPECT_EQ(FromProto(ToProto(s)), s);
  }
  EXPECT_EQ(FromProto(v1::JOB_STATE_UNSPECIFIED), std::nullopt);
  EXPECT_EQ(FromProto(static_cast<v1::JobState>(99)), std::nullopt);
  v1::ListJobsRequest r;
  EXPECT_FALSE(FromProto(r).state.has_value());
  EXPECT_FALSE(FromProto(r).unknown_state);
  r.set_state(v1::JOB_STATE_RUNNING);
  EXPECT_EQ(FromProto(r).state, store::JobState::kRunning);
  r.set_state(static_cast<v1::JobState>(42));
  EXPECT_TRUE(FromProto(r).unknown_state);
}

TEST(ConvertTest, TruncationModes) {
  EXPECT_EQ(FromProto(v1::TRUNCATION_UNSPECIFIED), service::Truncation::kDefault);
  EXPECT_EQ(FromProto(v1::TRUNCATION_RIGHT), service::Truncation::kRight);
  EXPECT_EQ(FromProto(v1::TRUNCATION_LEFT), service::Truncation::kLeft);
  EXPECT_EQ(FromProto(v1::TRUNCATION_WINDOW), service::Truncation::kWindow);
  EXPECT_EQ(FromProto(static_cast<v1::Truncation>(7)), service::Truncation::kInvalid);
}

TEST(ConvertTest, ClassifyRequestAndReply) {
  v1::ClassifyRequest r;
  r.set_model("m@prod");
  r.set_version(3);
  r.add_texts("a");
  r.add_texts("b");
  r.add_text_pairs("x");
  r.set_top_k(2);
  r.set_raw_scores(true);
  r.set_truncation(v1::TRUNCATION_WINDOW);
  r.set_max_length(64);
  r.set_stride(16);
  const service::ClassifyRequest c = FromProto(r);
  EXPECT_EQ(c.model.model, "m@prod");
  EXPECT_EQ(c.model.version, 3);
  EXPECT_EQ(c.texts, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.text_pairs, std::vector<std::string>{"x"});
  EXPECT_EQ(c.top_k, 2);
  EXPECT_TRUE(c.raw_scores);
  EXPECT_EQ(c.truncation, service::Truncation::kWindow);
  EXPECT_EQ(c.max_length, 64);
  EXPECT_EQ(c.stride, 16);

  service::ClassifyReply reply;
  reply.model = "m";
  reply.model_version = 4;
  reply.labels = {"neg", "pos"};
  ClassifyResult res;
  res.label = "pos";
  res.score = 0.75f;
  res.scores = {0.25f, 0.75f};
  res.top_k = {{"pos", 0.75f}};
  res.predicted = {{"pos", 0.75f}};
  res.num_tokens = 9;
  res.truncated = true;
  reply.results = {res};
  reply.queue_seconds = 0.5;
  v1::ClassifyResponse out;
  ToProto(reply, &out);
  EXPECT_EQ(out.model(), "m");
  EXPECT_EQ(out.model_version(), 4);
  ASSERT_EQ(out.labels_size(), 2);
  ASSERT_EQ(out.results_size(), 1);
  EXPECT_EQ(out.results(0).label(), "pos");
  EXPECT_EQ(out.results(0).top_k(0).label(), "pos");
  EXPECT_EQ(out.results(0).predicted(0), "pos");
  EXPECT_EQ(out.results(0).num_tokens(), 9);
  EXPECT_TRUE(out.results(0).truncated());
  EXPECT_DOUBLE_EQ(out.queue_seconds(), 0.5);
}

TEST(ConvertTest, UnsetHyperparametersKeepTheTrainersDefaults) {
  v1::StartTrainingRequest r;
  r.set_model_name("m");
  r.mutable_hyperparameters()->set_learning_rate(1e-4);
  const jobs::JobSpec s = ToJobSpec(r);
  const data::TrainingSpec defaults;
  EXPECT_DOUBLE_EQ(s.training.learning_rate, 1e-4);
  EXPECT_EQ(s.training.batch_size, defaults.batch_size);
  EXPECT_DOUBLE_EQ(s.training.epochs, defaults.epochs);
  EXPECT_DOUBLE_EQ(s.training.multi_label_threshold, defaults.multi_label_threshold);
  EXPECT_EQ(s.data.label_column, "label");
  EXPECT_EQ(s.workers, 1);
  EXPECT_EQ(s.training.device, "") << "the server's default, filled in by the facade";
  r.set_task(v1::TASK_MULTI_LABEL);
  r.mutable_hyperparameters()->set_precision(v1::PRECISION_BF16);
  EXPECT_TRUE(ToJobSpec(r).training.multi_label);
  EXPECT_TRUE(ToJobSpec(r).data.multi_label);
  EXPECT_EQ(ToJobSpec(r).training.precision, data::Precision::kBf16);
}

TEST(ConvertTest, ImportSourcesAndDatasetColumns) {
  v1::ImportModelInfo info;
  EXPECT_EQ(ToImportSource(info).kind, service::ImportSource::Kind::kUnset);
  info.set_directory("/models/x");
  EXPECT_EQ(ToImportSource(info).kind, service::ImportSource::Kind::kDirectory);
  EXPECT_EQ(ToImportSource(info).location, "/models/x");
  info.set_hub_id("org/name@rev");
  EXPECT_EQ(ToImportSource(info).kind, service::ImportSource::Kind::kHub);
  info.set_archive(true);
  EXPECT_EQ(ToImportSource(info).kind, service::ImportSource::Kind::kArchive);
  v1::DatasetInfo d;
  EXPECT_EQ(ToDatasetOptions(d).label_column, "label");
  d.set_text_column("sentence");
  d.set_label_column("y");
  d.set_multi_label(true);
  EXPECT_EQ(ToDatasetOptions(d).text_column, "sentence");
  EXPECT_EQ(ToDatasetOptions(d).label_column, "y");
  EXPECT_TRUE(ToDatasetOptions(d).multi_label);
}

TEST(ConvertTest, StoredProgressAndMetadataReachTheReply) {
  store::JobRecord job;
  job.id = "job-1";
  job.state = store::JobState::kRunning;
  job.progress =
      R"({"update": 7, "total_updates": 10, "loss": 0.5, "world_size": 2,
          "samples_per_second": 8, "last_eval": {"accuracy": 0.9, "update": 5}})";
  v1::JobStatus st;
  ToProto(job, &st);
  EXPECT_EQ(st.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(st.progress().update(), 7);
  EXPECT_EQ(st.progress().world_size(), 2);
  EXPECT_DOUBLE_EQ(st.progress().samples_per_second_per_rank(), 8);  // not stored: the total
  EXPECT_DOUBLE_EQ(st.progress().last_eval().accuracy(), 0.9);
  job.progress = "not json";
  ToProto(job, &st);
  EXPECT_FALSE(st.has_progress());

  store::ModelRecord m;
  m.name = "m";
  m.version = 2;
  m.aliases = {"prod"};
  m.metadata = R"({"labels": ["neg", "pos"], "multi_label": true, "imported_from": "hub:x",
                   "metrics": {"accuracy": 0.8}})";
  v1::ModelVersion mv;
  ToProto(m, "{}", &mv);
  EXPECT_EQ(mv.labels_size(), 2);
  EXPECT_TRUE(mv.multi_label());
  EXPECT_EQ(mv.imported_from(), "hub:x");
  EXPECT_DOUBLE_EQ(mv.metrics().accuracy(), 0.8);
  EXPECT_EQ(mv.aliases(0), "prod");
  EXPECT_EQ(mv.config_json(), "{}");
}

// Every hyperparameter of a request reaches the job's spec, and the unset ones keep the
// Trainer's defaults; the fields are listed by hand, apart from the table the server expands.
TEST(ConvertTest, EveryHyperparameterReachesTheSpec) {
  v1::StartTrainingRequest r;
  r.set_task(v1::TASK_MULTI_LABEL);
  v1::Hyperparameters* h = r.mutable_hyperparameters();
  h->set_epochs(1.5);
  h->set_max_steps(7);
  h->set_batch_size(3);
  h->set_eval_batch_size(5);
  h->set_learning_rate(1e-3);
  h->set_weight_decay(0.01);
  h->set_adam_beta1(0.8);
  h->set_adam_beta2(0.99);
  h->set_adam_epsilon(1e-6);
  h->set_max_grad_norm(0.5);
  h->set_warmup_steps(2);
  h->set_warmup_ratio(0.1);
  h->set_grad_accum(4);
  h->set_max_length(64);
  h->set_pad_to_max_length(true);
  h->set_seed(7);
  h->set_shuffle(false);
  h->set_group_by_length(true);
  h->set_precision(v1::PRECISION_BF16);
  h->set_eval_steps(9);
  h->set_save_steps(11);
  h->set_early_stopping_patience(3);
  h->set_metric_for_best("macro_f1");
  h->add_class_weights(1.0);
  h->add_class_weights(2.5);
  h->set_label_smoothing(0.1);
  h->set_multi_label_threshold(0.3);
  h->set_device("cuda:1");
  const data::TrainingSpec t = server::ToJobSpec(r).training;
  EXPECT_EQ(t.epochs, 1.5);
  EXPECT_EQ(t.max_steps, 7);
  EXPECT_EQ(t.batch_size, 3);
  EXPECT_EQ(t.eval_batch_size, 5);
  EXPECT_EQ(t.learning_rate, 1e-3);
  EXPECT_EQ(t.weight_decay, 0.01);
  EXPECT_EQ(t.adam_beta1, 0.8);
  EXPECT_EQ(t.adam_beta2, 0.99);
  EXPECT_EQ(t.adam_epsilon, 1e-6);
  EXPECT_EQ(t.max_grad_norm, 0.5);
  EXPECT_EQ(t.warmup_steps, 2);
  EXPECT_EQ(t.warmup_ratio, 0.1);
  EXPECT_EQ(t.grad_accum, 4);
  EXPECT_EQ(t.max_length, 64);
  EXPECT_TRUE(t.pad_to_max_length);
  EXPECT_EQ(t.seed, 7u);
  EXPECT_FALSE(t.shuffle);
  EXPECT_TRUE(t.group_by_length);
  EXPECT_EQ(t.precision, data::Precision::kBf16);
  EXPECT_EQ(t.eval_steps, 9);
  EXPECT_EQ(t.save_steps, 11);
  EXPECT_EQ(t.early_stopping_patience, 3);
  EXPECT_EQ(t.metric_for_best, "macro_f1");
  EXPECT_TRUE(t.multi_label);
  EXPECT_EQ(t.class_weights, (std::vector<double>{1.0, 2.5}));
  EXPECT_EQ(t.label_smoothing, 0.1);
  EXPECT_EQ(t.multi_label_threshold, 0.3);
  EXPECT_EQ(t.device, "cuda:1");

  // Unset: the defaults (the proto's optional fields tell unset from zero).
  const data::TrainingSpec d = server::ToJobSpec(v1::StartTrainingRequest()).training;
  const data::TrainingSpec defaults;
  EXPECT_EQ(d.epochs, defaults.epochs);
  EXPECT_EQ(d.learning_rate, defaults.learning_rate);
  EXPECT_EQ(d.adam_beta2, defaults.adam_beta2);
  EXPECT_EQ(d.max_grad_norm, defaults.max_grad_norm);
  EXPECT_EQ(d.shuffle, defaults.shuffle);
  EXPECT_EQ(d.multi_label_threshold, defaults.multi_label_threshold);
  EXPECT_EQ(d.seed, defaults.seed);
}

}  // namespace
}  // namespace berth::server
