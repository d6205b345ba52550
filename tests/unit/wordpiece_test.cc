// WordPiece tokenizer: golden tokens from Hugging Face's BertTokenizer, plus edge cases.
#include "core/text/wordpiece.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "core/text/tokenizer.h"
#include "tests/unit/test_util.h"

namespace berth::text {
namespace {

using berth::testing::FixturePath;
using berth::testing::ReadJsonLines;
using berth::testing::TempDir;

struct GoldenCase {
  const char* model;
  const char* file;
  TokenizerOverrides overrides;
  bool pairs;
  int max_length;
};

class GoldenTokensTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTokensTest, ReproducesEveryLineExactly) {
  const GoldenCase& c = GetParam();
  auto tok = LoadTokenizer(FixturePath(c.model), c.overrides);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto rows = ReadJsonLines(FixturePath(c.model) + "/expected/" + c.file);
  ASSERT_GE(rows.size(), 20u);
  EncodeOptions o;
  o.max_length = c.max_length;
  o.return_tokens = true;
  int mismatches = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Json& r = rows[i];
    const std::string text = r["text"];
    auto e = c.pairs ? (*tok)->EncodePair(text, r["text_pair"].get<std::string>(), o)
                     : (*tok)->Encode(text, o);
    ASSERT_TRUE(e.ok()) << e.status();
    bool same = e->input_ids == r["input_ids"].get<std::vector<int32_t>>() &&
                e->token_type_ids == r["token_type_ids"].get<std::vector<int32_t>>() &&
                e->attention_mask == r["attention_mask"].get<std::vector<int32_t>>();
    if (r.contains("tokens"))
      same = same && e->tokens == r["tokens"].get<std::vector<std::string>>();
    if (!same) {
      ++mismatches;
      ADD_FAILURE() << c.file << " line " << i + 1 << " differs: " << text.substr(0, 80);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, GoldenTokensTest,
    ::testing::Values(
        GoldenCase{"bert-tiny-uncased", "tokens.jsonl", {}, false, 128},
        GoldenCase{"bert-tiny-uncased", "tokens_cased.jsonl", {false}, false, 128},
        GoldenCase{"bert-tiny-uncased", "pairs_max24.jsonl", {}, true, 24},
        GoldenCase{"bert-tiny-multilabel", "tokens.jsonl", {}, false, 64},
        GoldenCase{"bert-tiny-multilabel", "tokens_cased.jsonl", {false}, false, 64},
        GoldenCase{"bert-tiny-multilabel", "pairs_max24.jsonl", {}, true, 24},
        GoldenCase{"distilbert-tiny", "tokens.jsonl", {}, false, 64},
        GoldenCase{"distilbert-tiny", "pairs_max24.jsonl", {}, true, 24},
        GoldenCase{"xlmr-tiny", "tokens.jsonl", {}, false, 64},
        GoldenCase{"xlmr-tiny", "pairs_max24.jsonl", {}, true, 24},
        // Byte-level BPE: 539 lines (emoji, CJK, accents, whitespace runs, special
        // tokens in text) and 120 pairs.
        GoldenCase{"roberta-tiny", "tokens.jsonl", {}, false, 128},
        GoldenCase{"roberta-tiny", "tokens_prefix_space.jsonl", {std::nullopt, true}, false, 128},
        GoldenCase{"roberta-tiny", "pairs_max24.jsonl", {}, true, 24}),
    [](const ::testing::TestParamInfo<GoldenCase>& info) {
      std::string name = std::string(info.param.model) + "_" + info.param.file;
      for (char& ch : name) {
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return name;
    });

class WordPieceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = LoadTokenizer(FixturePath("bert-tiny-uncased"));
    ASSERT_TRUE(t.ok()) << t.status();
    tok_ = std::move(*t);
  }
  std::vector<std::string> Tokens(const std::string& text, int max_length = 64) {
    EncodeOptions o;
    o.max_length = max_length;
    o.return_tokens = true;
    auto e = tok_->Encode(text, o);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? e->tokens : std::vector<std::string>{};
  }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(WordPieceTest, SplitsIntoContinuationPieces) {
  EXPECT_EQ(Tokens("unaffable"),
            (std::vector<std::string>{"[CLS]", "una", "##ffa", "##ble", "[SEP]"}));
}

TEST_F(WordPieceTest, SpecialTokensAreNeverSplitButLowercaseLookalikesAre) {
  EXPECT_EQ(Tokens("a [SEP] b"), (std::vector<std::string>{"[CLS]", "a", "[SEP]", "b", "[SEP]"}));
  auto t = Tokens("[sep]");
  EXPECT_EQ(t.front(), "[CLS]");
  EXPECT_EQ(t[1], "[");  // not a special token once lower-cased
}

TEST_F(WordPieceTest, OverlongWordIsUnknown) {
  EXPECT_EQ(Tokens(std::string(101, 'a')), (std::vector<std::string>{"[CLS]", "[UNK]", "[SEP]"}));
}

TEST_F(WordPieceTest, InvalidUtf8IsRejectedOrReplaced) {
  EncodeOptions o;
  auto e = tok_->Encode("caf\xC3", o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("UTF-8"), absl::string_view::npos);
  o.invalid_utf8 = InvalidUtf8::kReplace;
  o.return_tokens = true;
  e = tok_->Encode("caf\xC3 ok", o);
  ASSERT_TRUE(e.ok()) << e.status();
  // U+FFFD is dropped by BERT's text cleaning, as it is in HF.
  EXPECT_EQ(e->tokens, (std::vector<std::string>{"[CLS]", "caf", "ok", "[SEP]"}));
}

TEST_F(WordPieceTest, TruncatesRightByDefaultAndLeftOnRequest) {
  EncodeOptions o;
  o.max_length = 4;
  o.return_tokens = true;
  auto e = tok_->Encode("one two three four", o);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->truncated);
  EXPECT_EQ(e->num_tokens_untruncated, 6);
  EXPECT_EQ(e->tokens, (std::vector<std::string>{"[CLS]", "one", "two", "[SEP]"}));
  o.side = TruncationSide::kLeft;
  e = tok_->Encode("one two three four", o);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->tokens, (std::vector<std::string>{"[CLS]", "three", "four", "[SEP]"}));
}

