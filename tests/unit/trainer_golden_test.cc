// Fine-tuning against Hugging Face's Trainer: the bert-tiny-train trace update by update,
// gradient accumulation equivalence, and resume after a cancel.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "core/infer/sequence_classifier.h"
#include "core/model/safetensors.h"
#include "core/runtime/device.h"
#include "core/train/checkpoint.h"
#include "core/train/trainer.h"
#include "core/util/files.h"
#include "tests/unit/test_util.h"

namespace berth::train {
namespace {

using berth::testing::FixturePath;
using berth::testing::TempDir;

Json LoadTrace() {
  std::ifstream in(FixturePath("bert-tiny-train") + "/expected/train_trace.json");
  return Json::parse(in);
}

// Writes the trace's training rows as JSON Lines with the model's label names.
std::string WriteTrainRows(const TempDir& dir, const Json& trace) {
  const char* names[] = {"negative", "positive"};
  std::string out;
  for (const Json& r : trace["train"]) {
    out += Json{{"text", r["text"]}, {"label", names[r["label"].get<int>()]}}.dump() + "\n";
  }
  berth::testing::WriteFile(dir.File("train.jsonl"), out);
  return dir.File("train.jsonl");
}

FineTuneJob TraceJob(const TempDir& dir, const Json& trace) {
  const Json& r = trace["recipe"];
  FineTuneJob job;
  job.base_model = FixturePath("bert-tiny-train");
  job.train_path = WriteTrainRows(dir, trace);
  job.output_dir = dir.File("out");
  job.spec.learning_rate = r["lr"];
  job.spec.weight_decay = r["weight_decay"];
  job.spec.warmup_steps = r["warmup_updates"];
  job.spec.epochs = r["epochs"];
  job.spec.batch_size = r["batch_size"];
  job.spec.grad_accum = r["grad_accumulation"];
  job.spec.max_length = r["max_length"];
  job.spec.max_grad_norm = r["grad_clip_norm"];
  job.spec.shuffle = false;
  return job;
}

bool RelClose(double got, double want, double rel) {
  return std::abs(got - want) <= rel * std::abs(want) + 1e-7;
}

TEST(TrainerGoldenTest, MatchesHuggingFaceTraceUpdateByUpdate) {
  const Json trace = LoadTrace();
  TempDir dir;
  FineTuneJob job = TraceJob(dir, trace);
  std::vector<data::Progress> updates;
  auto result = RunFineTune(
      job,
      [&](const data::Progress& p) {
        if (p.eval == nullptr) updates.push_back(p);
      },
      nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->updates, trace["recipe"]["total_updates"].get<int64_t>());

  std::vector<Json> expected;
  for (const Json& s : trace["steps"]) {
    if (s.contains("update")) expected.push_back(s);
  }
  ASSERT_EQ(updates.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE("update " + std::to_string(i + 1));
    EXPECT_EQ(updates[i].update, expected[i]["update"].get<int64_t>());
    EXPECT_TRUE(RelClose(updates[i].loss, expected[i]["micro_loss"], 1e-4))
        << updates[i].loss << " vs " << expected[i]["micro_loss"];
    EXPECT_TRUE(RelClose(updates[i].lr, expected[i]["lr"], 1e-4))
        << updates[i].lr << " vs " << expected[i]["lr"];
    EXPECT_TRUE(RelClose(updates[i].grad_norm, expected[i]["grad_norm"], 1e-4))
        << updates[i].grad_norm << " vs " << expected[i]["grad_norm"];
  }

  // Final logits on the evaluation texts, as one padded batch.
  auto model = SequenceClassifier::Load(job.output_dir);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<text::Encoding> batch;
  text::EncodeOptions o;
  o.max_length = trace["recipe"]["max_length"];
  for (const Json& t : trace["eval_texts"])
    batch.push_back(*(*model)->tokenizer().Encode(t.get<std::string>(), o));
  auto preds = (*model)->PredictBatch(batch);
  ASSERT_TRUE(preds.ok());
  for (size_t i = 0; i < batch.size(); ++i) {
    for (size_t c = 0; c < 2; ++c) {
      EXPECT_NEAR((*preds)[i].logits[c], trace["final_logits"][i][c].get<double>(), 1e-4) << i;
    }
  }

  // Parameter sums and L2 norms after training.
  auto weights = SafetensorsFile::Open(job.output_dir + "/model.safetensors");
  ASSERT_TRUE(weights.ok());
  for (auto& [name, check] : trace["final_param_checks"].items()) {
    const TensorView* t = (*weights)->Find(name);
    ASSERT_NE(t, nullptr) << name;
    ASSERT_EQ(t->dtype, DType::kF32);
    const float* f = reinterpret_cast<const float*>(t->data);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < t->numel(); ++i) {
      sum += f[i];
      sq += static_cast<double>(f[i]) * f[i];
    }
    EXPECT_TRUE(RelClose(sum, check["sum"], 1e-4) ||
                std::abs(sum - check["sum"].get<double>()) < 1e-6)
        << name << " sum " << sum << " vs " << check["sum"];
    EXPECT_TRUE(RelClose(std::sqrt(sq), check["l2"], 1e-4)) << name << " l2 " << std::sqrt(sq);
  }
}

// The training trace on each device (CUDA on a GPU machine, through scripts/gpu-check.sh;
// skipped where there is none): per-update loss and gradient norm within 1e-3 of Hugging Face's.
class DeviceTrainTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DeviceTrainTest, TraceWithin1e3) {
  auto d = ParseDevice(GetParam());
  if (!d.ok() && d.status().code() == absl::StatusCode::kFailedPrecondition &&
      testing::NoGpuVisible()) {
    GTEST_SKIP() << d.status().message();
  }
  ASSERT_TRUE(d.ok()) << d.status();
  const Json trace = LoadTrace();
  TempDir dir;
  FineTuneJob job = TraceJob(dir, trace);
  job.spec.device = GetParam();
  std::vector<data::Progress> updates;
  auto result = RunFineTune(
      job,
      [&](const data::Progress& p) {
        if (p.eval == nullptr) updates.push_back(p);
      },
      nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  std::vector<Json> expected;
  for (const Json& s : trace["steps"]) {
    if (s.contains("update")) expected.push_back(s);
  }
  ASSERT_EQ(updates.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(RelClose(updates[i].loss, expected[i]["micro_loss"], 1e-3))
        << GetParam() << " update " << i + 1;
    EXPECT_TRUE(RelClose(updates[i].grad_norm, expected[i]["grad_norm"], 1e-3))
        << GetParam() << " update " << i + 1;
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, DeviceTrainTest, ::testing::Values("cpu", "cuda"));

// The generators a checkpoint keeps (the CPU one, and on a GPU the device's, which torch's
// dropout kernel draws from): after RestoreRng the same masks are drawn as after CaptureRng, so
// a resumed GPU run draws what the uninterrupted one did; and a checkpoint of a run on the
// device carries the device's state (cuda_rng.bin), which ReadCheckpoint puts back.
class DeviceRngTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DeviceRngTest, RestoredGeneratorsDrawTheSameDropoutMasks) {
  auto d = ParseDevice(GetParam());
  if (!d.ok() && d.status().code() == absl::StatusCode::kFailedPrecondition &&
      testing::NoGpuVisible()) {
    GTEST_SKIP() << d.status().message();
  }
  ASSERT_TRUE(d.ok()) << d.status();
  const at::Tensor x = at::ones({4096}, at::TensorOptions().device(*d));
  const RngState saved = CaptureRng(*d);
  EXPECT_EQ(saved.cuda.defined(), d->is_cuda());
  const at::Tensor first = at::dropout(x, 0.1, /*train=*/true).cpu();
  const at::Tensor noise = at::rand({16}, at::TensorOptions().device(*d)).cpu();
  EXPECT_FALSE(at::equal(at::dropout(x, 0.1, true).cpu(), first)) << "the stream moved on";
  RestoreRng(saved, *d);
  EXPECT_TRUE(at::equal(at::dropout(x, 0.1, true).cpu(), first));
  EXPECT_TRUE(at::equal(at::rand({16}, at::TensorOptions().device(*d)).cpu(), noise));

