// RoBERTa's tokenizer (HF RobertaTokenizer / tokenizers' ByteLevel BPE): special tokens split out
// first; each remaining piece is pre-tokenized by the GPT-2 regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (after a space is prepended when add_prefix_space is set and the piece does not start with one),
// each pre-token's UTF-8 bytes are mapped to GPT-2's printable byte alphabet, and BPE merges the
// pair of lowest rank (leftmost first) until none applies. Framing is RoBERTa's:
// <s> A </s> and <s> A </s></s> B </s>, all type ids 0.
#ifndef BERTH_CORE_TEXT_BPE_H_
#define BERTH_CORE_TEXT_BPE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/text/special_tokens.h"
#include "core/text/tokenizer.h"
#include "core/text/wordpiece.h"

namespace berth::text {

struct BpeOptions {
  int model_max_length = 512;
  TruncationSide truncation_side = TruncationSide::kRight;
  bool add_prefix_space = false;
  bool ignore_merges = false;  // tokenizers' BPE flag: a pre-token in the vocabulary is one token
  std::string bos_token = "<s>", eos_token = "</s>", unk_token = "<unk>", pad_token = "<pad>",
              mask_token = "<mask>";
  // Added tokens (tokenizer.json's added_tokens, tokenizer_config.json's added_tokens_decoder).
  std::vector<AddedToken> added_tokens;
};

class ByteLevelBpeTokenizer : public Tokenizer {
 public:
  // `vocab`: token -> id (vocab.json); `merges`: pairs in rank order (merges.txt).
  static absl::StatusOr<std::unique_ptr<ByteLevelBpeTokenizer>> Create(
      std::vector<std::pair<std::string, int32_t>> vocab,
      std::vector<std::pair<std::string, std::string>> merges, BpeOptions options);

  absl::Status Tokenize(absl::string_view text, InvalidUtf8 invalid_utf8, std::vector<int32_t>* ids,
                        std::vector<std::string>* pieces) const override;
  const SpecialTokenLayout& layout() const override { return layout_; }
  int model_max_length() const override { return options_.model_max_length; }
  TruncationSide truncation_side() const override { return options_.truncation_side; }
  int32_t vocab_size() const override { return static_cast<int32_t>(id_to_token_.size()); }
  std::string IdToToken(int32_t id) const override;
  std::optional<int32_t> TokenToId(absl::string_view token) const override;
  // Writes vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json.
  absl::Status Save(const std::string& dir) const override;

  bool IsSpecialId(int32_t id) const override;

  // The pre-tokens of one piece of text (no special tokens), as UTF-8 substrings.
  static std::vector<std::string> PreTokenize(std::u32string_view text);

 protected:
  // The ByteLevel decoder: the tokens' characters back to bytes (GPT-2's table), read as UTF-8
  // with U+FFFD for what is not.
  std::string DecodeTokens(const std::vector<std::string>& tokens) const override;

 private:
  ByteLevelBpeTokenizer() = default;
  // Appends the BPE ids of one pre-token.
  void EncodeWord(absl::string_view word, std::vector<int32_t>* ids) const;

  BpeOptions options_;
  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<std::pair<std::string, std::string>> merges_;
  // (left id, right id) -> (rank, merged id).
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merge_ranks_;
  int32_t byte_ids_[256];               // id of each byte's one-character token, -1 if none
  std::string byte_chars_[256];         // GPT-2's printable character for each byte, as UTF-8
  std::vector<SpecialToken> specials_;  // longest first
  SpecialTokenLayout layout_;
};

}  // namespace berth::text

#endif  // BERTH_CORE_TEXT_BPE_H_
