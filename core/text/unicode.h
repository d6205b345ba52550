// UTF-8 decoding/encoding and the Unicode character classes BERT's tokenizer uses (utf8proc data).
#ifndef BERTH_CORE_TEXT_UNICODE_H_
#define BERTH_CORE_TEXT_UNICODE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace berth::text {

enum class InvalidUtf8 {
  kReject,   // return InvalidArgument naming the byte offset
  kReplace,  // each maximal invalid subsequence becomes U+FFFD (Python's errors="replace")
};

// Decodes UTF-8 into code points, rejecting overlong forms, surrogates and values past U+10FFFF.
absl::Status DecodeUtf8(absl::string_view in, InvalidUtf8 policy, std::u32string* out);

// Appends the UTF-8 encoding of `cp` to `out`.
void AppendUtf8(char32_t cp, std::string* out);
std::string EncodeUtf8(std::u32string_view in);

// Character classes with the exact meaning of HF's tokenization_utils helpers.
bool IsBertWhitespace(char32_t cp);   // \t \n \r space, or category Zs
bool IsBertControl(char32_t cp);      // category C* except \t \n \r
bool IsBertPunctuation(char32_t cp);  // ASCII punctuation ranges or category P*
bool IsCjkIdeograph(char32_t cp);     // the CJK Unified Ideograph blocks BERT pads with spaces
bool IsNonspacingMark(char32_t cp);   // category Mn
// Python's str.isspace() for code points that survive BERT's text cleaning.
bool IsPythonSpace(char32_t cp);

// The classes of the GPT-2/RoBERTa pre-tokenizer regex as Oniguruma (HF tokenizers) reads them.
bool IsUnicodeLetter(char32_t cp);      // \p{L}: categories Lu Ll Lt Lm Lo
bool IsUnicodeNumber(char32_t cp);      // \p{N}: categories Nd Nl No
bool IsUnicodeWhiteSpace(char32_t cp);  // \s: the White_Space property

// Python's str.lower() on one code point (full mapping: U+0130 becomes "i\u0307").
void AppendLower(char32_t cp, std::u32string* out);

// Unicode normalisation forms (canonical). Returns the input unchanged when it is ASCII.
std::u32string NormalizeNfc(std::u32string_view in);
std::u32string NormalizeNfd(std::u32string_view in);

}  // namespace berth::text

#endif  // BERTH_CORE_TEXT_UNICODE_H_
