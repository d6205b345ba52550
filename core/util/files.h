// File helpers: whole-file reads, atomic writes (temp + fsync + rename) and read-only mappings.
#ifndef BERTH_CORE_UTIL_FILES_H_
#define BERTH_CORE_UTIL_FILES_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace berth {

// Reads a whole file. NotFound if it does not exist; the message names the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes `contents` to `path` so that readers see either the old file or the whole new one:
// write to a temporary file in the same directory, fsync it, rename over `path`, fsync the dir.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// Like WriteFileAtomically, for content produced piecewise: `write` is called with a sink
// that appends bytes; if it returns an error the temporary file is removed.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual absl::Status Append(const void* data, size_t size) = 0;
};
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::function<absl::Status(ByteSink&)>& write);

// Fault injection for tests of failing disks: when set, every atomic write asks `fault` after
// the data went to the temporary file and before it is committed; an error aborts the write
// as a full disk or an I/O error would (the temporary file is removed, `path` untouched).
// Process-wide; nullptr turns it off.
void SetWriteFaultForTesting(std::function<absl::Status(const std::string& path)> fault);

// A read-only memory mapping of a whole file (an empty file maps to size 0, data nullptr).
class MappedFile {
 public:
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

// True if `path` names an existing regular file / directory.
bool IsRegularFile(const std::string& path);
bool IsDirectory(const std::string& path);

// Creates `path` and its parents (like mkdir -p).
absl::Status MakeDirectories(const std::string& path);

// Removes a file or a directory tree (like rm -rf); a missing path is not an error.
absl::Status RemoveAll(const std::string& path);

// Names in a directory (without "." and ".."), sorted.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& path);

// The directory of the running executable ("" if /proc/self/exe cannot be read).
std::string ExecutableDir();

// Joins two path components with exactly one '/'.
std::string JoinPath(absl::string_view a, absl::string_view b);

}  // namespace berth

#endif  // BERTH_CORE_UTIL_FILES_H_