  // A checkpoint of a run on the device holds the device's generator too.
  TempDir dir;
  FineTuneJob job = TraceJob(dir, LoadTrace());
  job.spec.device = GetParam();
  job.spec.max_steps = 3;
  job.spec.save_steps = 2;  // a checkpoint at update 2 (none is written at the last)
  job.keep_checkpoints = true;
  job.checkpoint_dir = dir.File("ckpt");
  auto result = RunFineTune(job, nullptr, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(IsRegularFile(dir.File("ckpt/ckpt-2/cuda_rng.bin")), d->is_cuda());
  EXPECT_TRUE(IsRegularFile(dir.File("ckpt/ckpt-2/rng.bin")));
}

INSTANTIATE_TEST_SUITE_P(Devices, DeviceRngTest, ::testing::Values("cpu", "cuda"));

// bf16 autocast training against Hugging Face's fp32 trace. Under autocast every matrix product
// takes bf16 inputs (8-bit significand: each rounding is within 2^-9 = 0.2% relative) and
// accumulates in fp32; a value crosses ~12 such products on its way through 2 layers and back,
// so activations and gradients stay within ~2.4% relative (the linear worst case). The loss
// (~0.69, logits of O(0.1)) moves far less than its inputs: 1e-2 relative bounds it; the
// gradient norm gets the 2.4% bound doubled, 5e-2. And bf16 must have run: the run differs
// from fp32's somewhere.
TEST(TrainerGoldenTest, Bf16TraceWithinBf16ToleranceOfFp32) {
  const Json trace = LoadTrace();
  TempDir dir;
  std::vector<data::Progress> runs[2];
  for (int bf16 = 0; bf16 < 2; ++bf16) {
    FineTuneJob job = TraceJob(dir, trace);
    job.output_dir = dir.File(bf16 ? "bf16" : "fp32");
    job.spec.precision = bf16 ? data::Precision::kBf16 : data::Precision::kFp32;
    auto r = RunFineTune(
        job,
        [&](const data::Progress& p) {
          if (p.eval == nullptr) runs[bf16].push_back(p);
        },
        nullptr);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  std::vector<Json> expected;
  for (const Json& s : trace["steps"]) {
    if (s.contains("update")) expected.push_back(s);
  }
  ASSERT_EQ(runs[1].size(), expected.size());
  double differs = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(RelClose(runs[1][i].loss, expected[i]["micro_loss"], 1e-2))
        << "update " << i + 1 << ": " << runs[1][i].loss << " vs " << expected[i]["micro_loss"];
    EXPECT_TRUE(RelClose(runs[1][i].grad_norm, expected[i]["grad_norm"], 5e-2))
        << "update " << i + 1 << ": " << runs[1][i].grad_norm << " vs " << expected[i]["grad_norm"];
    differs = std::max(differs, std::abs(runs[1][i].grad_norm - runs[0][i].grad_norm));
  }
  EXPECT_GT(differs, 0.0) << "the bf16 run is bit-identical to fp32: autocast did not engage";
}

// k micro-batches of size b accumulate to the same update as one batch of k*b.
TEST(TrainerGoldenTest, GradientAccumulationEqualsOneLargeBatch) {
  const Json trace = LoadTrace();
  TempDir dir;
  std::vector<double> losses[2], norms[2];
  for (int variant = 0; variant < 2; ++variant) {
    FineTuneJob job = TraceJob(dir, trace);
    job.output_dir = dir.File("out" + std::to_string(variant));
    job.spec.pad_to_max_length = true;  // the same padding in both runs
    job.spec.max_length = 40;
    job.spec.batch_size = variant == 0 ? 8 : 2;
    job.spec.grad_accum = variant == 0 ? 1 : 4;
    auto r = RunFineTune(
        job,
        [&](const data::Progress& p) {
          losses[variant].push_back(p.loss);
          norms[variant].push_back(p.grad_norm);
        },
        nullptr);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  ASSERT_EQ(losses[0].size(), 8u);
  ASSERT_EQ(losses[0].size(), losses[1].size());
  for (size_t i = 0; i < losses[0].size(); ++i) {
    EXPECT_NEAR(losses[0][i], losses[1][i], 1e-5) << "update " << i + 1;
    EXPECT_NEAR(norms[0][i], norms[1][i], 1e-5 * std::max(1.0, norms[0][i])) << "update " << i + 1;
  }
  auto a = SafetensorsFile::Open(dir.File("out0/model.safetensors"));
  auto b = SafetensorsFile::Open(dir.File("out1/model.safetensors"));
  ASSERT_TRUE(a.ok() && b.ok());
  for (const TensorView& t : (*a)->tensors()) {
    const TensorView* u = (*b)->Find(t.name);
    ASSERT_NE(u, nullptr);
    const float* x = reinterpret_cast<const float*>(t.data);
    const float* y = reinterpret_cast<const float*>(u->data);
    float worst = 0;
    for (int64_t i = 0; i < t.numel(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
    EXPECT_LT(worst, 1e-5) << t.name;
  }
}

// Cancel after a few updates (a checkpoint is written), resume, and end with the same weights
// as an uninterrupted run: with the fixture's dropout 0, and with dropout 0.1, where the
// resumed run must draw the dropout masks the uninterrupted one drew (the checkpoint carries
// the RNG state).
class TrainerResumeTest : public ::testing::TestWithParam<double> {};

TEST_P(TrainerResumeTest, ResumedRunEqualsUninterruptedRun) {
  const Json trace = LoadTrace();
  TempDir dir;
  std::string base = FixturePath("bert-tiny-train");
  if (GetParam() > 0) {
    const std::string copy = dir.File("dropout-model");
    ASSERT_EQ(system(("cp -r '" + base + "' '" + copy + "'").c_str()), 0);
    auto config = ReadJsonFile(copy + "/config.json");
    ASSERT_TRUE(config.ok()) << config.status();
    (*config)["hidden_dropout_prob"] = GetParam();
    (*config)["attention_probs_dropout_prob"] = GetParam();
    berth::testing::WriteFile(copy + "/config.json", config->dump());
    base = copy;
  }
  auto job_for = [&](const std::string& out) {
    FineTuneJob job = TraceJob(dir, trace);
    job.base_model = base;
    job.output_dir = dir.File(out);
    job.spec.shuffle = true;  // exercises the per-epoch order on resume
    job.spec.epochs = 3;
    job.spec.save_steps = 2;
    return job;
  };
  FineTuneJob full = job_for("full");
  ASSERT_TRUE(RunFineTune(full, nullptr, nullptr).ok());

  FineTuneJob part = job_for("resumed");
  std::atomic<bool> cancel{false};
  auto first = RunFineTune(
      part,
      [&](const data::Progress& p) {
        if (p.update == 5) cancel = true;
      },
      &cancel);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->cancelled);
  EXPECT_EQ(first->updates, 5);
  EXPECT_FALSE(IsDirectory(part.output_dir));
  part.resume = true;
  int64_t first_update_after_resume = 0;
  auto second = RunFineTune(
      part,
      [&](const data::Progress& p) {
        if (first_update_after_resume == 0) first_update_after_resume = p.update;
      },
      nullptr);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first_update_after_resume, 6);
  EXPECT_EQ(second->updates, 12);

  auto a = SafetensorsFile::Open(full.output_dir + "/model.safetensors");
  auto b = SafetensorsFile::Open(part.output_dir + "/model.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  for (const TensorView& t : (*a)->tensors()) {
    const TensorView* u = (*b)->Find(t.name);
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(std::memcmp(t.data, u->data, t.nbytes), 0) << t.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Dropout, TrainerResumeTest, ::testing::Values(0.0, 0.1));

TEST(TrainerSpecTest, RejectsOutOfRangeValuesNamingTheField) {
  data::TrainingSpec s;
  s.learning_rate = 0;
  EXPECT_NE(ValidateSpec(s).message().find("learning_rate"), absl::string_view::npos);
  s = data::TrainingSpec();
  s.grad_accum = 0;
  EXPECT_NE(ValidateSpec(s).message().find("grad_accum"), absl::string_view::npos);
  s = data::TrainingSpec();
  s.metric_for_best = "bleu";
  EXPECT_NE(ValidateSpec(s).message().find("metric_for_best"), absl::string_view::npos);
  EXPECT_TRUE(ValidateSpec(data::TrainingSpec()).ok());
}

}  // namespace
}  // namespace berth::train
