// Splitting text around special (added) tokens before a model's tokenizer sees it, as Hugging
// Face's added-vocabulary matching does: leftmost-longest matches, and a token's lstrip/rstrip
// swallow the whitespace beside it.
#ifndef BERTH_CORE_TEXT_SPECIAL_TOKENS_H_
#define BERTH_CORE_TEXT_SPECIAL_TOKENS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/text/unicode.h"
#include "core/util/json.h"

namespace berth::text {

struct SpecialToken {
  std::string content;
  int32_t id = -1;
  bool lstrip = false;  // swallow whitespace on its left
  bool rstrip = false;  // swallow whitespace on its right
};

// One piece of split text: plain text for the model's tokenizer, or one special token.
struct TextPart {
  std::string text;
  const SpecialToken* special = nullptr;  // points into the list given to SplitOnSpecialTokens
};

// Sorts `tokens` longest first (stable), the order SplitOnSpecialTokens needs.
void SortLongestFirst(std::vector<SpecialToken>* tokens);

// Splits valid UTF-8 `text` around `tokens` (sorted longest first). Plain parts may be empty;
// whitespace is Python's str.isspace().
std::vector<TextPart> SplitOnSpecialTokens(const std::string& text,
                                           const std::vector<SpecialToken>& tokens);

// A tokenizer's Tokenize around its special tokens: `text` is checked as UTF-8 by `policy`,
// each special token appends its id (and content to `pieces`, if not null), each non-empty plain
// part goes to `encode`, which appends the model's ids and pieces.
absl::Status TokenizeAroundSpecialTokens(
    absl::string_view text, InvalidUtf8 policy, const std::vector<SpecialToken>& tokens,
    std::vector<int32_t>* ids, std::vector<std::string>* pieces,
    const std::function<absl::Status(const std::string& plain)>& encode);

// tokenizer_config.json's "added_tokens_decoder" for `tokens` (all special, not normalised).
Json AddedTokensDecoder(const std::vector<SpecialToken>& tokens);

}  // namespace berth::text

#endif  // BERTH_CORE_TEXT_SPECIAL_TOKENS_H_
