// The service's request limits and what enforces them, for every front door alike: the limits
// themselves (their defaults are `berth-server --help`'s), slots for things held open (streams,
// uploads in memory), the buffer an upload fills chunk by chunk, and the observer through which
// the facades report what they refused and served (the server turns it into metrics).
#ifndef BERTH_CORE_SERVICE_LIMITS_H_
#define BERTH_CORE_SERVICE_LIMITS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace berth::service {

struct Limits {
  int max_texts = 256;                            // texts per Classify/Tokenize request
  int64_t max_text_bytes = 64 * 1024;             // bytes per text
  int64_t max_upload_bytes = int64_t{512} << 20;  // bytes per dataset upload or model archive
  int64_t max_dataset_rows = 5'000'000;           // rows per dataset
  int max_concurrent_uploads = 4;                 // uploads in progress (each is held in memory)
  int max_queued_jobs = 1000;                     // jobs waiting, all tokens together
  int max_queued_jobs_per_token = 50;             // jobs waiting, per API token
  int max_streams = 256;                          // open watch, classify and export streams
  int max_page_size = 1000;                       // jobs per ListJobs page
};

// What the facades report; every method has an empty default.
class Observer {
 public:
  virtual ~Observer() = default;
  // A call refused by a limit: "concurrent_uploads", "streams", "upload_bytes", "queued_jobs",
  // "queued_jobs_per_token", "train_procs", "dataset_rows".
  virtual void OnRefusal(const std::string& /*limit*/) {}
  // A classification answered: the model's name, its texts and each text's wait for a batch.
  virtual void OnClassified(const std::string& /*model*/, int64_t /*texts*/,
                            const std::vector<double>& /*queue_seconds*/) {}
  // A dataset stored for the first time.
  virtual void OnDatasetStored(int64_t /*bytes*/) {}
};

// At most `limit` things at once (streams open, uploads held in memory). A slot is taken as a
// Held and given back when the Held goes.
class Slots {
 public:
  // Streams open (refusals reported as "streams") and uploads in progress ("concurrent_uploads").
  static std::unique_ptr<Slots> Streams(int limit, Observer* observer);
  static std::unique_ptr<Slots> Uploads(int limit, Observer* observer);
  // `name` is the refusal reported to `observer` (which may be null); the refusal's message is
  // `before` + limit + `after`.
  Slots(int limit, std::string name, std::string before, std::string after, Observer* observer)
      : limit_(limit),
        name_(std::move(name)),
        before_(std::move(before)),
        after_(std::move(after)),
        observer_(observer) {}
  Slots(const Slots&) = delete;
  Slots& operator=(const Slots&) = delete;

  class Held {
   public:
    Held() = default;
    explicit Held(Slots* slots) : slots_(slots) {}
    Held(Held&& o) noexcept : slots_(o.slots_) { o.slots_ = nullptr; }
    Held& operator=(Held&& o) noexcept {
      Release();
      slots_ = o.slots_;
      o.slots_ = nullptr;
      return *this;
    }
    ~Held() { Release(); }
    // Gives the slot back now (idempotent).
    void Release() {
      if (slots_ != nullptr) --slots_->used_;
      slots_ = nullptr;
    }
    bool held() const { return slots_ != nullptr; }

   private:
    Slots* slots_ = nullptr;
  };

  // One slot, or RESOURCE_EXHAUSTED saying the limit (reported to the observer).
  absl::StatusOr<Held> Take();
  int used() const { return used_.load(); }

 private:
  const int limit_;
  const std::string name_, before_, after_;
  Observer* const observer_;
  std::atomic<int> used_{0};
};

// The bytes of an upload that arrive in chunks: at most 4 MiB a chunk and `max_bytes` in all,
// else INVALID_ARGUMENT naming `what` ("the upload", "the archive"), reported as "upload_bytes".
class UploadBuffer {
 public:
  UploadBuffer(int64_t max_bytes, std::string what, Observer* observer)
      : max_bytes_(max_bytes), what_(std::move(what)), observer_(observer) {}
  absl::Status Append(absl::string_view chunk);
  std::string& bytes() { return bytes_; }

 private:
  const int64_t max_bytes_;
  const std::string what_;
  Observer* const observer_;
  std::string bytes_;
};

// An upload's arrival (a dataset, a model archive): its upload slot, held until the upload is
// stored or refused, and the buffer its chunks fill.
struct Upload {
  Slots::Held slot;
  UploadBuffer bytes;
};

}  // namespace berth::service

#endif  // BERTH_CORE_SERVICE_LIMITS_H_
