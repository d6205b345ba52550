// XLM-RoBERTa's tokenizer (HF XLMRobertaTokenizer, slow): a SentencePiece model with fairseq's
// id layout — <s>=0, <pad>=1, </s>=2, <unk>=3, SentencePiece ids shifted by one, <mask> last —
// and RoBERTa framing (<s> A </s>, <s> A </s></s> B </s>, all type ids 0). SentencePiece runs
// in libberth_sentencepiece.so, loaded with dlopen (see sp_module/sp_module.h).
#ifndef BERTH_CORE_TEXT_SENTENCEPIECE_H_
#define BERTH_CORE_TEXT_SENTENCEPIECE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/text/special_tokens.h"
#include "core/text/tokenizer.h"
#include "core/text/wordpiece.h"

namespace berth::text {

struct SentencePieceOptions {
  int model_max_length = 512;
  TruncationSide truncation_side = TruncationSide::kRight;
  std::string bos_token = "<s>", pad_token = "<pad>", eos_token = "</s>", unk_token = "<unk>",
              mask_token = "<mask>";
  std::vector<AddedToken> added_tokens;  // from added_tokens_decoder: strip flags of the specials
};

class SentencePieceTokenizer : public Tokenizer {
 public:
  // `model_bytes`: the contents of sentencepiece.bpe.model.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Create(
      std::string model_bytes, SentencePieceOptions options);
  ~SentencePieceTokenizer() override;

  absl::Status Tokenize(absl::string_view text, InvalidUtf8 invalid_utf8, std::vector<int32_t>* ids,
                        std::vector<std::string>* pieces) const override;
  const SpecialTokenLayout& layout() const override { return layout_; }
  int model_max_length() const override { return options_.model_max_length; }
  TruncationSide truncation_side() const override { return options_.truncation_side; }
  int32_t vocab_size() const override { return piece_count_ + 2; }  // + fairseq's extra + <mask>
  std::string IdToToken(int32_t id) const override;
  std::optional<int32_t> TokenToId(absl::string_view token) const override;
  absl::Status Save(const std::string& dir) const override;
  bool IsSpecialId(int32_t id) const override;

 protected:
  // The Metaspace decoder: "▁" is a space, except in the first token, where it is dropped.
  std::string DecodeTokens(const std::vector<std::string>& tokens) const override;

 private:
  SentencePieceTokenizer() = default;
  int32_t PieceId(absl::string_view piece) const;  // fairseq id of a SentencePiece piece
  absl::Status EncodeChunk(absl::string_view chunk, std::vector<int32_t>* ids,
                           std::vector<std::string>* pieces) const;

  SentencePieceOptions options_;
  std::string model_bytes_;
  void* model_ = nullptr;
  int32_t piece_count_ = 0;
  SpecialTokenLayout layout_;
  std::vector<SpecialToken> specials_;  // longest first
};

}  // namespace berth::text

#endif  // BERTH_CORE_TEXT_SENTENCEPIECE_H_
