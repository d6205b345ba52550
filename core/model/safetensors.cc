// Safetensors reading with full header validation, and writing.
#include "core/model/safetensors.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"

namespace berth {
namespace {

// The reference implementation refuses headers over 100 MB.
constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::kF64, "F64", 8},   {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2},   {DType::kI8, "I8", 1},   {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1},
};

uint64_t ReadLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

size_t DTypeSize(DType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d.size;
  }
  return 0;
}

absl::string_view DTypeName(DType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d.name;
  }
  return "?";
}

std::optional<DType> ParseDType(absl::string_view name) {
  for (const auto& d : kDTypes) {
    if (name == d.name) return d.dtype;
  }
  return std::nullopt;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapping, MappedFile::Open(path));
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->what_ = path;
  // The mapping is private: made writable, a write copies the page for this process alone.
  // Tensors that alias the file (LoadWeightsOptions::share_file_memory) may then be written.
  f->writable_ = mapping->size() > 0 && ::mprotect(const_cast<uint8_t*>(mapping->data()),
                                                   mapping->size(), PROT_READ | PROT_WRITE) == 0;
  f->mapping_ = std::move(mapping);
  RETURN_IF_ERROR(f->Parse(f->mapping_->data(), f->mapping_->size()));
  return f;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::FromBytes(std::string bytes,
                                                                            std::string what) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->what_ = std::move(what);
  f->bytes_ = std::move(bytes);
  RETURN_IF_ERROR(f->Parse(reinterpret_cast<const uint8_t*>(f->bytes_.data()), f->bytes_.size()));
  return f;
}

const TensorView* SafetensorsFile::Find(absl::string_view name) const {
  for (const TensorView& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

absl::Status SafetensorsFile::Parse(const uint8_t* data, size_t size) {
  auto bad = [&](auto&&... parts) {
    return absl::InvalidArgumentError(
        absl::StrCat(what_, ": not a valid safetensors file: ", parts...));
  };
  if (size < 8) return bad("only ", size, " bytes, shorter than the 8-byte header length");
  const uint64_t header_size = ReadLe64(data);
  if (header_size > kMaxHeaderSize) return bad("header length ", header_size, " exceeds 100 MB");
  if (header_size > size - 8) {
    return bad("header length ", header_size, " runs past the end of the ", size,
               "-byte file (truncated?)");
  }
  if (header_size < 2 || data[8] != '{') return bad("header does not start with '{'");
  absl::string_view header(reinterpret_cast<const char*>(data + 8), header_size);
  Json j = Json::parse(header.begin(), header.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad("header is not a JSON object");

  const uint8_t* base = data + 8 + header_size;
  const uint64_t data_size = size - 8 - header_size;
  struct Range {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Range> ranges;
  for (auto& [name, entry] : j.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return bad("__metadata__ must be an object of strings");
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string()) return bad("__metadata__['", k, "'] must be a string");
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) return bad("tensor '", name, "' entry is not an object");
    auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string()) return bad("tensor '", name, "' has no dtype");
    std::optional<DType> dtype = ParseDType(dt->get<std::string>());
    if (!dtype)
      return bad("tensor '", name, "' has unsupported dtype '", dt->get<std::string>(), "'");
    auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array()) return bad("tensor '", name, "' has no shape array");
    TensorView t;
    t.name = name;
    t.dtype = *dtype;
    uint64_t count = 1;
    bool overflow = false;
    for (const Json& d : *sh) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) {
        return bad("tensor '", name, "' has a shape entry that is not a non-negative integer");
      }
      uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (v != 0 && count > std::numeric_limits<uint64_t>::max() / v)) {
        overflow = true;
      } else {
        count *= v;
      }
      t.shape.push_back(static_cast<int64_t>(std::min<uint64_t>(v, INT64_MAX)));
    }
    const uint64_t elem = DTypeSize(*dtype);
    if (overflow || count > std::numeric_limits<uint64_t>::max() / elem) {
      return bad("tensor '", name, "' shape is too large");
    }
    auto off = entry.find("data_offsets");
    if (off == entry.end() || !off->is_array() || off->size() != 2 ||
        !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned()) {
      return bad("tensor '", name, "' needs data_offsets [begin, end] of non-negative integers");
    }
    const uint64_t begin = (*off)[0].get<uint64_t>();
    const uint64_t end = (*off)[1].get<uint64_t>();
    if (begin > end) return bad("tensor '", name, "' data_offsets begin ", begin, " > end ", end);
    if (end > data_size) {
      return bad("tensor '", name, "' data_offsets end ", end, " is past the ", data_size,
                 "-byte data area (truncated?)");
    }
    if (end - begin != count * elem) {
      return bad("tensor '", name, "' holds ", end - begin, " bytes but its shape and dtype need ",
                 count * elem);
    }
    t.data = base + begin;
    t.nbytes = static_cast<size_t>(end - begin);
    ranges.push_back(Range{begin, end, tensors_.size()});
    tensors_.push_back(std::move(t));
  }
  // The data area must be covered exactly: sorted by offset, each tensor starts where the
  // previous one ended (no overlap, no hole) and the last ends at the end of the file.
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  for (const Range& r : ranges) {
    if (r.begin < expected) {
      return bad("tensor '", tensors_[r.index].name, "' overlaps the previous tensor at byte ",
                 r.begin);
    }
    if (r.begin > expected) {
      return bad("bytes ", expected, "..", r.begin, " before tensor '", tensors_[r.index].name,
                 "' belong to no tensor");
    }
    expected = r.end;
  }
  if (expected != data_size) {
    return bad("the data area has ", data_size, " bytes but the tensors cover ", expected);
  }
  // File order (by offset) is the natural listing order.
  std::vector<TensorView> ordered;
  ordered.reserve(tensors_.size());
  for (const Range& r : ranges) ordered.push_back(std::move(tensors_[r.index]));
  tensors_ = std::move(ordered);
  return absl::OkStatus();
}

