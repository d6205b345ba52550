// libFuzzer target: loading a tokenizer from a model directory whose files are hostile.
// Input: one byte choosing the file (tokenizer_config.json, special_tokens_map.json,
// tokenizer.json, vocab.txt, config.json), then its contents. The other files are the
// bert-tiny-uncased fixture's with a 13-token vocab.txt (with tokenizer.json, vocab.txt is left out
// so that tokenizer.json is read).
// A tokenizer that loads must encode a fixed sentence within its own invariants.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/text/tokenizer.h"
#include "core/util/files.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

const char* const kFiles[] = {"tokenizer_config.json", "special_tokens_map.json", "tokenizer.json",
                              "vocab.txt", "config.json"};

// The fixture's files, but a small vocabulary: loading 30k lines per input would make the
// target ~100 times slower.
std::string Default(const std::string& name) {
  if (name == "vocab.txt") {
    return "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n,\n!\n##s\ncafe\nsecond\nsegment\n";
  }
  auto s = berth::ReadFileToString(std::string(BERTH_FUZZ_FIXTURES "/bert-tiny-uncased/") + name);
  if (!s.ok()) berth::fuzz::Fail("read fixture", name);
  return *s;
}

void Write(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  if (!out) berth::fuzz::Fail("write", path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/berth-fuzz-tokdir-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) berth::fuzz::Fail("mkdtemp");
    return std::string(tmpl);
  }();
  if (size == 0) return 0;
  const int which = data[0] % 5;
  const std::string contents(reinterpret_cast<const char*>(data + 1), size - 1);
  for (int i = 0; i < 5; ++i) {
    const std::string path = dir + "/" + kFiles[i];
    if (i == which) {
      Write(path, contents);
    } else if (i == 2 || (i == 3 && which == 2)) {
      ::unlink(path.c_str());  // tokenizer.json only when fuzzed; then no vocab.txt
    } else {
      Write(path, Default(kFiles[i]));
    }
  }
  auto tok = berth::text::LoadTokenizer(dir);
  if (!tok.ok()) {
    berth::fuzz::CheckError(tok.status());
    return 0;
  }
  BERTH_FUZZ_CHECK((*tok)->vocab_size() > 0, "empty vocabulary");
  berth::fuzz::EncodeAndCheck(**tok, 0x08, "Hello, World! caf\xc3\xa9\tsecond segment");
  return 0;
}
