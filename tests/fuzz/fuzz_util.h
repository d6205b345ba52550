// Shared helpers for the libFuzzer targets in tests/fuzz (see tests/fuzz/README.md).
#ifndef BERTH_TESTS_FUZZ_FUZZ_UTIL_H_
#define BERTH_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/text/tokenizer.h"

namespace berth::fuzz {

// A broken invariant: print it and abort, which libFuzzer and the replay driver report as a crash.
[[noreturn]] inline void Fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz invariant broken: %s %s\n", what, detail.c_str());
  std::abort();
}
#define BERTH_FUZZ_CHECK(cond, detail)                 \
  do {                                                 \
    if (!(cond)) ::berth::fuzz::Fail(#cond, (detail)); \
  } while (0)

// Setup that must work (fixtures shipped with the tests); anything else is a harness bug.
template <typename T>
T MustOk(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Fail(what, std::string(v.status().message()));
  return *std::move(v);
}

// Errors are fine (hostile input), but they must say something.
inline void CheckError(const absl::Status& s) {
  BERTH_FUZZ_CHECK(!s.message().empty(), std::string(absl::StatusCodeToString(s.code())));
}

// Bytes → text; the first byte is the caller's option byte.
inline absl::string_view AsText(const uint8_t* data, size_t size) {
  return absl::string_view(reinterpret_cast<const char*>(data), size);
}

// Encodes (or pair-encodes, split at the first '\t') with options drawn from `mode`, and checks
// the invariants every encoding must keep.
void EncodeAndCheck(const text::Tokenizer& tok, uint8_t mode, absl::string_view text);

}  // namespace berth::fuzz

#endif  // BERTH_TESTS_FUZZ_FUZZ_UTIL_H_
