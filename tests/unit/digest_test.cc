// SHA-256 against published vectors: FIPS 180-2 appendix B.1 ("abc"), B.2 (448 bits) and B.3
// (a million 'a's), and the zero-length message of NIST CAVP's SHA256ShortMsg.rsp.
#include "core/util/digest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace berth {
namespace {

TEST(Sha256Test, FipsVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

// A million 'a's fed in uneven pieces: the streaming form agrees with the one-shot form and
// with the published digest, whatever the block boundaries.
TEST(Sha256Test, StreamingMatchesOneShot) {
  const std::string million(1000000, 'a');
  Sha256 h;
  size_t off = 0;
  for (size_t piece = 1; off < million.size(); piece = piece * 3 + 1) {
    const size_t n = std::min(piece, million.size() - off);
    h.Update(million.data() + off, n);
    off += n;
  }
  const std::string expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  EXPECT_EQ(h.HexDigest(), expected);
  EXPECT_EQ(Sha256Hex(million), expected);
}

}  // namespace
}  // namespace berth
