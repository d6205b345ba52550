// SHA-256 (FIPS 180-4), for content addressing and download verification.
#ifndef BERTH_CORE_UTIL_SHA256_H_
#define BERTH_CORE_UTIL_SHA256_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace berth {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  void Update(absl::string_view s) { Update(s.data(), s.size()); }
  // Lower-case hex digest; the object must not be updated afterwards.
  std::string HexDigest();

 private:
  void Block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string Sha256Hex(absl::string_view data);

}  // namespace berth

#endif  // BERTH_CORE_UTIL_SHA256_H_
