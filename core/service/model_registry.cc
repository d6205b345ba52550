// Lazy, memory-bounded cache of inference engines keyed by (model, version).
#include "core/service/model_registry.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/model/model_dir.h"
#include "core/util/files.h"
#include "core/util/status_macros.h"

namespace berth::service {
namespace {

int64_t WeightBytes(const std::string& dir) {
  struct stat st;
  const std::string path = ModelWeightsPath(dir);
  if (!path.empty() && ::stat(path.c_str(), &st) == 0) return static_cast<int64_t>(st.st_size);
  return 0;
}

}  // namespace

absl::StatusOr<ModelHandle> ModelRegistry::Acquire(const ModelRef& ref) {
  ModelHandle handle;
  ASSIGN_OR_RETURN(handle.record, store_->GetModel(ref.name, ref.version, ref.alias));
  const Key key{handle.record.name, handle.record.version};
  std::shared_future<LoadResult> future;
  std::promise<LoadResult> promise;
  bool load = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      Entry e;
      e.engine = promise.get_future().share();
      e.last_used = ++clock_;
      it = entries_.emplace(key, std::move(e)).first;
      load = true;
    }
    it->second.last_used = ++clock_;
    future = it->second.engine;
  }
  if (load) {
    const std::string dir = JoinPath(store_->data_dir(), handle.record.path);
    const auto start = std::chrono::steady_clock::now();
    EngineOptions engine_options = options_.engine;
    if (auto own = options_.precision_by_model.find(key.first);
        own != options_.precision_by_model.end()) {
      engine_options.classifier.precision = own->second;
    }
    auto engine = InferenceEngine::Load(
        dir, engine_options,
        options_.batch_observer ? options_.batch_observer(key.first, key.second) : nullptr);
    if (options_.on_load) {
      options_.on_load(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
          engine.ok());
    }
    LoadResult result =
        engine.ok()
            ? LoadResult(std::shared_ptr<const InferenceEngine>(std::move(*engine)))
            : LoadResult(absl::Status(engine.status().code(),
                                      absl::StrCat("loading model ", key.first, ":", key.second,
                                                   ": ", engine.status().message())));
    promise.set_value(result);
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      if (result.ok()) {
        it->second.bytes = std::max<int64_t>(1, WeightBytes(dir));
        EvictOverBudgetLocked(key);
      } else {
        entries_.erase(it);  // the next call tries again
      }
    }
  }
  LoadResult result = future.get();
  if (!result.ok()) return result.status();
  handle.engine = *result;
  return handle;
}

void ModelRegistry::EvictOverBudgetLocked(const Key& keep) {
  int64_t total = 0;
  for (const auto& [k, e] : entries_) total += e.bytes;
  while (total > options_.memory_budget_bytes) {
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first == keep || it->second.bytes == 0) continue;  // 0: still loading
      if (victim == entries_.end() || it->second.last_used < victim->second.last_used) victim = it;
    }
    if (victim == entries_.end()) return;  // only the newest is left: it stays even if too big
    total -= victim->second.bytes;
    entries_.erase(victim);
  }
}

void ModelRegistry::Evict(const std::string& name, int64_t version) {
  std::vector<std::shared_future<LoadResult>> dropped;  // released outside the lock
  absl::MutexLock lock(&mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->first.first == name && (version == 0 || it->first.second == version)) {
      dropped.push_back(it->second.engine);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<std::pair<std::string, int64_t>> ModelRegistry::DropDeleted() {
  std::vector<Key> loaded;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, e] : entries_) loaded.push_back(key);
  }
  std::vector<Key> gone;
  for (const Key& key : loaded) {
    auto m = store_->GetModel(key.first, key.second, "");
    if (absl::IsNotFound(m.status())) gone.push_back(key);
  }
  for (const Key& key : gone) Evict(key.first, key.second);
  return gone;
}

void ModelRegistry::ForEachLoaded(
    const std::function<void(const std::string& name, int64_t version,
                             const InferenceEngine& engine)>& fn) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [key, e] : entries_) {
    if (e.bytes == 0) continue;  // still loading
    const LoadResult& r = e.engine.get();
    if (r.ok()) fn(key.first, key.second, **r);
  }
}

int64_t ModelRegistry::loaded_models() const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [k, e] : entries_) n += e.bytes > 0 ? 1 : 0;
  return n;
}

int64_t ModelRegistry::loaded_bytes() const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [k, e] : entries_) n += e.bytes;
  return n;
}

}  // namespace berth::service
