// A fixed pool of threads with a bounded queue: work that would block (model loading,
// waiting for a batch) runs here instead of on a gRPC thread, and a full queue says so at once.
#ifndef BERTH_CORE_UTIL_THREAD_POOL_H_
#define BERTH_CORE_UTIL_THREAD_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace berth {

class ThreadPool {
 public:
  ThreadPool(int threads, size_t max_queued);
  ~ThreadPool();  // runs what is queued, then joins

  // False (and `task` is dropped) when the queue is full or the pool is shutting down.
  bool TrySubmit(std::function<void()> task);
  size_t queued() const;

 private:
  void Loop();

  const size_t max_queued_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// fn(i) for every i in [0, n): on the calling thread, or, when there are at least 2 x
// `per_thread` items, over up to one thread per core, each taking a contiguous range. For
// CPU-bound work without torch (tokenizing a large request); returns when all are done.
void ParallelFor(size_t n, size_t per_thread, const std::function<void(size_t)>& fn);

}  // namespace berth

#endif  // BERTH_CORE_UTIL_THREAD_POOL_H_
