// BERT forward pass against Hugging Face logits, weight loading reports, and save/load round trips.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>

#include "core/infer/sequence_classifier.h"
#include "core/model/model_dir.h"
#include "core/model/safetensors.h"
#include "core/runtime/device.h"
#include "core/util/files.h"
#include "tests/unit/test_util.h"

namespace berth {
namespace {

using berth::testing::FixturePath;
using berth::testing::ReadJsonLines;
using berth::testing::TempDir;

struct Fixture {
  const char* model;
  int max_length;
};

class GoldenLogitsTest : public ::testing::TestWithParam<Fixture> {
 protected:
  void SetUp() override {
    auto c = SequenceClassifier::Load(FixturePath(GetParam().model));
    ASSERT_TRUE(c.ok()) << c.status();
    classifier_ = std::move(*c);
    rows_ = ReadJsonLines(FixturePath(GetParam().model) + "/expected/logits.jsonl");
    ASSERT_GT(rows_.size(), 8u);
  }
  text::Encoding Encode(const Json& row) {
    text::EncodeOptions o;
    o.max_length = GetParam().max_length;
    auto e = classifier_->tokenizer().Encode(row["text"].get<std::string>(), o);
    EXPECT_TRUE(e.ok()) << e.status();
    return *e;
  }
  std::unique_ptr<SequenceClassifier> classifier_;
  std::vector<Json> rows_;
};

void ExpectClose(const std::vector<float>& got, const std::vector<double>& want, double tol,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], tol) << what << " [" << i << "]";
  }
}

TEST_P(GoldenLogitsTest, OneAtATimeWithin1e5) {
  for (size_t i = 0; i < rows_.size(); ++i) {
    auto p = classifier_->PredictBatch({Encode(rows_[i])});
    ASSERT_TRUE(p.ok()) << p.status();
    const std::string what = "line " + std::to_string(i + 1);
    ExpectClose((*p)[0].logits, rows_[i]["logits"].get<std::vector<double>>(), 1e-5, what);
    ExpectClose((*p)[0].scores, rows_[i]["probabilities"].get<std::vector<double>>(), 1e-5, what);
    EXPECT_EQ((*p)[0].label, rows_[i]["label"].get<std::string>()) << what;
  }
}

TEST_P(GoldenLogitsTest, PaddedBatchWithin1e5) {
  std::vector<text::Encoding> batch;
  std::vector<size_t> idx;
  for (size_t i = 0; i < rows_.size(); ++i) {
    if (rows_[i].contains("logits_padded_batch")) {
      batch.push_back(Encode(rows_[i]));
      idx.push_back(i);
    }
  }
  ASSERT_EQ(batch.size(), 8u);
  auto p = classifier_->PredictBatch(batch);
  ASSERT_TRUE(p.ok()) << p.status();
  for (size_t k = 0; k < idx.size(); ++k) {
    ExpectClose((*p)[k].logits, rows_[idx[k]]["logits_padded_batch"].get<std::vector<double>>(),
                1e-5, "batch row " + std::to_string(k));
  }
}

TEST_P(GoldenLogitsTest, WholeFileInMixedLengthBatchesMatchesOneByOne) {
  std::vector<text::Encoding> batch;
  for (const Json& r : rows_) batch.push_back(Encode(r));
  auto p = classifier_->PredictBatch(batch);
  ASSERT_TRUE(p.ok()) << p.status();
  for (size_t i = 0; i < rows_.size(); ++i) {
    ExpectClose((*p)[i].logits, rows_[i]["logits"].get<std::vector<double>>(), 1e-5,
                "line " + std::to_string(i + 1));
  }
}

