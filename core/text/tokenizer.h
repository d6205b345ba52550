// The tokenizer interface shared by every model family: text (or a text pair) in, model inputs out.
#ifndef BERTH_CORE_TEXT_TOKENIZER_H_
#define BERTH_CORE_TEXT_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/text/unicode.h"

namespace berth::text {

// Model inputs for one example, in Hugging Face's layout.
struct Encoding {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> token_type_ids;
  std::vector<int32_t> attention_mask;
  std::vector<std::string> tokens;     // filled only when EncodeOptions::return_tokens
  bool truncated = false;              // true if any token was dropped to fit max_length
  int32_t num_tokens_untruncated = 0;  // length the encoding would have had without truncation
};

enum class TruncationSide { kRight, kLeft };

struct EncodeOptions {
  // Total length including special tokens; 0 means the tokenizer's model_max_length.
  int max_length = 0;
  bool truncation = true;  // when false, an over-long input is an error
  // Unset: the tokenizer's own truncation_side (tokenizer_config.json, default right).
  std::optional<TruncationSide> side;
  bool return_tokens = false;
  InvalidUtf8 invalid_utf8 = InvalidUtf8::kReject;
};

// How special tokens frame one or two segments: BERT is `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]`
// with type ids 0/1; RoBERTa-style models are `<s> A </s>` / `<s> A </s></s> B </s>`, all type 0.
struct SpecialTokenLayout {
  int32_t cls_id = -1;
  int32_t sep_id = -1;
  int32_t pad_id = 0;
  int32_t unk_id = -1;
  int separators_between_pair = 1;
  int32_t second_segment_type_id = 1;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Splits text into vocabulary ids (no special tokens). `pieces`, if not null, gets the tokens.
  virtual absl::Status Tokenize(absl::string_view text, InvalidUtf8 invalid_utf8,
                                std::vector<int32_t>* ids,
                                std::vector<std::string>* pieces) const = 0;

  virtual const SpecialTokenLayout& layout() const = 0;
  virtual int model_max_length() const = 0;
  virtual TruncationSide truncation_side() const = 0;
  virtual int32_t vocab_size() const = 0;
  // The token string for an id ("" if out of range).
  virtual std::string IdToToken(int32_t id) const = 0;
  virtual std::optional<int32_t> TokenToId(absl::string_view token) const = 0;
  // Writes the files Hugging Face needs to load this tokenizer into `dir` (atomically each).
  virtual absl::Status Save(const std::string& dir) const = 0;

  // Encodes one text with special tokens, truncating to options.max_length.
  absl::StatusOr<Encoding> Encode(absl::string_view text, const EncodeOptions& options) const;
  // Encodes a pair with `longest_first` truncation (HF's default for pairs).
  absl::StatusOr<Encoding> EncodePair(absl::string_view text, absl::string_view text_pair,
                                      const EncodeOptions& options) const;
  // Adds special tokens around already-tokenized segments (no truncation).
  Encoding BuildInputs(const std::vector<int32_t>& a, const std::vector<int32_t>* b,
                       bool return_tokens) const;
  // Number of special tokens added around one (pair=false) or two segments.
  int NumSpecialTokens(bool pair) const;

  // Ids back to text, as Hugging Face's tokenizers decode them (each family's decoder:
  // WordPiece's "##" joins, byte-level BPE's bytes, SentencePiece's "▁" as spaces), then
  // transformers' clean-up of spaces before punctuation when tokenizer_config.json asks for it
  // (clean_up_tokenization_spaces). skip_special_tokens leaves the special tokens out. An id
  // outside the vocabulary is an error naming its index.
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids,
                                     bool skip_special_tokens) const;
  // Whether `id` is one of the tokenizer's special tokens ([CLS], <s>, <mask>, ...).
  virtual bool IsSpecialId(int32_t id) const = 0;
  void set_clean_up_tokenization_spaces(bool on) { clean_up_tokenization_spaces_ = on; }

 protected:
  // The decoder: the text of `tokens` (already checked, special ones left out as asked).
  virtual std::string DecodeTokens(const std::vector<std::string>& tokens) const = 0;

 private:
  bool clean_up_tokenization_spaces_ = false;  // transformers 5's default
};

// No space before . ? ! , and English contractions: transformers' clean_up_tokenization, or
// with `wordpiece_decoder` the cleanup of tokenizers' WordPiece decoder (which also turns
// " do not" into " don't").
std::string CleanUpTokenizationSpaces(std::string s, bool wordpiece_decoder);

// Settings a caller may force over what the model directory says.
struct TokenizerOverrides {
  std::optional<bool> do_lower_case;     // WordPiece
  std::optional<bool> add_prefix_space;  // byte-level BPE
};

// Loads the tokenizer a Hugging Face model directory describes (vocab.txt or tokenizer.json,
// tokenizer_config.json, special_tokens_map.json). Errors name the file and the problem.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_dir,
                                                         const TokenizerOverrides& overrides = {});

}  // namespace berth::text

#endif  // BERTH_CORE_TEXT_TOKENIZER_H_
