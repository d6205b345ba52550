// RoBERTa's byte-level BPE beyond the golden files (wordpiece_test.cc's GoldenTokensTest runs
// those): the pre-tokenizer's splits, loading from vocab.json + merges.txt alone, save/reload,
// merge order, and clear errors for broken files.
#include "core/text/bpe.h"

#include <gtest/gtest.h>

#include "core/text/tokenizer.h"
#include "core/util/files.h"
#include "tests/unit/test_util.h"

namespace berth::text {
namespace {

using berth::testing::FixturePath;
using berth::testing::ReadJsonLines;
using berth::testing::TempDir;
using berth::testing::WriteFile;

std::vector<std::string> Split(const std::string& s) {
  std::u32string u;
  EXPECT_TRUE(DecodeUtf8(s, InvalidUtf8::kReject, &u).ok());
  return ByteLevelBpeTokenizer::PreTokenize(u);
}

TEST(BpePreTokenizerTest, SplitsAsTheGpt2Regex) {
  using V = std::vector<std::string>;
  EXPECT_EQ(Split("Hello world!"), (V{"Hello", " world", "!"}));
  // Contractions are their own pre-tokens, lower case only.
  EXPECT_EQ(Split("it's they'RE"), (V{"it", "'s", " they", "'", "RE"}));
  // A whitespace run gives its last space to the word after it; at the end it stays whole.
  EXPECT_EQ(Split("a   b  "), (V{"a", "  ", " b", "  "}));
  EXPECT_EQ(Split("a\tb"), (V{"a", "\t", "b"}));
  EXPECT_EQ(Split("x 12 ½ 😀!"), (V{"x", " 12", " ½", " 😀!"}));
  EXPECT_EQ(Split("日本語 café"), (V{"日本語", " café"}));
  EXPECT_TRUE(Split("").empty());
}

std::string CopyFixture(const TempDir& dir, const std::vector<std::string>& files) {
  const std::string out = dir.File("roberta");
  EXPECT_TRUE(MakeDirectories(out).ok());
  for (const std::string& f : files) {
    auto bytes = ReadFileToString(JoinPath(FixturePath("roberta-tiny"), f));
    EXPECT_TRUE(bytes.ok()) << f;
    WriteFile(JoinPath(out, f), *bytes);
  }
  return out;
}

// Every golden line through a tokenizer loaded some other way.
void ExpectGoldenTokens(const Tokenizer& t) {
  auto rows = ReadJsonLines(FixturePath("roberta-tiny") + "/expected/tokens.jsonl");
  ASSERT_GE(rows.size(), 500u);
  EncodeOptions o;
  o.max_length = 128;
  int differ = 0;
  for (const Json& r : rows) {
    auto e = t.Encode(r["text"].get<std::string>(), o);
    ASSERT_TRUE(e.ok()) << e.status();
    differ += e->input_ids != r["input_ids"].get<std::vector<int32_t>>();
  }
  EXPECT_EQ(differ, 0);
}

TEST(BpeTest, VocabJsonAndMergesTxtAloneEncodeAsTokenizerJson) {
  TempDir dir;
  const std::string copy =
      CopyFixture(dir, {"vocab.json", "merges.txt", "tokenizer_config.json", "config.json"});
  auto tok = LoadTokenizer(copy);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 2000);
  ExpectGoldenTokens(**tok);
}

// A directory whose tokenizer.json is all it ships (no tokenizer_config.json naming the class,
// no merges.txt) is read as the byte-level BPE it holds, not as a WordPiece vocabulary.
TEST(BpeTest, TokenizerJsonAloneIsDetectedAsByteLevelBpe) {
  TempDir dir;
  const std::string copy = CopyFixture(dir, {"tokenizer.json", "config.json"});
  auto tok = LoadTokenizer(copy);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 2000);
  ExpectGoldenTokens(**tok);
}

