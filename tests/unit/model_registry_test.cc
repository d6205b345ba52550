// The model registry's memory budget (the server's --model-memory-mb): the least recently used
// version is unloaded when a load goes over it, a version in use keeps working after it is
// unloaded, and an unloaded version loads again on its next use; versions deleted elsewhere are
// dropped.
#include "core/service/model_registry.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <set>
#include <string>
#include <vector>

#include "core/store/store.h"
#include "core/util/files.h"
#include "tests/unit/test_util.h"

namespace berth::service {
namespace {

using berth::testing::FixturePath;
using berth::testing::TempDir;

std::set<std::string> Loaded(const ModelRegistry& r) {
  std::set<std::string> names;
  r.ForEachLoaded(
      [&](const std::string& name, int64_t, const InferenceEngine&) { names.insert(name); });
  return names;
}

// Registers the bert-tiny fixture as version 1 of each of `names`.
void AddTinyModels(const TempDir& dir, store::Store& store, std::vector<std::string> names) {
  for (const std::string& name : names) {
    const std::string rel = "models/" + name + "/1";
    ASSERT_EQ(system(("mkdir -p '" + dir.File("models/" + name) + "' && cp -r '" +
                      FixturePath("bert-tiny-uncased") + "' '" + dir.File(rel) + "'")
                         .c_str()),
              0);
    ASSERT_TRUE(store.AddModelVersion(name, "", rel, "{}").ok());
  }
}

TEST(ModelRegistryTest, LeastRecentlyUsedIsUnloadedOverTheBudget) {
  TempDir dir;
  auto store = store::Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_NO_FATAL_FAILURE(AddTinyModels(dir, **store, {"a", "b", "c"}));
  struct stat st;
  ASSERT_EQ(::stat((FixturePath("bert-tiny-uncased") + "/model.safetensors").c_str(), &st), 0);
  RegistryOptions o;
  o.memory_budget_bytes = st.st_size * 5 / 2;  // room for two of the three
  ModelRegistry registry(store->get(), o);

  auto a = registry.Acquire({"a", 0, ""});
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = registry.Acquire({"b", 0, ""});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(Loaded(registry), (std::set<std::string>{"a", "b"}));
  ASSERT_TRUE(registry.Acquire({"a", 0, ""}).ok());  // a is now the most recently used
  auto c = registry.Acquire({"c", 0, ""});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(Loaded(registry), (std::set<std::string>{"a", "c"})) << "b was the least recently used";
  EXPECT_EQ(registry.loaded_models(), 2);
  EXPECT_EQ(registry.loaded_bytes(), 2 * static_cast<int64_t>(st.st_size));

  // The handle taken before b was unloaded still classifies.
  ClassifyOptions co;
  auto r = b->engine->Classify({"a fine film"}, {}, co);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size(), 1u);

  // b loads again on use, and a, now the least recently used (before c), makes room.
  ASSERT_TRUE(registry.Acquire({"b", 0, ""}).ok());
  EXPECT_EQ(Loaded(registry), (std::set<std::string>{"b", "c"}));
}

// A version deleted through another process (straight in the store here) is dropped by
// DropDeleted, while the other stays loaded and a handle taken before still classifies.
TEST(ModelRegistryTest, VersionsDeletedElsewhereAreDropped) {
  TempDir dir;
  auto store = store::Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_NO_FATAL_FAILURE(AddTinyModels(dir, **store, {"kept", "gone"}));
  ModelRegistry registry(store->get(), RegistryOptions{});
  ASSERT_TRUE(registry.Acquire({"kept", 0, ""}).ok());
  auto gone = registry.Acquire({"gone", 1, ""});
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_TRUE(registry.DropDeleted().empty());
  ASSERT_TRUE((*store)->DeleteModel("gone", 1, [](const std::string&) { return false; }).ok());
  auto dropped = registry.DropDeleted();
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0], (std::pair<std::string, int64_t>{"gone", 1}));
  EXPECT_EQ(Loaded(registry), (std::set<std::string>{"kept"}));
  ClassifyOptions co;
  EXPECT_TRUE(gone->engine->Classify({"still answers"}, {}, co).ok());
  EXPECT_EQ(registry.Acquire({"gone", 1, ""}).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace berth::service
