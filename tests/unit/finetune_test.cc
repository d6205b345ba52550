// End-to-end fine-tuning on real data, multi-label losses against Hugging Face, and training
// errors (one class, unknown validation labels).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "absl/strings/match.h"
#include "core/eval/evaluate_model.h"
#include "core/model/safetensors.h"
#include "core/train/trainer.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "tests/unit/test_util.h"

namespace berth::train {
namespace {

using berth::testing::FixturePath;
using berth::testing::ReadJsonLines;
using berth::testing::TempDir;

// `berth eval`'s options: through the engine, `batch_size` examples per forward pass at most.
berth::EvaluateModelOptions EvalWith(int max_length, int batch_size, size_t window = 4096) {
  berth::EvaluateModelOptions o;
  o.evaluate.max_length = max_length;
  o.evaluate.window = window;
  o.engine.batcher.max_batch_size = batch_size;
  return o;
}

// A randomly initialised bert-tiny learns SST-2 sentiment from 1,000 sentences well above chance.
TEST(FinetuneTest, RandomInitBertTinyLearnsSst2AboveChance) {
  TempDir dir;
  FineTuneJob job;
  job.base_model = "config:bert-tiny";
  job.train_path = std::string(berth::testing::ShippedDataDir()) + "/sst2-sample/train.tsv";
  job.validation_path =
      std::string(berth::testing::ShippedDataDir()) + "/sst2-sample/validation.tsv";
  job.output_dir = dir.File("model");
  job.spec.epochs = 3;
  job.spec.batch_size = 16;
  job.spec.learning_rate = 1e-3;
  job.spec.warmup_ratio = 0.1;
  job.spec.max_length = 64;
  job.spec.max_steps = 190;  // about 3 epochs over the first 1,000 rows' worth of updates
  auto r = RunFineTune(job, nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->best.has_value());
  EXPECT_EQ(r->best->examples, 200);
  EXPECT_GE(r->best->accuracy, 0.6) << "validation accuracy " << r->best->accuracy;
  EXPECT_LT(r->train_loss, 0.69);
  // The saved model evaluates to the same accuracy.
  auto m = EvaluateModel(job.output_dir, job.validation_path, {}, EvalWith(64, 32));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_NEAR(m->accuracy, r->best->accuracy, 1e-9);
}

// XLM-R and DistilBERT fine-tune through the same trainer as BERT: from the tiny fixtures (a
// fresh 4-label head) on 64 real TweetEval emotion tweets they fit their training set (chance
// is 0.25, the majority class 33/64), and the saved directory reloads to the same evaluation.
// The fixtures' weights are drawn with std 0.2, so no family generalises from them (BERT's
// fixture neither): generalisation needs pretrained weights, which do not ship here.
class FamilyFinetuneTest : public ::testing::TestWithParam<const char*> {};

TEST_P(FamilyFinetuneTest, FitsEmotionTweetsAndReloads) {
  TempDir dir;
  std::ifstream in(std::string(berth::testing::ShippedDataDir()) + "/emotion-sample/train.jsonl");
  std::string line, rows;
  for (int i = 0; i < 64 && std::getline(in, line); ++i) rows += line + "\n";
  const std::string data = dir.File("emotion64.jsonl");
  berth::testing::WriteFile(data, rows);
  FineTuneJob job;
  job.base_model = FixturePath(GetParam());
  job.train_path = data;
  job.validation_path = data;
  job.output_dir = dir.File("model");
  job.spec.epochs = 40;
  job.spec.batch_size = 16;
  job.spec.learning_rate = 3e-3;
  job.spec.warmup_ratio = 0.1;
  job.spec.max_length = 64;
  auto r = RunFineTune(job, nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->best.has_value());
  EXPECT_EQ(r->labels, (std::vector<std::string>{"anger", "joy", "optimism", "sadness"}));
  EXPECT_GE(r->best->accuracy, 0.85) << "training-set accuracy " << r->best->accuracy;
  auto m = EvaluateModel(job.output_dir, data, {}, EvalWith(64, 32));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_NEAR(m->accuracy, r->best->accuracy, 1e-9);
  EXPECT_NEAR(m->loss, r->best->loss, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyFinetuneTest,
                         ::testing::Values("xlmr-tiny", "distilbert-tiny", "roberta-tiny"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST(FinetuneTest, MultiLabelLossesMatchHuggingFace) {
  auto rows =
      ReadJsonLines(FixturePath("bert-tiny-multilabel") + "/expected/multilabel_loss.jsonl");
  ASSERT_GT(rows.size(), 20u);
  const std::vector<std::string> names = {"anger", "joy", "optimism", "sadness"};
  data::Dataset d;
  d.source = "multilabel_loss.jsonl";
  for (const Json& r : rows) {
    data::Example e;
    e.text = r["text"];
    for (size_t c = 0; c < names.size(); ++c) {
      if (r["labels"][c].get<double>() > 0.5) e.labels.push_back(names[c]);
    }
    d.examples.push_back(e);
  }
  auto m = EvaluateExamples(FixturePath("bert-tiny-multilabel"), d, false, EvalWith(64, 16));
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->example_losses.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_NEAR(m->example_losses[i], rows[i]["loss"].get<double>(), 1e-5) << "line " << i + 1;
  }
}

// Windows smaller than the data (here 7 of 30 examples, the last one partial) give the
// losses and metrics of one window: each example's logits depend only on its own tokens. The
// batches differ, so the matrix products are blocked differently: fp32 rounding, ~1e-7
// relative on logits of order 1, hence 1e-5 on the losses.
TEST(FinetuneTest, EvaluationWindowsAgree) {
  auto rows =
      ReadJsonLines(FixturePath("bert-tiny-multilabel") + "/expected/multilabel_loss.jsonl");
  const std::vector<std::string> names = {"anger", "joy", "optimism", "sadness"};
  data::Dataset d;
  d.source = "multilabel_loss.jsonl";
  for (size_t i = 0; i < rows.size() && i < 30; ++i) {
    data::Example e;
    e.text = rows[i]["text"];
    e.line = static_cast<int64_t>(i) + 1;
    for (size_t c = 0; c < names.size(); ++c) {
      if (rows[i]["labels"][c].get<double>() > 0.5) e.labels.push_back(names[c]);
    }
    d.examples.push_back(e);
  }
  ASSERT_EQ(d.examples.size(), 30u);
  auto whole = EvaluateExamples(FixturePath("bert-tiny-multilabel"), d, false, EvalWith(64, 16));
  auto windows =
      EvaluateExamples(FixturePath("bert-tiny-multilabel"), d, false, EvalWith(64, 3, 7));
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_TRUE(windows.ok()) << windows.status();
  ASSERT_EQ(windows->example_losses.size(), 30u);
  for (size_t i = 0; i < 30; ++i)
    EXPECT_NEAR(windows->example_losses[i], whole->example_losses[i], 1e-5) << "example " << i;
  EXPECT_NEAR(windows->loss, whole->loss, 1e-5);
  EXPECT_EQ(windows->accuracy, whole->accuracy);
  EXPECT_EQ(windows->hamming_loss, whole->hamming_loss);

  // A label the model does not have is named with its file and line, in a later window.
  d.examples[12].labels = {"surprise"};
  auto bad = EvaluateExamples(FixturePath("bert-tiny-multilabel"), d, false, EvalWith(64, 3, 7));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      absl::StrContains(bad.status().message(), "multilabel_loss.jsonl:13: label 'surprise'"))
      << bad.status();
}

// A bert-tiny run on 32 training rows ("good fun N" pos, "dull bad N" neg) and the given
// 4 validation rows, evaluated after every update.
FineTuneJob TinyCsvJob(const TempDir& dir, const std::string& validation_rows) {
  std::string train = "label,text\n";
  for (int i = 0; i < 32; ++i)
    train += std::string(i % 2 ? "pos,good fun " : "neg,dull bad ") + std::to_string(i) + "\n";
  berth::testing::WriteFile(dir.File("train.csv"), train);
  berth::testing::WriteFile(dir.File("val.csv"), "label,text\n" + validation_rows);
  FineTuneJob job;
  job.base_model = "config:bert-tiny";
  job.train_path = dir.File("train.csv");
  job.validation_path = dir.File("val.csv");
  job.output_dir = dir.File("out");
  job.spec.batch_size = 4;
  job.spec.eval_steps = 1;
  return job;
}

// Early stopping on a run that gets worse: the validation rows carry the opposite of the
// training labels, so the validation loss rises as the model fits its training set. With
// patience 2 the run must stop early, and the saved model must be the best evaluation's, which
// is strictly better than the last one (a trainer that saved the last would fail here; on a
// set where best and last tie it could not be told apart).
TEST(FinetuneTest, EarlyStoppingKeepsTheBestEvaluation) {
  TempDir dir;
  FineTuneJob job = TinyCsvJob(dir, "neg,good fun\npos,dull bad\nneg,fun\npos,bad\n");
  job.spec.max_steps = 40;
  job.spec.early_stopping_patience = 2;
  job.spec.learning_rate = 1e-3;
  job.spec.metric_for_best = "loss";
  auto r = RunFineTune(job, nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->early_stopped);
  EXPECT_LT(r->updates, 40);
  ASSERT_TRUE(r->best.has_value());
  ASSERT_FALSE(r->evals.empty());
  double best = r->evals.front().loss;
  for (const data::EvalMetrics& e : r->evals) best = std::min(best, e.loss);
  EXPECT_DOUBLE_EQ(r->best->loss, best);
  EXPECT_LT(best, r->evals.back().loss)
      << "the run must end worse than its best for this test to tell them apart";
  // Patience 2: exactly two evaluations after the best one, neither better.
  EXPECT_EQ(r->updates, r->best_update + 2);
  auto m = EvaluateModel(job.output_dir, job.validation_path, {}, EvalWith(32, 8));
  ASSERT_TRUE(m.ok()) << m.status();
  // The same weights, through the engine: the trainer averages each batch's losses in float32
  // (an ulp at 0.7 is 6e-8, a few of them over the batches), `berth eval` sums the same
  // logits' losses in double; and the engine's batches may be blocked differently (fp32
  // rounding of logits of order 1, ~1e-7). 1e-6 bounds both.
  EXPECT_NEAR(m->loss, best, 1e-6);
}

// Multi-label training end to end from a CSV whose label column holds ';'-separated names:
// the label set is the union, the loss BCE, the saved config says multi_label_classification,
// and a learnable rule (each colour word names its label) is learned.
TEST(FinetuneTest, MultiLabelCsvTrainsEndToEnd) {
  TempDir dir;
  const char* words[] = {"red", "blue", "green"};
  std::string csv = "label,text\n";
  for (int i = 0; i < 96; ++i) {
    std::string labels, text;
    for (int c = 0; c < 3; ++c) {
      if ((i >> c) & 1) {
        labels += std::string(labels.empty() ? "" : ";") + words[c];
        text += std::string(words[c]) + " ";
      }
    }
    if (labels.empty()) continue;  // every row has at least one label
    csv += labels + "," + text + "thing " + std::to_string(i) + "\n";
  }
  berth::testing::WriteFile(dir.File("train.csv"), csv);
  FineTuneJob job;
  job.base_model = "config:bert-tiny";
  job.train_path = dir.File("train.csv");
  job.validation_path = dir.File("train.csv");
  job.output_dir = dir.File("out");
  job.spec.multi_label = true;
  job.data.multi_label = true;
  job.spec.max_steps = 150;  // ~14 epochs of 84 rows
  job.spec.batch_size = 8;
  job.spec.learning_rate = 1e-3;
  job.spec.eval_steps = 50;
  auto r = RunFineTune(job, nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->labels, (std::vector<std::string>{"blue", "green", "red"}));
  ASSERT_TRUE(r->best.has_value());
  EXPECT_GE(r->best->micro_f1, 0.9) << "micro-F1 " << r->best->micro_f1;
  auto config = ReadJsonFile(job.output_dir + "/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)["problem_type"], "multi_label_classification");
  auto m = EvaluateModel(job.output_dir, job.validation_path, job.data, EvalWith(64, 8));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_NEAR(m->micro_f1, r->best->micro_f1, 1e-9);
  EXPECT_GE(m->hamming_loss, 0.0);
  EXPECT_LE(m->hamming_loss, 0.1);
}

// Every --metric-for-best picks the saved model by its own rule (higher is better, loss lower),
// on a run where the best evaluation is not the last: the validation rows carry the opposite
// of the training labels, so the better the model fits its training set, the worse every
// validation metric gets. The saved directory must evaluate to the best evaluation, which is
// strictly better than the last one.
class MetricForBestTest : public ::testing::TestWithParam<const char*> {};

TEST_P(MetricForBestTest, SavesTheBestEvaluationNotTheLast) {
  const std::string metric = GetParam();
  TempDir dir;
  FineTuneJob job = TinyCsvJob(dir, "neg,good fun\npos,dull bad\nneg,fun\npos,bad\n");
  job.spec.max_steps = 30;
  job.spec.learning_rate = 1e-3;
  job.spec.metric_for_best = metric;
  job.spec.save_steps = 1000;  // no resume checkpoints: only the best weights are kept
  auto r = RunFineTune(job, nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->evals.size(), 30u);
  ASSERT_TRUE(r->best.has_value());
  const bool greater = data::EvalMetrics::GreaterIsBetter(metric);
  auto value = [&](const data::EvalMetrics& e) {
    double v = 0;
    EXPECT_TRUE(e.Get(metric, &v));
    return v;
  };
  // The Trainer's rule: the first evaluation that no later one beats strictly.
  size_t best = 0;
  for (size_t i = 1; i < r->evals.size(); ++i) {
    if (greater ? value(r->evals[i]) > value(r->evals[best])
                : value(r->evals[i]) < value(r->evals[best]))
      best = i;
  }
  EXPECT_EQ(r->best_update, static_cast<int64_t>(best) + 1);
  EXPECT_DOUBLE_EQ(value(*r->best), value(r->evals[best]));
  const double last = value(r->evals.back());
  EXPECT_TRUE(greater ? value(*r->best) > last : value(*r->best) < last)
      << "the run must end worse than its best for this test to tell them apart (best "
      << value(*r->best) << ", last " << last << ")";
  auto m = EvaluateModel(job.output_dir, job.validation_path, {}, EvalWith(32, 8));
  ASSERT_TRUE(m.ok()) << m.status();
  // The same weights through the engine: the same predictions, so the same counts; the loss
  // to 1e-6 (EarlyStoppingKeepsTheBestEvaluation says why).
  EXPECT_NEAR(value(*m), value(*r->best), metric == "loss" ? 1e-6 : 1e-9);
}

INSTANTIATE_TEST_SUITE_P(Metrics, MetricForBestTest,
                         ::testing::Values("loss", "accuracy", "macro_f1", "micro_f1",
                                           "macro_precision", "macro_recall"));

TEST(FinetuneTest, RefusesASingleClassAndUnknownValidationLabels) {
  TempDir dir;
  berth::testing::WriteFile(dir.File("one.csv"), "label,text\npos,good\npos,great\n");
  berth::testing::WriteFile(dir.File("two.csv"), "label,text\npos,good\nneg,bad\n");
  berth::testing::WriteFile(dir.File("val.csv"), "label,text\npos,fine\nmeh,so so\n");
  FineTuneJob job;
  job.base_model = "config:bert-tiny";
  job.output_dir = dir.File("out");
  job.train_path = dir.File("one.csv");
  auto r = RunFineTune(job, nullptr, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("only one label"), absl::string_view::npos) << r.status();
  job.train_path = dir.File("two.csv");
  job.validation_path = dir.File("val.csv");
  r = RunFineTune(job, nullptr, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("val.csv:3: label 'meh'"), absl::string_view::npos)
      << r.status();
  job.base_model = "config:bert-huge";
  EXPECT_FALSE(RunFineTune(job, nullptr, nullptr).ok());
}

namespace headless {

struct Headless {
  const char* fixture;
  const char* architecture;  // what AutoModel.save_pretrained writes
  const char* base_prefix;   // dropped, as a headless checkpoint has no prefix
  std::vector<std::string> head_prefixes;
};

// A checkpoint as `AutoModel.from_pretrained(...).save_pretrained(dir)` writes it (like
// sentence-transformers/all-MiniLM-L6-v2): the encoder's tensors without the family's prefix,
// no classification head, `architectures: [<Family>Model]`, no labels.
std::string MakeHeadless(const TempDir& dir, const Headless& h, std::vector<std::string>* head) {
  const std::string out = dir.File("headless");
  EXPECT_TRUE(MakeDirectories(out).ok());
  auto file = SafetensorsFile::Open(FixturePath(h.fixture) + "/model.safetensors");
  EXPECT_TRUE(file.ok());
  std::vector<TensorToWrite> tensors;
  for (const TensorView& t : (*file)->tensors()) {
    bool in_head = false;
    for (const std::string& p : h.head_prefixes) in_head |= absl::StartsWith(t.name, p);
    if (in_head) {
      head->push_back(t.name);
      continue;
    }
    std::string name = t.name;
    if (absl::StartsWith(name, h.base_prefix)) name = name.substr(strlen(h.base_prefix));
    tensors.push_back({name, t.dtype, t.shape, t.data, t.nbytes});
  }
  EXPECT_TRUE(WriteSafetensors(out + "/model.safetensors", tensors, {{"format", "pt"}}).ok());
  auto config = ReadJsonFile(FixturePath(h.fixture) + "/config.json");
  EXPECT_TRUE(config.ok());
  (*config)["architectures"] = Json::array({h.architecture});
  config->erase("id2label");
  config->erase("label2id");
  EXPECT_TRUE(WriteFileAtomically(out + "/config.json", config->dump(2)).ok());
  for (const char* f :
       {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "sentencepiece.bpe.model", "vocab.json", "merges.txt"}) {
    auto bytes = ReadFileToString(FixturePath(h.fixture) + "/" + f);
    if (bytes.ok()) {
      EXPECT_TRUE(WriteFileAtomically(out + "/" + f, *bytes).ok());
    }
  }
  std::sort(head->begin(), head->end());
  return out;
}

class HeadlessBaseTest : public ::testing::TestWithParam<Headless> {};

// Every family loads a headless checkpoint as from_pretrained does: the encoder from the file,
// a freshly initialised head, and the list of those new tensors. With a learning rate of 0 (the
// first warmup step) the
// saved encoder is the checkpoint's, bit for bit.
TEST_P(HeadlessBaseTest, LoadsTheEncoderAndNamesTheNewHead) {
  TempDir dir;
  std::vector<std::string> head;
  FineTuneJob job;
  job.base_model = MakeHeadless(dir, GetParam(), &head);
  job.train_path = std::string(berth::testing::ShippedDataDir()) + "/sst2-sample/validation.tsv";
  job.output_dir = dir.File("model");
  job.spec.max_steps = 1;
  job.spec.batch_size = 4;
  job.spec.learning_rate = 1e-3;
  job.spec.warmup_steps = 10;  // the one update is warmup step 0: learning rate 0
  job.spec.max_length = 32;
  auto r = RunFineTune(job, nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<std::string> initialized = r->newly_initialized;
  std::sort(initialized.begin(), initialized.end());
  EXPECT_EQ(initialized, head);
  auto saved = SafetensorsFile::Open(job.output_dir + "/model.safetensors");
  auto original = SafetensorsFile::Open(FixturePath(GetParam().fixture) + "/model.safetensors");
  ASSERT_TRUE(saved.ok() && original.ok());
  int compared = 0;
  for (const TensorView& t : (*original)->tensors()) {
    if (std::binary_search(head.begin(), head.end(), t.name)) continue;
    const TensorView* s = (*saved)->Find(t.name);
    ASSERT_NE(s, nullptr) << t.name;
    ASSERT_EQ(s->nbytes, t.nbytes) << t.name;
    EXPECT_EQ(std::memcmp(s->data, t.data, t.nbytes), 0) << t.name;
    ++compared;
  }
  EXPECT_GT(compared, 10);
}

INSTANTIATE_TEST_SUITE_P(
    Families, HeadlessBaseTest,
    ::testing::Values(Headless{"bert-tiny-uncased", "BertModel", "bert.", {"classifier."}},
                      Headless{"distilbert-tiny",
                               "DistilBertModel",
                               "distilbert.",
                               {"classifier.", "pre_classifier."}},
                      Headless{"xlmr-tiny", "XLMRobertaModel", "roberta.", {"classifier."}},
                      Headless{"roberta-tiny", "RobertaModel", "roberta.", {"classifier."}}),
    [](const ::testing::TestParamInfo<Headless>& info) {
      std::string name = info.param.fixture;
      for (char& c : name) {
        if (c == '-') c = '_';
      }
      return name;
    });

}  // namespace headless

}  // namespace
}  // namespace berth::train