TEST(BpeTest, SaveAndReloadEncodesTheSame) {
  TempDir dir;
  auto tok = LoadTokenizer(FixturePath("roberta-tiny"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::string out = dir.File("saved");
  ASSERT_TRUE(MakeDirectories(out).ok());
  ASSERT_TRUE((*tok)->Save(out).ok());
  auto again = LoadTokenizer(out);
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectGoldenTokens(**again);
  EXPECT_EQ(*(*again)->TokenToId("<mask>"), *(*tok)->TokenToId("<mask>"));
}

TEST(BpeTest, LowestRankMergesFirstLeftmostOnTies) {
  // Merges: "b c" (rank 0) before "a b" (rank 1): "abc" is a + bc, not ab + c; "aaa" merges
  // the leftmost pair first.
  BpeOptions o;
  std::vector<std::pair<std::string, int32_t>> vocab = {
      {"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}, {"<mask>", 4}, {"a", 5},
      {"b", 6},   {"c", 7},     {"bc", 8},   {"ab", 9},    {"aa", 10},    {"abc", 11}};
  auto t = ByteLevelBpeTokenizer::Create(vocab, {{"b", "c"}, {"a", "b"}, {"a", "a"}}, o);
  ASSERT_TRUE(t.ok()) << t.status();
  std::vector<int32_t> ids;
  std::vector<std::string> pieces;
  ASSERT_TRUE((*t)->Tokenize("abc", InvalidUtf8::kReject, &ids, &pieces).ok());
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", "bc"}));
  pieces.clear();
  ASSERT_TRUE((*t)->Tokenize("aaa", InvalidUtf8::kReject, &ids, &pieces).ok());
  EXPECT_EQ(pieces, (std::vector<std::string>{"aa", "a"}));
  // ignore_merges: a pre-token found whole in the vocabulary is one token.
  o.ignore_merges = true;
  auto whole = ByteLevelBpeTokenizer::Create(vocab, {{"b", "c"}, {"a", "b"}}, o);
  ASSERT_TRUE(whole.ok());
  pieces.clear();
  ASSERT_TRUE((*whole)->Tokenize("abc", InvalidUtf8::kReject, &ids, &pieces).ok());
  EXPECT_EQ(pieces, (std::vector<std::string>{"abc"}));
}

TEST(BpeTest, BrokenFilesAreClearErrors) {
  TempDir dir;
  const std::string copy = CopyFixture(dir, {"vocab.json", "merges.txt", "tokenizer_config.json"});
  WriteFile(JoinPath(copy, "merges.txt"), "#version: 0.2\nĠ a\nthree parts here\n");
  auto bad = LoadTokenizer(copy);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("merges.txt:3"), absl::string_view::npos) << bad.status();

  WriteFile(JoinPath(copy, "merges.txt"), "#version: 0.2\nzz qq\n");
  bad = LoadTokenizer(copy);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'zz qq'"), absl::string_view::npos) << bad.status();

  WriteFile(JoinPath(copy, "vocab.json"), "{\"a\": -3}");
  bad = LoadTokenizer(copy);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("vocab.json"), absl::string_view::npos) << bad.status();

  // Ids are those of the entries, 0 to n-1, each once.
  WriteFile(JoinPath(copy, "merges.txt"), "#version: 0.2\n");
  WriteFile(JoinPath(copy, "vocab.json"), "{\"<s>\": 0, \"<pad>\": 9999999}");
  bad = LoadTokenizer(copy);
  EXPECT_EQ(
      bad.status().message(),
      JoinPath(copy, "vocab.json") +
          ": vocab entry '<pad>' has id 9999999, but the vocabulary has 2 entries (ids 0 to 1)");
  WriteFile(JoinPath(copy, "vocab.json"), "{\"<s>\": 0, \"<pad>\": 0}");
  bad = LoadTokenizer(copy);
  EXPECT_EQ(bad.status().message(),
            JoinPath(copy, "vocab.json") + ": vocab entries '<pad>' and '<s>' have the same id 0");

  ASSERT_TRUE(RemoveAll(JoinPath(copy, "merges.txt")).ok());
  bad = LoadTokenizer(copy);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("merges.txt"), absl::string_view::npos) << bad.status();
}

TEST(BpeTest, InvalidUtf8IsRejectedOrReplaced) {
  auto tok = LoadTokenizer(FixturePath("roberta-tiny"));
  ASSERT_TRUE(tok.ok());
  EncodeOptions o;
  auto rejected = (*tok)->Encode("ok \xff then", o);
  ASSERT_FALSE(rejected.ok());
  EXPECT_NE(rejected.status().message().find("3"), absl::string_view::npos) << rejected.status();
  o.invalid_utf8 = InvalidUtf8::kReplace;
  auto replaced = (*tok)->Encode("ok \xff then", o);
  auto expected = (*tok)->Encode("ok \xEF\xBF\xBD then", EncodeOptions());
  ASSERT_TRUE(replaced.ok() && expected.ok());
  EXPECT_EQ(replaced->input_ids, expected->input_ids);
}

}  // namespace
}  // namespace berth::text
