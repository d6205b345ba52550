// The safetensors format: a validating, memory-mapped reader and an atomic writer (no torch here).
#ifndef BERTH_CORE_MODEL_SAFETENSORS_H_
#define BERTH_CORE_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/util/files.h"

namespace berth {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

size_t DTypeSize(DType dtype);
absl::string_view DTypeName(DType dtype);  // "F32", "BF16", ...
std::optional<DType> ParseDType(absl::string_view name);

// One tensor inside a safetensors file. `data` points into the mapping and stays valid as long
// as the SafetensorsFile lives; it is not necessarily aligned.
struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;
  size_t nbytes;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps and validates a file: header size within the file, JSON header, known dtypes,
  // non-negative shapes whose byte size matches the offsets, offsets inside the data area,
  // no overlaps and no holes. Errors name the file, the tensor and the problem.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // The same validation over bytes held in memory (`what` names them in errors).
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> FromBytes(std::string bytes,
                                                                    std::string what);

  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* Find(absl::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& what() const { return what_; }
  // What keeps the mapped file's bytes alive, for tensors that alias them; null for bytes held
  // in memory, or a mapping that could not be made writable. The mapping is private: a write
  // to an aliasing tensor copies that page for this process and never reaches the file.
  std::shared_ptr<const void> mapping() const {
    return writable_ ? mapping_ : std::shared_ptr<const MappedFile>();
  }

 private:
  SafetensorsFile() = default;
  absl::Status Parse(const uint8_t* data, size_t size);

  std::string what_;
  std::shared_ptr<const MappedFile> mapping_;
  bool writable_ = false;
  std::string bytes_;
  std::vector<TensorView> tensors_;  // in file order
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: `data` holds `nbytes` little-endian bytes of `dtype` in row-major order.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};

// Writes tensors (sorted by name, as the reference implementation does) atomically to `path`.
absl::Status WriteSafetensors(const std::string& path, std::vector<TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata);
// The same file's bytes, in memory.
absl::StatusOr<std::string> SerializeSafetensors(
    std::vector<TensorToWrite> tensors, const std::map<std::string, std::string>& metadata);

}  // namespace berth

#endif  // BERTH_CORE_MODEL_SAFETENSORS_H_