TEST_F(WordPieceTest, MaxLengthBelowSpecialTokensIsAnError) {
  EncodeOptions o;
  o.max_length = 2;
  EXPECT_TRUE(tok_->Encode("x", o).ok());
  EXPECT_FALSE(tok_->EncodePair("x", "y", o).ok());
  o.max_length = 1;
  EXPECT_EQ(tok_->Encode("x", o).status().code(), absl::StatusCode::kInvalidArgument);
}

// Found by fuzz_wordpiece: with truncation off, an over-long input came back longer than
// max_length instead of being refused.
TEST_F(WordPieceTest, WithoutTruncationAnOverlongInputIsAnError) {
  EncodeOptions o;
  o.max_length = 4;
  o.truncation = false;
  EXPECT_TRUE(tok_->Encode("a b", o).ok());
  auto single = tok_->Encode("a b c", o);
  EXPECT_EQ(single.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(single.status().message().find("max_length 4"), absl::string_view::npos);
  EXPECT_EQ(tok_->EncodePair("a", "b c", o).status().code(), absl::StatusCode::kInvalidArgument);
  o.max_length = 1;  // below the special tokens: nothing fits
  EXPECT_FALSE(tok_->Encode("", o).ok());
}

TEST_F(WordPieceTest, PairLongestFirstTruncatesTheLongerSegment) {
  EncodeOptions o;
  o.max_length = 7;
  o.return_tokens = true;
  auto e = tok_->EncodePair("a b c d e", "x y", o);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->tokens, (std::vector<std::string>{"[CLS]", "a", "b", "[SEP]", "x", "y", "[SEP]"}));
  EXPECT_EQ(e->token_type_ids, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1}));
}

