// Fine-tuned models ready to classify: loaded lazily on first use, cached under a memory budget
// (least recently used first out), handed out as shared pointers so a call that holds one
// finishes on that version even if an alias moves or the version is evicted meanwhile.
#ifndef BERTH_CORE_SERVICE_MODEL_REGISTRY_H_
#define BERTH_CORE_SERVICE_MODEL_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/infer/engine.h"
#include "core/service/model_ref.h"
#include "core/store/store.h"

namespace berth::service {

struct RegistryOptions {
  int64_t memory_budget_bytes = int64_t{4} << 30;  // weights of loaded models, estimated
  EngineOptions engine;
  // A model's own precision (berth-server --model-precision NAME=PRECISION), over
  // engine.classifier.precision, for every version of that name.
  std::map<std::string, InferencePrecision> precision_by_model;
  // Hooks for metrics: a batch observer per loaded version, and each load's outcome.
  std::function<BatchObserver(const std::string& name, int64_t version)> batch_observer;
  std::function<void(double seconds, bool ok)> on_load;
};

struct ModelHandle {
  std::shared_ptr<const InferenceEngine> engine;
  store::ModelRecord record;
};

class ModelRegistry {
 public:
  ModelRegistry(store::Store* store, RegistryOptions options)
      : store_(store), options_(std::move(options)) {}

  // Resolves the reference (an alias is read once, here) and returns the loaded engine,
  // loading it first if needed. Blocks while loading: never call it on a gRPC thread.
  absl::StatusOr<ModelHandle> Acquire(const ModelRef& ref);

  // Drops cached engines of a model (version 0: all versions). Calls holding one finish.
  void Evict(const std::string& name, int64_t version);

  // Drops loaded versions whose model row is gone from the store (deleted through another
  // replica); returns them. Calls holding one finish on it. A store that cannot be read drops
  // nothing.
  std::vector<std::pair<std::string, int64_t>> DropDeleted();

  // Calls `fn` for every loaded version (under the registry's lock: keep it short).
  void ForEachLoaded(const std::function<void(const std::string& name, int64_t version,
                                              const InferenceEngine& engine)>& fn) const;

  int64_t loaded_models() const;
  int64_t loaded_bytes() const;

 private:
  using Key = std::pair<std::string, int64_t>;
  using LoadResult = absl::StatusOr<std::shared_ptr<const InferenceEngine>>;
  struct Entry {
    std::shared_future<LoadResult> engine;
    int64_t bytes = 0;
    uint64_t last_used = 0;
  };
  void EvictOverBudgetLocked(const Key& keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  store::Store* const store_;
  const RegistryOptions options_;
  mutable absl::Mutex mu_;
  std::map<Key, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace berth::service

#endif  // BERTH_CORE_SERVICE_MODEL_REGISTRY_H_
