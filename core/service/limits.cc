#include "core/service/limits.h"

#include "absl/strings/str_cat.h"

namespace berth::service {

std::unique_ptr<Slots> Slots::Streams(int limit, Observer* observer) {
  return std::make_unique<Slots>(limit, "streams", "this server keeps at most ",
                                 " streams open; retry later", observer);
}

std::unique_ptr<Slots> Slots::Uploads(int limit, Observer* observer) {
  return std::make_unique<Slots>(limit, "concurrent_uploads", "this server takes at most ",
                                 " uploads at once; retry later", observer);
}

absl::StatusOr<Slots::Held> Slots::Take() {
  int now = used_.load();
  while (now < limit_) {
    if (used_.compare_exchange_weak(now, now + 1)) return Held(this);
  }
  if (observer_ != nullptr) observer_->OnRefusal(name_);
  return absl::ResourceExhaustedError(absl::StrCat(before_, limit_, after_));
}

absl::Status UploadBuffer::Append(absl::string_view chunk) {
  constexpr int64_t kMaxChunkBytes = 4 << 20;
  if (static_cast<int64_t>(chunk.size()) > kMaxChunkBytes) {
    return absl::InvalidArgumentError("data: a chunk is larger than 4 MiB");
  }
  if (static_cast<int64_t>(bytes_.size() + chunk.size()) > max_bytes_) {
    if (observer_ != nullptr) observer_->OnRefusal("upload_bytes");
    return absl::InvalidArgumentError(absl::StrCat(
        "data: ", what_, " is larger than the server's limit of ", max_bytes_, " bytes"));
  }
  bytes_.append(chunk.data(), chunk.size());
  return absl::OkStatus();
}

}  // namespace berth::service
