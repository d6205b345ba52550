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

// The directory the fuzzed files are written to, made once per process and removed when it
// exits (libFuzzer ends a run of -runs or -max_total_time with exit(), which runs this destructor).
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = ::getenv("TMPDIR");
    std::string tmpl =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/berth-fuzz-tokdir-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) berth::fuzz::Fail("mkdtemp", tmpl);
    path_ = tmpl;
  }
  ~ScratchDir() {
    for (const char* name : kFiles) ::unlink((path_ + "/" + name).c_str());
    ::rmdir(path_.c_str());
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ScratchDir scratch;
  const std::string& dir = scratch.path();
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
