// UTF-8 decoding: valid input, each kind of ill-formed input, and the replace policy.
#include "core/text/unicode.h"

#include <gtest/gtest.h>

namespace berth::text {
namespace {

TEST(DecodeUtf8Test, DecodesAllSequenceLengths) {
  std::u32string out;
  ASSERT_TRUE(DecodeUtf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x99\x82", InvalidUtf8::kReject, &out).ok());
  EXPECT_EQ(out, (std::u32string{U'a', 0xE9, 0x20AC, 0x1F642}));
  EXPECT_EQ(EncodeUtf8(out), "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x99\x82");
}

TEST(DecodeUtf8Test, RejectsIllFormedSequencesNamingTheOffset) {
  const char* bad[] = {
      "ab\xC0\x80",        // overlong NUL
      "\xE0\x80\xAF",      // overlong 3-byte
      "\xED\xA0\x80",      // UTF-16 surrogate
      "\xF4\x90\x80\x80",  // past U+10FFFF
      "\xF5\x80\x80\x80",  // invalid lead
      "\xE2\x82",          // truncated
      "\x80",              // lone continuation
      "x\xFFy",            // never valid
  };
  for (const char* s : bad) {
    std::u32string out;
    absl::Status st = DecodeUtf8(s, InvalidUtf8::kReject, &out);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(st.message().find("offset"), absl::string_view::npos);
  }
  std::u32string out;
  absl::Status st = DecodeUtf8("ab\xC0\x80", InvalidUtf8::kReject, &out);
  EXPECT_NE(st.message().find("offset 2"), absl::string_view::npos) << st.message();
}

TEST(DecodeUtf8Test, ReplacesMaximalSubpartsLikePython) {
  std::u32string out;
  // b"a\xe2\x82b\xffc".decode("utf-8", "replace") == "a\ufffdb\ufffdc"
  ASSERT_TRUE(DecodeUtf8("a\xE2\x82"
                         "b\xFF"
                         "c",
                         InvalidUtf8::kReplace, &out)
                  .ok());
  EXPECT_EQ(out, (std::u32string{U'a', 0xFFFD, U'b', 0xFFFD, U'c'}));
  // b"\xed\xa0\x80".decode("utf-8", "replace") == "\ufffd\ufffd\ufffd"
  ASSERT_TRUE(DecodeUtf8("\xED\xA0\x80", InvalidUtf8::kReplace, &out).ok());
  EXPECT_EQ(out, (std::u32string{0xFFFD, 0xFFFD, 0xFFFD}));
}

TEST(UnicodeClassesTest, MatchBertDefinitions) {
  EXPECT_TRUE(IsBertWhitespace(U'\t'));
  EXPECT_TRUE(IsBertWhitespace(0x3000));   // ideographic space, Zs
  EXPECT_FALSE(IsBertWhitespace(0x2028));  // Zl is not BERT whitespace...
  EXPECT_TRUE(IsPythonSpace(0x2028));      // ...but Python's split() splits on it
  EXPECT_TRUE(IsBertControl(0x07));
  EXPECT_TRUE(IsBertControl(0x200D));  // ZWJ, Cf
  EXPECT_FALSE(IsBertControl(U'\n'));
  EXPECT_TRUE(IsBertPunctuation(U'$'));    // ASCII symbol counted as punctuation
  EXPECT_TRUE(IsBertPunctuation(0x2014));  // em dash, Pd
  EXPECT_FALSE(IsBertPunctuation(0x00E9));
  EXPECT_TRUE(IsCjkIdeograph(0x4E2D));
  EXPECT_FALSE(IsCjkIdeograph(0x3042));  // hiragana is not in BERT's CJK ranges
  std::u32string lower;
  AppendLower(0x130, &lower);
  EXPECT_EQ(lower, (std::u32string{U'i', 0x307}));
}

}  // namespace
}  // namespace berth::text
