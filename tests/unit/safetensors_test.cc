// Safetensors: round trip, and hostile files that must fail with a clear error, never crash.
#include "core/model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/unit/test_util.h"

namespace berth {
namespace {

using berth::testing::TempDir;

// Builds a file image from a header string and a data area.
std::string Image(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + header + data;
}

absl::Status Parse(std::string bytes) {
  return SafetensorsFile::FromBytes(std::move(bytes), "test.safetensors").status();
}

void ExpectInvalid(std::string bytes, const std::string& needle) {
  absl::Status s = Parse(std::move(bytes));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(needle), absl::string_view::npos) << s.message();
  EXPECT_NE(s.message().find("test.safetensors"), absl::string_view::npos) << s.message();
}

TEST(SafetensorsTest, WriteThenReadRoundTrips) {
  TempDir dir;
  float a[6] = {1, 2, 3, 4, 5, 6};
  uint16_t b[2] = {0x3F80, 0xC000};  // bf16 1.0, -2.0
  std::vector<TensorToWrite> t = {{"z.weight", DType::kF32, {2, 3}, a, sizeof(a)},
                                  {"a.bias", DType::kBF16, {2}, b, sizeof(b)}};
  ASSERT_TRUE(WriteSafetensors(dir.File("m.safetensors"), t, {{"format", "pt"}}).ok());
  auto f = SafetensorsFile::Open(dir.File("m.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->tensors().size(), 2u);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  const TensorView* w = (*f)->Find("z.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(w->data, a, sizeof(a)), 0);
  const TensorView* bias = (*f)->Find("a.bias");
  ASSERT_NE(bias, nullptr);
  EXPECT_EQ(bias->dtype, DType::kBF16);
  EXPECT_EQ(std::memcmp(bias->data, b, sizeof(b)), 0);
}

TEST(SafetensorsTest, AcceptsAMinimalValidImage) {
  EXPECT_TRUE(
      Parse(Image(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "abcd")).ok());
  EXPECT_TRUE(Parse(Image(R"({"x":{"dtype":"F16","shape":[0],"data_offsets":[0,0]}})", "")).ok());
}

TEST(SafetensorsTest, RejectsTruncatedFiles) {
  ExpectInvalid("", "shorter than");
  ExpectInvalid(std::string("\x10\0\0", 3), "shorter than");
  std::string good = Image(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "abcdefgh");
  ExpectInvalid(good.substr(0, good.size() - 3), "past the");
  ExpectInvalid(good.substr(0, 20), "runs past the end");
}

TEST(SafetensorsTest, RejectsHeaderLengthPastEndOrHuge) {
  std::string img(8, '\0');
  img[0] = '\xFF';
  img[1] = '\xFF';
  img += "{}";
  ExpectInvalid(img, "runs past the end");
  std::string huge(8, '\xFF');
  ExpectInvalid(huge + "{}", "exceeds 100 MB");
}

TEST(SafetensorsTest, RejectsOffsetsPastTheEnd) {
  ExpectInvalid(Image(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "abcd"),
                "past the 4-byte data area");
}

TEST(SafetensorsTest, RejectsUnknownDtype) {
  ExpectInvalid(Image(R"({"x":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", "abcd"),
                "unsupported dtype 'F33'");
  ExpectInvalid(Image(R"({"x":{"shape":[1],"data_offsets":[0,4]}})", "abcd"), "no dtype");
}

TEST(SafetensorsTest, RejectsOverlapsAndHoles) {
  ExpectInvalid(Image(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                      "abcdefgh"),
                "overlaps");
  ExpectInvalid(Image(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", "abcdefgh"),
                "belong to no tensor");
}

TEST(SafetensorsTest, RejectsShapeThatDisagreesWithOffsets) {
  ExpectInvalid(Image(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "abcdefgh"),
                "need");
  ExpectInvalid(Image(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"),
                "non-negative");
  ExpectInvalid(
      Image(R"({"x":{"dtype":"F64","shape":[4611686018427387904,8],"data_offsets":[0,8]}})",
            "abcdefgh"),
      "too large");
}

TEST(SafetensorsTest, RejectsMalformedHeaders) {
  ExpectInvalid(Image("[1,2]", ""), "start with '{'");
  ExpectInvalid(Image("{\"x\":", ""), "not a JSON object");
  ExpectInvalid(Image(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "abcd"),
                "begin");
  ExpectInvalid(Image(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "abcd"),
                "data_offsets");
  ExpectInvalid(Image(R"({"__metadata__":{"a":1}})", ""), "__metadata__");
}

TEST(SafetensorsTest, OpenMissingFileIsNotFound) {
  EXPECT_EQ(SafetensorsFile::Open("/nonexistent.safetensors").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace berth
