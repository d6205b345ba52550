// WordPiece tokenizer with the exact behaviour of Hugging Face's (slow) BertTokenizer.
#ifndef BERTH_CORE_TEXT_WORDPIECE_H_
#define BERTH_CORE_TEXT_WORDPIECE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/text/tokenizer.h"

namespace berth::text {

// A token that is never split (special tokens and tokens added to the vocabulary).
struct AddedToken {
  std::string content;
  std::optional<int32_t> id;  // unset: looked up in the vocabulary, or appended after it
  bool lstrip = false;        // swallow whitespace on its left
  bool rstrip = false;        // swallow whitespace on its right
  bool special = true;
};

struct WordPieceOptions {
  bool do_lower_case = true;
  std::optional<bool> strip_accents;  // unset: follows do_lower_case
  bool tokenize_chinese_chars = true;
  bool do_basic_tokenize = true;
  int max_input_chars_per_word = 100;
  int model_max_length = 512;
  TruncationSide truncation_side = TruncationSide::kRight;
  std::string unk_token = "[UNK]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string cls_token = "[CLS]";
  std::string mask_token = "[MASK]";
  std::vector<AddedToken> added_tokens;  // extra no-split tokens, with flags
  // BertTokenizer gives a pair's second segment type id 1; DistilBertTokenizer (whose model
  // has no token types) gives 0.
  std::string tokenizer_class = "BertTokenizer";
};

class WordPieceTokenizer : public Tokenizer {
 public:
  // `vocab[i]` is the token with id i (the lines of vocab.txt).
  static absl::StatusOr<std::unique_ptr<WordPieceTokenizer>> Create(std::vector<std::string> vocab,
                                                                    WordPieceOptions options);
  // Reads vocab.txt: one token per line, id = line number (as HF's load_vocab).
  static absl::StatusOr<std::vector<std::string>> ReadVocabFile(const std::string& path);

  absl::Status Tokenize(absl::string_view text, InvalidUtf8 invalid_utf8, std::vector<int32_t>* ids,
                        std::vector<std::string>* pieces) const override;
  const SpecialTokenLayout& layout() const override { return layout_; }
  int model_max_length() const override { return options_.model_max_length; }
  TruncationSide truncation_side() const override { return options_.truncation_side; }
  int32_t vocab_size() const override { return static_cast<int32_t>(id_to_token_.size()); }
  std::string IdToToken(int32_t id) const override;
  std::optional<int32_t> TokenToId(absl::string_view token) const override;
  // vocab.txt, tokenizer_config.json (BertTokenizer) and special_tokens_map.json.
  absl::Status Save(const std::string& dir) const override;

  bool IsSpecialId(int32_t id) const override;

  const WordPieceOptions& options() const { return options_; }
  const std::vector<std::string>& vocab() const { return id_to_token_; }

 protected:
  // tokenizers' WordPiece decoder: "##x" joins its word, other tokens follow a space, and each
  // token gets its cleanup (no space before . ? ! , and the contractions).
  std::string DecodeTokens(const std::vector<std::string>& tokens) const override;

 private:
  struct NoSplitToken {
    std::u32string content;
    int32_t id;
    bool lstrip, rstrip, special;
  };

  explicit WordPieceTokenizer(WordPieceOptions options) : options_(std::move(options)) {}

  // Longest no-split token starting at text[pos], or -1.
  int MatchNoSplit(std::u32string_view text, size_t pos) const;
  // BasicTokenizer + WordPiece over text that holds no no-split token.
  void TokenizeSegment(std::u32string_view segment, std::vector<int32_t>* ids) const;
  void WordPiece(std::u32string_view word, std::vector<int32_t>* ids) const;

  WordPieceOptions options_;
  SpecialTokenLayout layout_;
  std::vector<std::string> id_to_token_;
  size_t base_vocab_size_ = 0;  // entries read from vocab.txt; added tokens come after
  absl::flat_hash_map<std::string, int32_t> token_to_id_;
  absl::flat_hash_map<std::string, int32_t> word_start_;    // tokens without "##"
  absl::flat_hash_map<std::string, int32_t> continuation_;  // "##x" stored as "x"
  size_t max_word_start_bytes_ = 0;
  size_t max_continuation_bytes_ = 0;
  std::vector<NoSplitToken> no_split_;
  bool strip_accents_ = true;
};

}  // namespace berth::text

#endif  // BERTH_CORE_TEXT_WORDPIECE_H_