namespace {

// Sorts `tensors` by name and returns the 8-byte length and the JSON header that precede their
// bytes.
absl::StatusOr<std::string> SortAndMakeHeader(std::vector<TensorToWrite>* tensors,
                                              const std::map<std::string, std::string>& metadata) {
  std::sort(tensors->begin(), tensors->end(),
            [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
  Json header = Json::object();
  if (!metadata.empty()) {
    Json m = Json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors->size(); ++i) {
    const TensorToWrite& t = (*tensors)[i];
    if (i > 0 && t.name == (*tensors)[i - 1].name) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name '", t.name, "'"));
    }
    uint64_t count = 1;
    for (int64_t d : t.shape) {
      if (d < 0)
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", t.name, "' has a negative dimension"));
      count *= static_cast<uint64_t>(d);
    }
    if (count * DTypeSize(t.dtype) != t.nbytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", t.name, "': ", t.nbytes, " bytes do not match its shape"));
    }
    header[t.name] = {{"dtype", std::string(DTypeName(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string h = header.dump();
  // Pad with spaces so the data area starts 64-byte aligned (the reference writer pads to 8;
  // the format allows any): tensors then sit where torch's allocator would put them, and a
  // loaded model can use them in place (LoadWeightsOptions::share_file_memory).
  h.append((64 - (8 + h.size()) % 64) % 64, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((h.size() >> (8 * i)) & 0xFF);
  return out + h;
}

}  // namespace

absl::Status WriteSafetensors(const std::string& path, std::vector<TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata) {
  ASSIGN_OR_RETURN(std::string header, SortAndMakeHeader(&tensors, metadata));
  return WriteFileAtomically(path, [&](ByteSink& sink) -> absl::Status {
    RETURN_IF_ERROR(sink.Append(header.data(), header.size()));
    for (const TensorToWrite& t : tensors) RETURN_IF_ERROR(sink.Append(t.data, t.nbytes));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::string> SerializeSafetensors(
    std::vector<TensorToWrite> tensors, const std::map<std::string, std::string>& metadata) {
  ASSIGN_OR_RETURN(std::string out, SortAndMakeHeader(&tensors, metadata));
  for (const TensorToWrite& t : tensors) out.append(static_cast<const char*>(t.data), t.nbytes);
  return out;
}

}  // namespace berth