// The segment lengths Hugging Face tokenizers (transformers 5, and every fast tokenizer) keep
// for longest_first, measured with tokenizers 0.23 for these lengths (and checked live against
// it on SST-2 pairs by tests/reference/live_transformers_test.py): the shorter segment stays
// whole if the longer can take the rest; otherwise half each, the odd token to the second.
TEST_F(WordPieceTest, PairLongestFirstKeepsWhatHuggingFaceTokenizersKeep) {
  auto words = [](int n, const char* w) {  // n one-token words
    std::string s;
    for (int i = 0; i < n; ++i) s += std::string(i ? " " : "") + w;
    return s;
  };
  struct Case {
    int n1, n2, max_length, keep1, keep2;
  };
  for (const Case& c : {Case{12, 12, 24, 10, 11}, Case{11, 23, 24, 10, 11},
                        Case{22, 26, 24, 10, 11}, Case{5, 30, 24, 5, 16}, Case{30, 5, 24, 16, 5},
                        Case{30, 30, 25, 11, 11}, Case{3, 4, 24, 3, 4}}) {
    for (TruncationSide side : {TruncationSide::kRight, TruncationSide::kLeft}) {
      EncodeOptions o;
      o.max_length = c.max_length;
      o.side = side;
      const std::string a = words(c.n1, "a"), b = words(c.n2, "b");
      auto e = tok_->EncodePair(a, b, o);
      ASSERT_TRUE(e.ok()) << e.status();
      const auto sep = std::find(e->input_ids.begin(), e->input_ids.end(), tok_->layout().sep_id);
      const int kept1 = static_cast<int>(sep - e->input_ids.begin()) - 1;
      const int kept2 = static_cast<int>(e->input_ids.size()) - kept1 - 3;
      EXPECT_EQ(kept1, c.keep1) << c.n1 << " + " << c.n2 << " in " << c.max_length;
      EXPECT_EQ(kept2, c.keep2) << c.n1 << " + " << c.n2 << " in " << c.max_length;
      EXPECT_EQ(e->truncated, c.keep1 != c.n1 || c.keep2 != c.n2);
    }
  }
}

TEST_F(WordPieceTest, SaveThenLoadTokenizesIdentically) {
  TempDir dir;
  ASSERT_TRUE(tok_->Save(dir.path()).ok());
  auto again = LoadTokenizer(dir.path());
  ASSERT_TRUE(again.ok()) << again.status();
  auto rows = ReadJsonLines(FixturePath("bert-tiny-uncased") + "/expected/tokens.jsonl");
  EncodeOptions o;
  o.max_length = 128;
  for (const Json& r : rows) {
    auto a = tok_->Encode(r["text"].get<std::string>(), o);
    auto b = (*again)->Encode(r["text"].get<std::string>(), o);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->input_ids, b->input_ids);
  }
}

TEST(LoadTokenizerTest, ReadsVocabularyFromTokenizerJsonAlone) {
  auto vocab = WordPieceTokenizer::ReadVocabFile(FixturePath("bert-tiny-uncased") + "/vocab.txt");
  ASSERT_TRUE(vocab.ok());
  Json v = Json::object();
  for (size_t i = 0; i < vocab->size(); ++i) v[(*vocab)[i]] = i;
  Json tj = {{"model", {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"vocab", v}}},
             {"normalizer", {{"type", "BertNormalizer"}, {"lowercase", true}}}};
  TempDir dir;
  berth::testing::WriteFile(dir.File("tokenizer.json"), tj.dump());
  auto tok = LoadTokenizer(dir.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EncodeOptions o;
  auto e = (*tok)->Encode("Hello, world!", o);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->input_ids, (std::vector<int32_t>{101, 7592, 1010, 2088, 999, 102}));
}

