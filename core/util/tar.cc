// ustar headers: octal fields, the checksum over the header with its own field as spaces.
#include "core/util/tar.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"

namespace berth {

std::string TarHeader(absl::string_view name, int64_t size, char type, absl::string_view link) {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
  std::memcpy(&h[100], "0000644", 7);
  std::memcpy(&h[108], "0000000", 7);
  std::memcpy(&h[116], "0000000", 7);
  const std::string octal_size = absl::StrFormat("%011o", size);
  std::memcpy(&h[124], octal_size.data(), 11);
  std::memcpy(&h[136], "00000000000", 11);
  h[156] = type;
  std::memcpy(&h[157], link.data(), std::min<size_t>(link.size(), 100));
  std::memcpy(&h[257],
              "ustar\0"
              "00",
              8);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  const std::string checksum = absl::StrFormat("%06o", sum);
  std::memcpy(&h[148], checksum.data(), 6);
  h[154] = '\0';
  return h;
}

size_t TarPadding(int64_t size) { return static_cast<size_t>((512 - size % 512) % 512); }

void AppendTarMember(std::string* tar, absl::string_view name, absl::string_view data, char type,
                     absl::string_view link) {
  tar->append(TarHeader(name, static_cast<int64_t>(data.size()), type, link));
  tar->append(data.data(), data.size());
  tar->append(TarPadding(static_cast<int64_t>(data.size())), '\0');
}

void AppendTarEnd(std::string* tar) { tar->append(1024, '\0'); }

}  // namespace berth
