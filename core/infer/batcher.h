// Token-budget dynamic batcher: one thread per model packs queued, already-tokenized requests
// into dense forward passes (grouped by length, bounded by padded tokens and batch size).
#ifndef BERTH_CORE_INFER_BATCHER_H_
#define BERTH_CORE_INFER_BATCHER_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/infer/sequence_classifier.h"
#include "core/text/tokenizer.h"

namespace berth {

using SteadyClock = std::chrono::steady_clock;

struct BatcherOptions {
  int64_t max_batch_tokens = 8192;  // padded tokens (rows x longest row) per forward pass
  int64_t max_batch_size = 64;      // rows per forward pass
  // How long a request may wait for company once a forward pass has ended. The callers that
  // pass released come back within microseconds (a closed loop), so the next batch waits until
  // as many callers are queued as it released, or until max_wait after it ended, or until a
  // batch is full, whichever comes first. So a lone caller never waits (it released one, and
  // it is back), and neither does a request arriving at a batcher that has been idle for
  // max_wait, nor one already queued when the previous batch was formed (the rest of a large
  // request, or one the padding rule left out): no request waits for company twice. Before
  // the first forward pass, the batcher waits up to max_wait after its start.
  std::chrono::microseconds max_wait{2000};
  // Beyond this many queued encodings, Submit fails with RESOURCE_EXHAUSTED (a request larger
  // than this is admitted only into an empty queue).
  int64_t max_queued_requests = 4096;
  // Past `free_rows` rows, a request joins a batch only if the batch keeps at least this
  // share of real (unpadded) tokens; others wait for a batch of their own length (they are
  // next if they are oldest). Below `free_rows` rows, tiny batches cost more per token than
  // padding does, so requests join regardless. Default 0 (batches by budget alone): on a GPU a
  // launch and a synchronisation cost more than padding (SST-2 through bert-base on an H200:
  // 42 batches under 0.9), and on the CPU the forward pass packs away the padding for all but
  // attention (TokenPacking), so splitting only made batches smaller (bert-base, 2 cores: one
  // request of 200 SST-2 sentences 0.84x the model-alone rate under 0.9, 0.92x under 0; a
  // closed loop of 16 clients 0.83x naive batches of 32 under 0.9, 0.99x under 0).
  double min_padding_efficiency = 0.0;
  int64_t free_rows = 8;
  int num_threads = 0;  // intra-op threads of the batcher thread (0: one per core)
  // Run two small batches (1 x 8 and 2 x 16 tokens) before accepting work: libraries and
  // kernels are loaded then, not in the first caller's time. (A full-budget warm-up batch took
  // 24 s through bert-base on 2 cores.)
  bool warmup = true;
};

// Whether a request's caller has gone (cancelled, disconnected); polled before its forward pass.
using CancelProbe = std::function<bool()>;

// What a request got back, with its timings.
struct BatchResult {
  std::vector<float> logits;
  std::vector<float> embedding;  // pooled (see PoolTokens), when submitted with embed
  double queue_seconds = 0;      // enqueue to start of its forward pass
  double compute_seconds = 0;    // its forward pass
  int64_t batch_size = 0;        // rows in the batch it ran in
};

struct BatcherStats {
  int64_t requests = 0;
  int64_t batches = 0;
  int64_t real_tokens = 0;
  int64_t padded_tokens = 0;
  int64_t expired = 0;
  int64_t cancelled = 0;  // dropped before their forward pass: the caller had gone
  int64_t rejected = 0;
  int64_t queue_depth = 0;
  // Where the batcher thread's time went, summed over batches: building a batch (host tensors
  // and the copy to the device), the forward pass with the copy of its logits back, and
  // turning logits into results and handing them to the callers.
  double build_seconds = 0;
  double forward_seconds = 0;
  double finish_seconds = 0;
  double queue_seconds = 0;  // summed over requests: enqueue to the start of their batch
  double padding_efficiency() const {
    return padded_tokens > 0 ? static_cast<double>(real_tokens) / static_cast<double>(padded_tokens)
                             : 1.0;
  }
};

// Called after every forward pass (for metrics): rows, padded tokens, real tokens, seconds.
using BatchObserver =
    std::function<void(int64_t rows, int64_t padded_tokens, int64_t real_tokens, double seconds)>;

class DynamicBatcher {
 public:
  static absl::StatusOr<std::unique_ptr<DynamicBatcher>> Create(
      std::shared_ptr<const SequenceClassifier> model, const BatcherOptions& options,
      BatchObserver observer = nullptr);
  ~DynamicBatcher();  // Shutdown() and join
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues one encoding. Fails at once with RESOURCE_EXHAUSTED when the queue is full,
  // UNAVAILABLE after Shutdown, INVALID_ARGUMENT for an empty or over-long encoding. The
  // future yields DEADLINE_EXCEEDED if the deadline passed before its batch ran, CANCELLED if
  // `cancelled` said so then; neither costs a forward pass.
  absl::StatusOr<std::future<absl::StatusOr<BatchResult>>> Submit(
      text::Encoding encoding, SteadyClock::time_point deadline = SteadyClock::time_point::max(),
      CancelProbe cancelled = nullptr, bool embed = false);
  // Queues encodings together (one lock, one wake-up), all or none, so that batches are formed
  // from the whole request: a request of many texts is length-sorted into full batches at once.
  // The errors are Submit's; INVALID_ARGUMENT names the encoding's index. With `embed`, each
  // result also carries the pooled embedding (a batch holding any such request computes every
  // token's row of the last layer, and the others still get their logits).
  absl::StatusOr<std::vector<std::future<absl::StatusOr<BatchResult>>>> SubmitMany(
      std::vector<text::Encoding> encodings,
      SteadyClock::time_point deadline = SteadyClock::time_point::max(),
      CancelProbe cancelled = nullptr, bool embed = false);

  // Stops accepting; queued requests still run; returns when the queue is empty.
  void Shutdown();

  BatcherStats stats() const;
  const SequenceClassifier& model() const { return *model_; }
  const BatcherOptions& options() const { return options_; }

 private:
  struct Request {
    text::Encoding encoding;
    SteadyClock::time_point enqueued;
    SteadyClock::time_point deadline;
    std::shared_ptr<const CancelProbe> cancelled;  // shared by a request's encodings; may be null
    bool embed = false;
    uint64_t caller =
        0;  // one number per Submit/SubmitMany call; its encodings are adjacent in the queue
    std::promise<absl::StatusOr<BatchResult>> promise;
  };

  DynamicBatcher(std::shared_ptr<const SequenceClassifier> model, const BatcherOptions& options,
                 BatchObserver observer);
  void Loop();
  // Picks the requests of the next batch (removing them from the queue).
  std::vector<std::unique_ptr<Request>> TakeBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs a batch and answers its callers; returns how many callers it answered with results.
  int64_t Run(std::vector<std::unique_ptr<Request>> batch);
  // Callers with requests in the queue (their encodings are adjacent).
  int64_t QueuedCallers() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<const SequenceClassifier> model_;
  const BatcherOptions options_;
  const BatchObserver observer_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<std::unique_ptr<Request>> queue_ ABSL_GUARDED_BY(mu_);  // in arrival order
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_caller_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // the loop has exited
  absl::CondVar finished_cv_;
  BatcherStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace berth

#endif  // BERTH_CORE_INFER_BATCHER_H_
