// XLM-R's SentencePiece tokenizer beyond the golden files: fairseq ids, special tokens in text,
// save/reload, and clear errors for a missing or corrupt model file.
#include <gtest/gtest.h>

#include "core/text/tokenizer.h"
#include "core/util/files.h"
#include "tests/unit/test_util.h"

namespace berth::text {
namespace {

using berth::testing::FixturePath;
using berth::testing::TempDir;
using berth::testing::WriteFile;

std::string CopyFixture(const TempDir& dir) {
  const std::string out = dir.File("xlmr");
  EXPECT_TRUE(MakeDirectories(out).ok());
  for (const char* f : {"sentencepiece.bpe.model", "tokenizer_config.json",
                        "special_tokens_map.json", "config.json"}) {
    auto bytes = ReadFileToString(JoinPath(FixturePath("xlmr-tiny"), f));
    EXPECT_TRUE(bytes.ok());
    WriteFile(JoinPath(out, f), *bytes);
  }
  return out;
}

TEST(SentencePieceTest, FairseqIdsAndSpecialTokens) {
  auto tok = LoadTokenizer(FixturePath("xlmr-tiny"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  const Tokenizer& t = **tok;
  EXPECT_EQ(t.vocab_size(), 8002);
  EXPECT_EQ(*t.TokenToId("<s>"), 0);
  EXPECT_EQ(*t.TokenToId("<pad>"), 1);
  EXPECT_EQ(*t.TokenToId("</s>"), 2);
  EXPECT_EQ(*t.TokenToId("<unk>"), 3);
  EXPECT_EQ(*t.TokenToId("<mask>"), 8001);
  EXPECT_EQ(t.IdToToken(8001), "<mask>");
  EncodeOptions o;
  o.return_tokens = true;
  // <mask> swallows the space on its left (lstrip), as HF's AddedToken says.
  auto e = t.Encode("Hello <mask> world", o);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->input_ids.front(), 0);
  EXPECT_EQ(e->input_ids.back(), 2);
  EXPECT_NE(std::find(e->input_ids.begin(), e->input_ids.end(), 8001), e->input_ids.end());
  for (int32_t id : e->input_ids) EXPECT_EQ(t.IdToToken(id).empty(), false) << id;
  auto pair = t.EncodePair("a", "b", o);
  ASSERT_TRUE(pair.ok());
  // <s> A </s></s> B </s>, all type ids 0.
  EXPECT_EQ(pair->input_ids[0], 0);
  EXPECT_EQ(std::count(pair->input_ids.begin(), pair->input_ids.end(), 2), 3);
  for (int32_t type : pair->token_type_ids) EXPECT_EQ(type, 0);
}

TEST(SentencePieceTest, SaveAndReloadEncodesTheSame) {
  TempDir dir;
  auto tok = LoadTokenizer(FixturePath("xlmr-tiny"));
  ASSERT_TRUE(tok.ok());
  const std::string out = dir.File("saved");
  ASSERT_TRUE(MakeDirectories(out).ok());
  ASSERT_TRUE((*tok)->Save(out).ok());
  auto again = LoadTokenizer(out);
  ASSERT_TRUE(again.ok()) << again.status();
  for (const char* text : {"Hello, world!", "Ünïcödé <mask> 😀 日本語", "  spaced   out  "}) {
    auto a = (*tok)->Encode(text, EncodeOptions());
    auto b = (*again)->Encode(text, EncodeOptions());
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->input_ids, b->input_ids) << text;
  }
}

TEST(SentencePieceTest, CorruptOrMissingModelIsAClearError) {
  TempDir dir;
  const std::string copy = CopyFixture(dir);
  WriteFile(JoinPath(copy, "sentencepiece.bpe.model"), "this is not a protobuf");
  auto bad = LoadTokenizer(copy);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("sentencepiece.bpe.model"), absl::string_view::npos)
      << bad.status();
  auto bytes = ReadFileToString(JoinPath(FixturePath("xlmr-tiny"), "sentencepiece.bpe.model"));
  WriteFile(JoinPath(copy, "sentencepiece.bpe.model"), bytes->substr(0, bytes->size() / 2));
  auto truncated = LoadTokenizer(copy);
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("sentencepiece.bpe.model"), absl::string_view::npos);
  ASSERT_TRUE(RemoveAll(JoinPath(copy, "sentencepiece.bpe.model")).ok());
  auto missing = LoadTokenizer(copy);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("sentencepiece.bpe.model is missing"),
            absl::string_view::npos)
      << missing.status();
}

TEST(SentencePieceTest, InvalidUtf8IsRejectedWithItsOffset) {
  auto tok = LoadTokenizer(FixturePath("xlmr-tiny"));
  ASSERT_TRUE(tok.ok());
  auto e = (*tok)->Encode("ok \xff bad", EncodeOptions());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  // "ok " is 3 bytes: the bad byte is at offset 3.
  EXPECT_NE(e.status().message().find("bad byte 0xff at offset 3"), absl::string_view::npos)
      << e.status();
}

}  // namespace
}  // namespace berth::text
