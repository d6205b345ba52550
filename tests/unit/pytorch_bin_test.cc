// pytorch_model.bin read without running its pickle: torch.save fixtures (made by
// tests/reference/make_bin_fixtures.py) against their safetensors twins, and hostile or broken
// archives refused with an error that names what is wrong.
#include "core/model/pytorch_bin.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/infer/sequence_classifier.h"
#include "core/util/files.h"
#include "tests/unit/test_util.h"

namespace berth {
namespace {

using berth::testing::FixturePath;

std::string BinPath(const std::string& name) { return FixturePath("pytorch-bin/" + name); }

void ExpectSameTensors(const SafetensorsFile& got, const SafetensorsFile& want) {
  ASSERT_EQ(got.tensors().size(), want.tensors().size());
  for (const TensorView& w : want.tensors()) {
    const TensorView* g = got.Find(w.name);
    ASSERT_NE(g, nullptr) << w.name;
    EXPECT_EQ(g->dtype, w.dtype) << w.name;
    EXPECT_EQ(g->shape, w.shape) << w.name;
    ASSERT_EQ(g->nbytes, w.nbytes) << w.name;
    EXPECT_EQ(std::memcmp(g->data, w.data, w.nbytes), 0) << w.name;
  }
}

TEST(PytorchBinTest, ViewsOffsetsSharedStoragesAndDtypesReadAsTheirTwin) {
  auto bin = OpenPytorchBin(BinPath("views.bin"));
  ASSERT_TRUE(bin.ok()) << bin.status();
  auto twin = SafetensorsFile::Open(BinPath("views.safetensors"));
  ASSERT_TRUE(twin.ok()) << twin.status();
  ExpectSameTensors(**bin, **twin);
  EXPECT_EQ((*bin)->Find("empty")->nbytes, 0u);
  EXPECT_TRUE((*bin)->Find("scalar")->shape.empty());
}

TEST(PytorchBinTest, ARobertaStateDictIsItsSafetensorsTwin) {
  auto bin = OpenPytorchBin(BinPath("roberta-tiny/pytorch_model.bin"));
  ASSERT_TRUE(bin.ok()) << bin.status();
  auto twin = SafetensorsFile::Open(FixturePath("roberta-tiny") + "/model.safetensors");
  ASSERT_TRUE(twin.ok()) << twin.status();
  ExpectSameTensors(**bin, **twin);
}

TEST(PytorchBinTest, ADirectoryWithOnlyPytorchModelBinClassifiesAsItsTwin) {
  auto from_bin = SequenceClassifier::Load(BinPath("roberta-tiny"));
  ASSERT_TRUE(from_bin.ok()) << from_bin.status();
  auto from_safetensors = SequenceClassifier::Load(FixturePath("roberta-tiny"));
  ASSERT_TRUE(from_safetensors.ok()) << from_safetensors.status();
  for (const char* text : {"a gripping, funny film", "dull and 😴 overlong", "日本語 café"}) {
    auto a = (*from_bin)->tokenizer().Encode(text, text::EncodeOptions());
    ASSERT_TRUE(a.ok());
    auto pa = (*from_bin)->PredictBatch({*a});
    auto pb = (*from_safetensors)->PredictBatch({*a});
    ASSERT_TRUE(pa.ok() && pb.ok());
    // The same weights through the same code: identical, not merely close.
    EXPECT_EQ((*pa)[0].logits, (*pb)[0].logits) << text;
  }
}

void ExpectRefused(const std::string& file, const std::string& needle) {
  auto r = OpenPytorchBin(BinPath(file));
  ASSERT_FALSE(r.ok()) << file;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find(needle), absl::string_view::npos) << r.status();
  EXPECT_NE(r.status().message().find(file), absl::string_view::npos) << r.status();
}

TEST(PytorchBinTest, HostileOrBrokenArchivesAreRefusedByName) {
  // The pickle's call to os.system is named, and never made.
  ExpectRefused("hostile-global.bin", "global 'posix.system' is not allowed");
  ExpectRefused("legacy.bin", "legacy format");
  ExpectRefused("not-a-tensor.bin", "entry 'step' is not a tensor");
  ExpectRefused("missing-storage.bin", "storage data/0");
}

TEST(PytorchBinTest, EveryTruncationIsAnErrorNotACrash) {
  auto bytes = ReadFileToString(BinPath("views.bin"));
  ASSERT_TRUE(bytes.ok());
  for (size_t cut = 0; cut < bytes->size(); cut += 7) {
    auto r = ReadPytorchBin(bytes->substr(0, cut), "cut");
    EXPECT_FALSE(r.ok()) << "cut at " << cut;
  }
  // A flipped byte anywhere either still reads or is an error.
  for (size_t at = 0; at < bytes->size(); at += 3) {
    std::string b = *bytes;
    b[at] = static_cast<char>(b[at] ^ 0x5A);
    auto r = ReadPytorchBin(std::move(b), "flipped");
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    }
  }
}

}  // namespace
}  // namespace berth
