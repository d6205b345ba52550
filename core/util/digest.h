// SHA-256 through OpenSSL, for content addressing and download verification. Its own small
// library (berth::digest) so that the thin client uses the same function without core.
#ifndef BERTH_CORE_UTIL_DIGEST_H_
#define BERTH_CORE_UTIL_DIGEST_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace berth {

// Incremental SHA-256 for data that arrives in pieces (a file read in blocks).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  void Update(absl::string_view s) { Update(s.data(), s.size()); }
  // Lower-case hex digest; the object must not be updated afterwards.
  std::string HexDigest();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

}  // namespace berth

#endif  // BERTH_CORE_UTIL_DIGEST_H_
