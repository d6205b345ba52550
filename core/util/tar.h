// Writing tar archives (ustar): what `berth import-model --from DIR` uploads and what
// GET /v1/models/{model}/export streams. Reading
// them, with every check an upload needs, is service::ExtractModelTar.
#ifndef BERTH_CORE_UTIL_TAR_H_
#define BERTH_CORE_UTIL_TAR_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace berth {

// Appends one member: a 512-byte ustar header (name and link cut at 100 bytes, mode 0644,
// checksum filled in) and `data` padded to a multiple of 512 bytes. `type` is the ustar type
// flag ('0' a regular file, '1' a hard link, '2' a symbolic link, '3' a device, ...).
void AppendTarMember(std::string* tar, absl::string_view name, absl::string_view data,
                     char type = '0', absl::string_view link = "");

// A member's 512-byte ustar header alone, and the zero bytes that pad its `size` bytes of data
// to a multiple of 512: for writing an archive as a stream, a file at a time.
std::string TarHeader(absl::string_view name, int64_t size, char type = '0',
                      absl::string_view link = "");
size_t TarPadding(int64_t size);

// Appends the end of the archive: two zero blocks.
void AppendTarEnd(std::string* tar);

}  // namespace berth

#endif  // BERTH_CORE_UTIL_TAR_H_
