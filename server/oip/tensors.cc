#include "server/oip/tensors.h"

#include "absl/strings/str_cat.h"

namespace berth::server::oip {
namespace {

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

}  // namespace

absl::StatusOr<int64_t> ElementCount(const std::vector<int64_t>& shape, absl::string_view field) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0 || d > kMaxElements)
      return Bad(field, absl::StrCat("sizes must be in [0, ", kMaxElements, "]"));
    count *= d;
    if (count > kMaxElements) return Bad(field, "too many elements");
  }
  return count;
}

std::string EncodeBytes(const std::vector<std::string>& elements) {
  std::string out;
  for (const std::string& e : elements) {
    const uint32_t n = static_cast<uint32_t>(e.size());
    const char le[4] = {static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
                        static_cast<char>((n >> 16) & 0xff), static_cast<char>((n >> 24) & 0xff)};
    out.append(le, 4);
    out.append(e);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeBytes(absl::string_view data, int64_t count,
                                                     absl::string_view field) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < data.size() && static_cast<int64_t>(out.size()) <= count) {
    if (data.size() - at < 4)
      return Bad(field, "binary BYTES data ends inside an element's length");
    const auto* p = reinterpret_cast<const unsigned char*>(data.data() + at);
    const uint64_t n =
        uint64_t{p[0]} | uint64_t{p[1]} << 8 | uint64_t{p[2]} << 16 | uint64_t{p[3]} << 24;
    at += 4;
    if (n > data.size() - at)
      return Bad(field, "a binary BYTES element is longer than the data left");
    out.emplace_back(data.substr(at, n));
    at += n;
  }
  if (static_cast<int64_t>(out.size()) != count || at != data.size()) {
    return Bad(field, absl::StrCat("the binary data holds ",
                                   at == data.size() ? absl::StrCat(out.size()) : "more",
                                   " elements, the shape says ", count));
  }
  return out;
}

}  // namespace berth::server::oip
