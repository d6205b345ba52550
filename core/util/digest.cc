// SHA-256 via OpenSSL's EVP interface.
#include "core/util/digest.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>

namespace berth {
namespace {

std::string Hex(const unsigned char* digest, unsigned int len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

// EVP calls fail only on allocation failure or a broken OpenSSL build; a wrong digest would be
// silently accepted as a content address, so stop instead.
void Check(int ok, const char* what) {
  if (ok != 1) {
    std::fprintf(stderr, "berth: OpenSSL %s failed\n", what);
    std::abort();
  }
}

}  // namespace

struct Sha256::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  Check(ctx_->md != nullptr ? 1 : 0, "EVP_MD_CTX_new");
  Check(EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr), "EVP_DigestInit_ex");
}

Sha256::~Sha256() = default;

void Sha256::Update(const void* data, size_t size) {
  Check(EVP_DigestUpdate(ctx_->md, data, size), "EVP_DigestUpdate");
}

std::string Sha256::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  Check(EVP_DigestFinal_ex(ctx_->md, digest, &len), "EVP_DigestFinal_ex");
  return Hex(digest, len);
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  Check(EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr), "EVP_Digest");
  return Hex(digest, len);
}

}  // namespace berth