TEST_P(GoldenLogitsTest, SaveThenLoadIsBitIdentical) {
  TempDir dir;
  const std::string out = dir.path() + "/saved";
  ASSERT_TRUE(classifier_->Save(out).ok());
  auto a = SafetensorsFile::Open(FixturePath(GetParam().model) + "/model.safetensors");
  auto b = SafetensorsFile::Open(out + "/model.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*b)->metadata().at("format"), "pt");
  ASSERT_EQ((*a)->tensors().size(), (*b)->tensors().size());
  for (const TensorView& t : (*a)->tensors()) {
    const TensorView* u = (*b)->Find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(u->shape, t.shape) << t.name;
    ASSERT_EQ(u->nbytes, t.nbytes) << t.name;
    EXPECT_EQ(std::memcmp(u->data, t.data, t.nbytes), 0) << t.name;
  }
  auto again = SequenceClassifier::Load(out);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->config().id2label, classifier_->config().id2label);
  EXPECT_EQ((*again)->config().problem_type, classifier_->config().problem_type);
  for (size_t i = 0; i < rows_.size(); i += 7) {
    auto x = classifier_->PredictBatch({Encode(rows_[i])});
    auto y = (*again)->PredictBatch({Encode(rows_[i])});
    ASSERT_TRUE(x.ok() && y.ok());
    EXPECT_EQ((*x)[0].logits, (*y)[0].logits) << "line " << i + 1;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenLogitsTest,
                         ::testing::Values(Fixture{"bert-tiny-uncased", 128},
                                           Fixture{"bert-tiny-multilabel", 64},
                                           Fixture{"distilbert-tiny", 64}, Fixture{"xlmr-tiny", 64},
                                           Fixture{"roberta-tiny", 128}),
                         [](const ::testing::TestParamInfo<Fixture>& info) {
                           std::string name = info.param.model;
                           for (char& ch : name) {
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

// Copies the fixture model into a temp dir with its weights edited by `edit`.
std::string ModelWithEditedWeights(const TempDir& dir,
                                   const std::function<void(std::vector<TensorToWrite>*)>& edit) {
  const std::string src = FixturePath("bert-tiny-multilabel");
  for (const char* f :
       {"config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
    auto text = ReadFileToString(src + "/" + f);
    EXPECT_TRUE(text.ok());
    berth::testing::WriteFile(dir.File(f), *text);
  }
  auto file = SafetensorsFile::Open(src + "/model.safetensors");
  EXPECT_TRUE(file.ok());
  std::vector<TensorToWrite> tensors;
  for (const TensorView& t : (*file)->tensors()) {
    tensors.push_back(TensorToWrite{t.name, t.dtype, t.shape, t.data, t.nbytes});
  }
  edit(&tensors);
  EXPECT_TRUE(WriteSafetensors(dir.File("model.safetensors"), tensors, {{"format", "pt"}}).ok());
  return dir.path();
}

TEST(LoadWeightsTest, ReportsMissingUnexpectedAndMismatchedByName) {
  TempDir dir;
  std::vector<float> wrong(7, 0.f);
  std::string path = ModelWithEditedWeights(dir, [&](std::vector<TensorToWrite>* t) {
    for (auto it = t->begin(); it != t->end();) {
      if (it->name == "bert.pooler.dense.bias") {
        it = t->erase(it);
      } else {
        ++it;
      }
    }
    for (TensorToWrite& x : *t) {
      if (x.name == "classifier.bias") x = {"classifier.bias", DType::kF32, {7}, wrong.data(), 28};
    }
    t->push_back({"extra.weight", DType::kF32, {7}, wrong.data(), 28});
  });
  auto m = LoadModelDirectory(path);
  ASSERT_FALSE(m.ok());
  const std::string msg(m.status().message());
  EXPECT_NE(msg.find("missing: bert.pooler.dense.bias"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected: extra.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("classifier.bias: file [7] vs model [4]"), std::string::npos) << msg;
}

TEST(LoadWeightsTest, HalfPrecisionAndLegacyNamesLoad) {
  TempDir dir;
  std::vector<std::vector<uint16_t>> keep;
  std::map<std::string, std::vector<float>> want;  // by the model's parameter name
  std::string path = ModelWithEditedWeights(dir, [&](std::vector<TensorToWrite>* t) {
    for (TensorToWrite& x : *t) {
      // Store every tensor as bf16 (the top half of each float) and use gamma/beta names.
      const float* f = static_cast<const float*>(x.data);
      std::vector<uint16_t> h(x.nbytes / 4);
      std::vector<float>& w = want[x.name];
      for (size_t i = 0; i < h.size(); ++i) {
        uint32_t bits;
        std::memcpy(&bits, f + i, 4);
        h[i] = static_cast<uint16_t>(bits >> 16);
        bits = static_cast<uint32_t>(h[i]) << 16;  // bf16 -> fp32 is exact
        float back;
        std::memcpy(&back, &bits, 4);
        w.push_back(back);
      }
      keep.push_back(std::move(h));
      x.dtype = DType::kBF16;
      x.data = keep.back().data();
      x.nbytes = keep.back().size() * 2;
      if (x.name == "bert.embeddings.LayerNorm.weight") x.name = "bert.embeddings.LayerNorm.gamma";
      if (x.name == "bert.embeddings.LayerNorm.bias") x.name = "bert.embeddings.LayerNorm.beta";
    }
  });
  auto m = LoadModelDirectory(path);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->report.missing.empty());
  // Every value landed in its parameter (gamma/beta in LayerNorm's weight/bias), widened exactly.
  size_t checked = 0;
  for (const auto& p : m->module->named_parameters()) {
    SCOPED_TRACE(p.key());
    ASSERT_TRUE(want.count(p.key())) << "no source tensor for this parameter";
    const at::Tensor got = p.value().detach().to(at::kFloat).contiguous().reshape({-1});
    const std::vector<float>& w = want[p.key()];
    ASSERT_EQ(got.numel(), static_cast<int64_t>(w.size()));
    EXPECT_EQ(std::memcmp(got.data_ptr<float>(), w.data(), w.size() * 4), 0);
    ++checked;
  }
  EXPECT_EQ(checked, want.size());
}

// A file whose header length is not a multiple of 4 (the format allows any; writers pad it)
// puts every fp32 tensor at an address the dtype does not align: those go through a byte copy,
// and every parameter still equals the aligned file's, bit for bit.
TEST(LoadWeightsTest, TensorsTheFileDoesNotAlignLoadTheSame) {
  TempDir dir;
  const std::string path = ModelWithEditedWeights(dir, [](std::vector<TensorToWrite>*) {});
  auto aligned = LoadModelDirectory(path);
  ASSERT_TRUE(aligned.ok()) << aligned.status();
  auto bytes = ReadFileToString(dir.File("model.safetensors"));
  ASSERT_TRUE(bytes.ok());
  uint64_t header = 0;
  std::memcpy(&header, bytes->data(), 8);  // little-endian length of the JSON header
  ASSERT_EQ(header % 4, 0u) << "the writer pads its header";
  bytes->insert(8 + header, " ");  // JSON may end in white space
  ++header;
  std::memcpy(bytes->data(), &header, 8);
  berth::testing::WriteFile(dir.File("model.safetensors"), *bytes);
  auto file = SafetensorsFile::Open(dir.File("model.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  size_t unaligned = 0;
  for (const TensorView& t : (*file)->tensors()) {
    unaligned += reinterpret_cast<uintptr_t>(t.data) % DTypeSize(t.dtype) != 0;
  }
  ASSERT_GT(unaligned, 0u);
  auto shifted = LoadModelDirectory(path);
  ASSERT_TRUE(shifted.ok()) << shifted.status();
  auto want = aligned->module->named_parameters();
  size_t checked = 0;
  for (const auto& p : shifted->module->named_parameters()) {
    SCOPED_TRACE(p.key());
    ASSERT_TRUE(want.contains(p.key()));
    EXPECT_TRUE(torch::equal(p.value(), want[p.key()]));
    ++checked;
  }
  EXPECT_EQ(checked, want.size());
}

// Inference loads leave fp32 weights in the file's mapping (Berth's writer starts the data area
// 64-byte aligned): those parameters point into the file, outlive the SafetensorsFile, can be
// written without the file changing, and classify bit for bit as the same weights copied.
TEST(LoadWeightsTest, InferenceParametersShareTheFileAndClassifyAsACopy) {
  TempDir dir;
  const std::string path = ModelWithEditedWeights(dir, [](std::vector<TensorToWrite>*) {});
  const std::string file_path = dir.File("model.safetensors");
  auto before = ReadFileToString(file_path);
  ASSERT_TRUE(before.ok());
  auto copied = LoadModelDirectory(path);
  ASSERT_TRUE(copied.ok()) << copied.status();
  auto shared = LoadModelDirectory(path);
  ASSERT_TRUE(shared.ok()) << shared.status();
  auto file = SafetensorsFile::Open(file_path);
  ASSERT_TRUE(file.ok()) << file.status();
  LoadWeightsOptions o;
  o.share_file_memory = true;
  ASSERT_TRUE(LoadWeights(*shared->module, **file, o, nullptr).ok());
  size_t aliased = 0, fp32 = 0;
  for (const auto& p : shared->module->named_parameters()) {
    const TensorView* t = (*file)->Find(p.key());
    ASSERT_NE(t, nullptr) << p.key();
    fp32 += t->dtype == DType::kF32;
    aliased += p.value().data_ptr() == static_cast<const void*>(t->data);
  }
  // Every tensor but those after the first whose size is not a multiple of 64 bytes.
  EXPECT_GT(aliased, fp32 / 2) << aliased << " of " << fp32;
  file->reset();  // the parameters keep the mapping alive
  auto want = copied->module->named_parameters();
  for (const auto& p : shared->module->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), want[p.key()])) << p.key();
  }
  auto a = SequenceClassifier::FromModel(std::move(*copied), ClassifierOptions());
  auto b = SequenceClassifier::FromModel(std::move(*shared), ClassifierOptions());
  ASSERT_TRUE(a.ok() && b.ok());
  for (const char* text : {"a gripping, funny film", "dull and overlong", "café"}) {
    auto e = (*a)->tokenizer().Encode(text, text::EncodeOptions());
    ASSERT_TRUE(e.ok());
    auto pa = (*a)->PredictBatch({*e});
    auto pb = (*b)->PredictBatch({*e});
    ASSERT_TRUE(pa.ok() && pb.ok());
    EXPECT_EQ((*pa)[0].logits, (*pb)[0].logits) << text;
  }
  {
    // A write lands in this process's copy of the page, not in the file.
    auto loaded = LoadModelDirectory(path);
    ASSERT_TRUE(loaded.ok());
    auto again = SafetensorsFile::Open(file_path);
    ASSERT_TRUE(again.ok());
    ASSERT_TRUE(LoadWeights(*loaded->module, **again, o, nullptr).ok());
    torch::NoGradGuard no_grad;
    for (auto& p : loaded->module->parameters()) p.add_(1.0);
  }
  auto after = ReadFileToString(file_path);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(*after == *before);
}

TEST(LoadModelDirectoryTest, MissingOrBrokenDirectoriesAreClearErrors) {
  EXPECT_EQ(LoadModelDirectory("/nonexistent/dir").status().code(), absl::StatusCode::kNotFound);
  TempDir dir;
  auto r = LoadModelDirectory(dir.path());
  EXPECT_NE(r.status().message().find("config.json"), absl::string_view::npos) << r.status();
  berth::testing::WriteFile(dir.File("config.json"), "{\"model_type\": \"bert\"}");
  r = LoadModelDirectory(dir.path());
  EXPECT_NE(r.status().message().find("model.safetensors"), absl::string_view::npos) << r.status();
  berth::testing::WriteFile(dir.File("model.safetensors"), "garbage");
  r = LoadModelDirectory(dir.path());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
}

// The same model on each device (scripts/gpu-check.sh runs the CUDA instances on a GPU
// machine; here they report themselves skipped): fp32 logits within 1e-4 of Hugging Face's, and
// bf16 weights give the same labels.
class DeviceLogitsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto d = ParseDevice(GetParam());
    if (!d.ok() && d.status().code() == absl::StatusCode::kFailedPrecondition &&
        testing::NoGpuVisible()) {
      GTEST_SKIP() << d.status().message();
    }
    ASSERT_TRUE(d.ok()) << d.status();
  }
  std::unique_ptr<SequenceClassifier> Load(InferencePrecision precision) {
    ClassifierOptions o;
    o.device = GetParam();
    o.precision = precision;
    auto c = SequenceClassifier::Load(FixturePath("bert-tiny-uncased"), o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
};

TEST_P(DeviceLogitsTest, Fp32LogitsWithin1e4AndBf16LabelsAgree) {
  auto fp32 = Load(InferencePrecision::kFp32);
  auto bf16 = Load(InferencePrecision::kBf16);
  ASSERT_NE(fp32, nullptr);
  ASSERT_NE(bf16, nullptr);
  const std::vector<Json> rows =
      ReadJsonLines(FixturePath("bert-tiny-uncased") + "/expected/logits.jsonl");
  std::vector<text::Encoding> batch;
  text::EncodeOptions eo;
  eo.max_length = 128;  // as the fixture's logits were made
  for (const Json& r : rows)
    batch.push_back(*fp32->tokenizer().Encode(r["text"].get<std::string>(), eo));
  auto a = fp32->PredictBatch(batch);
  auto b = bf16->PredictBatch(batch);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string what = GetParam() + " line " + std::to_string(i + 1);
    ExpectClose((*a)[i].logits, rows[i]["logits"].get<std::vector<double>>(), 1e-4, what);
    // bf16 moves each probability by less than 0.03 (EngineTest.Bf16AgreesWithFp32), so the
    // label may change only where fp32's top two are less than 0.06 apart.
    if ((*b)[i].label != (*a)[i].label) {
      EXPECT_LT(berth::testing::TopTwoMargin((*a)[i].scores), 0.06) << what;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, DeviceLogitsTest, ::testing::Values("cpu", "cuda"));

}  // namespace
}  // namespace berth