// Found by fuzzing (tests/fuzz/regressions/tokenizer_files): a flag of the wrong type threw
// out of the loader, and a huge added-token id was narrowed to a negative one.
TEST(LoadTokenizerTest, AddedTokensOfTheWrongShapeAreErrors) {
  const Json vocab = {{"[PAD]", 0}, {"[UNK]", 1}, {"[CLS]", 2}, {"[SEP]", 3}};
  const Json cases[] = {
      Json::array({{{"id", 0}, {"content", "[PAD]"}, {"lstrip", 1}}}),
      Json::array({{{"id", int64_t{1} << 40}, {"content", "x"}}}),
  };
  for (const Json& added : cases) {
    Json tj = {{"model", {{"type", "WordPiece"}, {"vocab", vocab}}}, {"added_tokens", added}};
    TempDir dir;
    berth::testing::WriteFile(dir.File("tokenizer.json"), tj.dump());
    auto tok = LoadTokenizer(dir.path());
    ASSERT_FALSE(tok.ok()) << added.dump();
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(tok.status().message().find("tokenizer.json: added_tokens"), absl::string_view::npos)
        << tok.status();
  }
}

// An id is bounded by the vocabulary's real size (its number of entries), never by what the
// file claims: one entry with id 9,999,999 once made a ten-million-entry table.
TEST(LoadTokenizerTest, TokenizerJsonIdsAreBoundedByTheVocabularysSize) {
  struct Case {
    Json vocab, added;
    std::string error;
  };
  const Case cases[] = {
      {{{"[PAD]", 0}, {"[UNK]", 9999999}},
       Json::array(),
       "vocab entry '[UNK]' has id 9999999, but the vocabulary has 2 entries (ids 0 to 1)"},
      {{{"[PAD]", 0}, {"[UNK]", 0}},
       Json::array(),
       "vocab entries '[PAD]' and '[UNK]' have the same id 0"},
      {{{"[PAD]", 0}, {"[UNK]", 1}},
       Json::array({{{"id", 50}, {"content", "<x>"}}}),
       "added token '<x>' has id 50, past the 2 vocabulary entries and 1 added tokens"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    Json tj = {{"model", {{"type", "WordPiece"}, {"vocab", c.vocab}}}, {"added_tokens", c.added}};
    berth::testing::WriteFile(dir.File("tokenizer.json"), tj.dump());
    auto tok = LoadTokenizer(dir.path());
    ASSERT_FALSE(tok.ok()) << c.error;
    EXPECT_EQ(tok.status().message(), dir.File("tokenizer.json") + ": " + c.error);
  }
}

TEST(LoadTokenizerTest, ErrorsNameTheDirectoryOrFile) {
  auto missing = LoadTokenizer("/nonexistent/model");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/model"), absl::string_view::npos);

  TempDir dir;
  berth::testing::WriteFile(dir.File("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n");
  berth::testing::WriteFile(dir.File("tokenizer_config.json"), "{\"do_lower_case\": \"yes\"}");
  auto bad = LoadTokenizer(dir.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tokenizer_config.json"), absl::string_view::npos);
  EXPECT_NE(bad.status().message().find("do_lower_case"), absl::string_view::npos);

  berth::testing::WriteFile(dir.File("tokenizer_config.json"), "{not json");
  bad = LoadTokenizer(dir.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("invalid JSON"), absl::string_view::npos);

  berth::testing::WriteFile(dir.File("tokenizer_config.json"), "{}");
  berth::testing::WriteFile(dir.File("vocab.txt"), "");
  bad = LoadTokenizer(dir.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("vocab.txt: vocabulary is empty"), absl::string_view::npos)
      << bad.status();

  // Special tokens absent from vocab.txt are appended after it, as transformers does.
  berth::testing::WriteFile(dir.File("vocab.txt"), "hello\n");
  auto ok = LoadTokenizer(dir.path());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->vocab_size(), 6);
  EXPECT_EQ((*ok)->layout().unk_id, 1);
}

}  // namespace
}  // namespace berth::text
