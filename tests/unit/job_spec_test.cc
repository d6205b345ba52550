// A job's spec through the stored JSON and back: every hyperparameter survives with a value
// other than its default, and specs stored by earlier versions (no workers, no device) still
// load. The field names are listed here by hand, apart from the table the code expands
// (BERTH_TRAINING_SPEC_FIELDS), so that a field the table loses fails here.
#include "core/jobs/job_spec.h"

#include <gtest/gtest.h>

namespace berth::jobs {
namespace {

JobSpec EveryFieldSet() {
  JobSpec s;
  s.base_model = "config:bert-mini";
  s.train_dataset = "a";
  s.validation_dataset = "b";
  s.validation_split = 0.25;
  s.data.text_column = "t";
  s.data.text_pair_column = "p";
  s.data.label_column = "l";
  s.model_name = "m";
  s.workers = 2;
  data::TrainingSpec& t = s.training;
  t.epochs = 1.5;
  t.max_steps = 7;
  t.batch_size = 3;
  t.eval_batch_size = 5;
  t.learning_rate = 1e-3;
  t.weight_decay = 0.01;
  t.adam_beta1 = 0.8;
  t.adam_beta2 = 0.99;
  t.adam_epsilon = 1e-6;
  t.max_grad_norm = 0.5;
  t.warmup_steps = 2;
  t.warmup_ratio = 0.1;
  t.grad_accum = 4;
  t.max_length = 64;
  t.pad_to_max_length = true;
  t.seed = 7;
  t.shuffle = false;
  t.group_by_length = true;
  t.precision = data::Precision::kBf16;
  t.eval_steps = 9;
  t.save_steps = 11;
  t.early_stopping_patience = 3;
  t.metric_for_best = "macro_f1";
  t.multi_label = true;
  s.data.multi_label = true;
  t.class_weights = {1.0, 2.5};
  t.label_smoothing = 0.1;
  t.multi_label_threshold = 0.3;
  t.device = "cuda:1";
  return s;
}

TEST(JobSpecTest, EveryFieldSurvivesTheStoredJson) {
  const JobSpec in = EveryFieldSet();
  const Json j = JobSpecToJson(in);
  for (const char* key : {"epochs",
                          "max_steps",
                          "batch_size",
                          "eval_batch_size",
                          "learning_rate",
                          "weight_decay",
                          "adam_beta1",
                          "adam_beta2",
                          "adam_epsilon",
                          "max_grad_norm",
                          "warmup_steps",
                          "warmup_ratio",
                          "grad_accum",
                          "max_length",
                          "pad_to_max_length",
                          "seed",
                          "shuffle",
                          "group_by_length",
                          "precision",
                          "eval_steps",
                          "save_steps",
                          "early_stopping_patience",
                          "metric_for_best",
                          "multi_label",
                          "class_weights",
                          "label_smoothing",
                          "multi_label_threshold",
                          "device"}) {
    EXPECT_TRUE(j["training"].contains(key)) << key;
  }
  auto out = JobSpecFromJson(Json::parse(j.dump()));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->base_model, in.base_model);
  EXPECT_EQ(out->train_dataset, in.train_dataset);
  EXPECT_EQ(out->validation_dataset, in.validation_dataset);
  EXPECT_EQ(out->validation_split, in.validation_split);
  EXPECT_EQ(out->data.text_column, in.data.text_column);
  EXPECT_EQ(out->data.text_pair_column, in.data.text_pair_column);
  EXPECT_EQ(out->data.label_column, in.data.label_column);
  EXPECT_EQ(out->data.multi_label, in.data.multi_label);
  EXPECT_EQ(out->model_name, in.model_name);
  EXPECT_EQ(out->workers, in.workers);
  const data::TrainingSpec &a = out->training, &b = in.training;
  EXPECT_EQ(a.epochs, b.epochs);
  EXPECT_EQ(a.max_steps, b.max_steps);
  EXPECT_EQ(a.batch_size, b.batch_size);
  EXPECT_EQ(a.eval_batch_size, b.eval_batch_size);
  EXPECT_EQ(a.learning_rate, b.learning_rate);
  EXPECT_EQ(a.weight_decay, b.weight_decay);
  EXPECT_EQ(a.adam_beta1, b.adam_beta1);
  EXPECT_EQ(a.adam_beta2, b.adam_beta2);
  EXPECT_EQ(a.adam_epsilon, b.adam_epsilon);
  EXPECT_EQ(a.max_grad_norm, b.max_grad_norm);
  EXPECT_EQ(a.warmup_steps, b.warmup_steps);
  EXPECT_EQ(a.warmup_ratio, b.warmup_ratio);
  EXPECT_EQ(a.grad_accum, b.grad_accum);
  EXPECT_EQ(a.max_length, b.max_length);
  EXPECT_EQ(a.pad_to_max_length, b.pad_to_max_length);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.shuffle, b.shuffle);
  EXPECT_EQ(a.group_by_length, b.group_by_length);
  EXPECT_EQ(a.precision, b.precision);
  EXPECT_EQ(a.eval_steps, b.eval_steps);
  EXPECT_EQ(a.save_steps, b.save_steps);
  EXPECT_EQ(a.early_stopping_patience, b.early_stopping_patience);
  EXPECT_EQ(a.metric_for_best, b.metric_for_best);
  EXPECT_EQ(a.multi_label, b.multi_label);
  EXPECT_EQ(a.class_weights, b.class_weights);
  EXPECT_EQ(a.label_smoothing, b.label_smoothing);
  EXPECT_EQ(a.multi_label_threshold, b.multi_label_threshold);
  EXPECT_EQ(a.device, b.device);
}

TEST(JobSpecTest, SpecsStoredBeforeWorkersAndDevicesLoad) {
  Json j = JobSpecToJson(EveryFieldSet());
  j.erase("workers");
  j["training"].erase("device");
  auto out = JobSpecFromJson(j);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->workers, 1);
  EXPECT_EQ(out->training.device, "cpu");
  // Any other field missing is a damaged record, reported as such.
  j["training"].erase("adam_beta2");
  EXPECT_EQ(JobSpecFromJson(j).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace berth::jobs
