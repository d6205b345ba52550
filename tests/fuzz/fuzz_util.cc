#include "tests/fuzz/fuzz_util.h"

#include "absl/strings/str_cat.h"

namespace berth::fuzz {

void EncodeAndCheck(const text::Tokenizer& tok, uint8_t mode, absl::string_view text) {
  text::EncodeOptions o;
  o.max_length = mode & 0x1f;  // 0: the tokenizer's model_max_length
  o.truncation = (mode & 0x20) == 0;
  if (mode & 0x40) o.side = text::TruncationSide::kLeft;
  o.invalid_utf8 = (mode & 0x80) ? text::InvalidUtf8::kReplace : text::InvalidUtf8::kReject;
  o.return_tokens = true;

  const size_t tab = text.find('\t');
  const bool pair = tab != absl::string_view::npos;
  absl::StatusOr<text::Encoding> enc =
      pair ? tok.EncodePair(text.substr(0, tab), text.substr(tab + 1), o) : tok.Encode(text, o);
  if (!enc.ok()) {
    CheckError(enc.status());
    return;
  }
  const size_t n = enc->input_ids.size();
  BERTH_FUZZ_CHECK(
      enc->token_type_ids.size() == n && enc->attention_mask.size() == n && enc->tokens.size() == n,
      absl::StrCat(n));
  const size_t specials = static_cast<size_t>(tok.NumSpecialTokens(pair));
  BERTH_FUZZ_CHECK(n >= specials, absl::StrCat(n, " < ", specials));
  const int limit = o.max_length > 0 ? o.max_length : tok.model_max_length();
  BERTH_FUZZ_CHECK(n <= static_cast<size_t>(std::max<int>(limit, static_cast<int>(specials))),
                   absl::StrCat(n, " > ", limit));
  BERTH_FUZZ_CHECK(enc->num_tokens_untruncated >= static_cast<int32_t>(n), "untruncated count");
  BERTH_FUZZ_CHECK(enc->truncated == (enc->num_tokens_untruncated > static_cast<int32_t>(n)),
                   "truncated flag");
  for (size_t i = 0; i < n; ++i) {
    BERTH_FUZZ_CHECK(enc->input_ids[i] >= 0 && enc->input_ids[i] < tok.vocab_size(),
                     absl::StrCat("id ", enc->input_ids[i], " at ", i));
    BERTH_FUZZ_CHECK(enc->attention_mask[i] == 1, "mask");
    BERTH_FUZZ_CHECK(enc->token_type_ids[i] == 0 || enc->token_type_ids[i] == 1, "type id");
  }
  BERTH_FUZZ_CHECK(n == 0 || enc->input_ids.front() == tok.layout().cls_id, "first token");
  BERTH_FUZZ_CHECK(n == 0 || enc->input_ids.back() == tok.layout().sep_id, "last token");
}

}  // namespace berth::fuzz
