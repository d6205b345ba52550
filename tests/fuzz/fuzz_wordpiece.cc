// libFuzzer target: the WordPiece tokenizer (BERT, DistilBERT) on arbitrary bytes.
// Input: one option byte (max length, truncation, side, invalid UTF-8 policy), then the text;
// a '\t' splits it into a pair. The tokenizer is the bert-tiny-uncased fixture's.
#include <cstdint>
#include <memory>

#include "core/text/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<berth::text::Tokenizer> tok =
      berth::fuzz::MustOk(berth::text::LoadTokenizer(BERTH_FUZZ_FIXTURES "/bert-tiny-uncased"),
                          "load bert-tiny-uncased");
  if (size == 0) return 0;
  berth::fuzz::EncodeAndCheck(*tok, data[0], berth::fuzz::AsText(data + 1, size - 1));
  return 0;
}
