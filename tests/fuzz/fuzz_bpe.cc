// libFuzzer target: RoBERTa's byte-level BPE (the pre-tokenizer regex, the byte alphabet, merges,
// special tokens and truncation) on arbitrary bytes.
// Input: one option byte, then the text; a '\t' splits it into a pair.
#include <cstdint>
#include <memory>

#include "core/text/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<berth::text::Tokenizer> tok = berth::fuzz::MustOk(
      berth::text::LoadTokenizer(BERTH_FUZZ_FIXTURES "/roberta-tiny"), "load roberta-tiny");
  if (size == 0) return 0;
  berth::fuzz::EncodeAndCheck(*tok, data[0], berth::fuzz::AsText(data + 1, size - 1));
  return 0;
}
