// base_model references: the one parser, and the server's rules for them (presets,
// --model-roots, the registry, --no-hub) over a real SQLite store.
#include "core/service/base_model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "core/util/files.h"
#include "tests/unit/test_util.h"

namespace berth::service {
namespace {

using berth::testing::TempDir;
using Kind = BaseModelRef::Kind;

TEST(BaseModelRefTest, ParsesEachFormAndPrintsItBack) {
  struct Case {
    const char* text;
    Kind kind;
    bool hub_fallback;
  };
  for (const Case& c :
       {Case{"config:bert-tiny", Kind::kPreset, false}, Case{"/srv/models/x", Kind::kPath, false},
        Case{"sst2", Kind::kRegistered, true}, Case{"sst2:3", Kind::kRegistered, false},
        Case{"sst2@production", Kind::kRegistered, false}, Case{"org/name", Kind::kHub, false},
        Case{"org/name@v1.0", Kind::kHub, false}}) {
    auto ref = ParseBaseModelRef(c.text);
    ASSERT_TRUE(ref.ok()) << c.text << ": " << ref.status();
    EXPECT_EQ(ref->kind, c.kind) << c.text;
    EXPECT_EQ(ref->hub_fallback, c.hub_fallback) << c.text;
    EXPECT_EQ(ref->ToString(), c.text);
  }
  EXPECT_EQ(ParseBaseModelRef("sst2:3")->model.version, 3);
  EXPECT_EQ(ParseBaseModelRef("sst2@production")->model.alias, "production");
  EXPECT_EQ(ParseBaseModelRef("org/name@v1.0")->hub.revision, "v1.0");
  EXPECT_EQ(ParseBaseModelRef("org/name@main")->ToString(), "org/name");
}

TEST(BaseModelRefTest, RejectsWhatIsNoForm) {
  for (const char* text : {"config:bert-huge", "", "a/b/c", "../x", "org/na me", "sst2:0"}) {
    auto ref = ParseBaseModelRef(text);
    ASSERT_FALSE(ref.ok()) << text;
    EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(ref.status().message().find("base_model"), absl::string_view::npos) << ref.status();
  }
  // The unknown preset's message lists the known ones.
  EXPECT_NE(ParseBaseModelRef("config:bert-huge").status().message().find("config:bert-base"),
            absl::string_view::npos);
}

TEST(BaseModelRefTest, UsesMatchesNameAndVersion) {
  EXPECT_TRUE(BaseModelUses("sst2", "sst2", 2));  // the latest: any version may be it
  EXPECT_TRUE(BaseModelUses("sst2:2", "sst2", 2));
  EXPECT_TRUE(BaseModelUses("sst2:2", "sst2", 0));
  EXPECT_FALSE(BaseModelUses("sst2:1", "sst2", 2));
  EXPECT_FALSE(BaseModelUses("sst2x:2", "sst2", 2));
  EXPECT_FALSE(BaseModelUses("config:bert-tiny", "bert-tiny", 0));
  EXPECT_FALSE(BaseModelUses("org/sst2", "sst2", 0));
}

class BaseModelPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::Open(JoinPath(dir_.path(), "data"));
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(s).value();
    ASSERT_TRUE(store_->AddModelVersion("sst2", "job-a", "models/sst2/1", "{}").ok());
    ASSERT_TRUE(store_->AddModelVersion("sst2", "job-b", "models/sst2/2", "{}").ok());
    ASSERT_TRUE(store_->SetAlias("sst2", "production", 1).ok());
    root_ = JoinPath(dir_.path(), "roots");
    ASSERT_TRUE(MakeDirectories(JoinPath(root_, "good")).ok());
    ASSERT_TRUE(WriteFileAtomically(JoinPath(root_, "good/config.json"), "{}").ok());
    ASSERT_TRUE(MakeDirectories(JoinPath(dir_.path(), "outside")).ok());
    ASSERT_TRUE(WriteFileAtomically(JoinPath(dir_.path(), "outside/config.json"), "{}").ok());
    ASSERT_EQ(
        ::symlink(JoinPath(dir_.path(), "outside").c_str(), JoinPath(root_, "escape").c_str()), 0);
  }

  BaseModelPolicy Policy(bool allow_hub, bool with_roots = true) {
    return BaseModelPolicy(
        store_.get(),
        {with_roots ? std::vector<std::string>{root_} : std::vector<std::string>{}, allow_hub});
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::string root_;
};

TEST_F(BaseModelPolicyTest, PinsRegisteredModelsToAVersion) {
  const BaseModelPolicy policy = Policy(/*allow_hub=*/false);
  EXPECT_EQ(policy.Pin("sst2")->ToString(), "sst2:2");
  EXPECT_EQ(policy.Pin("sst2@production")->ToString(), "sst2:1");
  EXPECT_EQ(policy.Pin("sst2:1")->ToString(), "sst2:1");
  EXPECT_EQ(policy.Pin("sst2:9").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(policy.Pin("sst2@staging").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*policy.Resolve("sst2:1"), JoinPath(store_->data_dir(), "models/sst2/1"));
  EXPECT_EQ(*policy.Resolve("config:bert-mini"), "config:bert-mini");
}

TEST_F(BaseModelPolicyTest, BareNamesFallBackToTheHubOnlyWhenItIsOn) {
  auto off = Policy(/*allow_hub=*/false).Pin("bert-base-uncased");
  EXPECT_EQ(off.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(off.status().message().find("--no-hub"), absl::string_view::npos) << off.status();
  auto on = Policy(/*allow_hub=*/true).Pin("bert-base-uncased");
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_EQ(on->kind, Kind::kHub);
  EXPECT_EQ(on->ToString(), "bert-base-uncased");
  EXPECT_EQ(Policy(/*allow_hub=*/false).Pin("org/name").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Policy(/*allow_hub=*/true).Pin("org/name")->ToString(), "org/name");
}

TEST_F(BaseModelPolicyTest, LocalPathsOnlyInsideTheRoots) {
  auto good = Policy(false).Pin(JoinPath(root_, "good/../good"));
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->kind, Kind::kPath);
  EXPECT_EQ(good->path.find(".."), std::string::npos);  // pinned to its real path
  EXPECT_EQ(Policy(false).Pin(JoinPath(root_, "escape")).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Policy(false).Pin(root_).status().code(),
            absl::StatusCode::kPermissionDenied);  // the root itself
  EXPECT_EQ(Policy(false).Pin(JoinPath(root_, "missing")).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto no_roots = Policy(false, /*with_roots=*/false).Pin(JoinPath(root_, "good"));
  EXPECT_EQ(no_roots.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_roots.status().message().find("--model-roots"), absl::string_view::npos);
}

}  // namespace
}  // namespace berth::service
