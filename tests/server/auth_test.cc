// API tokens and roles (server/auth.h) without a transport: the token file's errors name the
// file and line, secrets are matched by digest, roles nest, model prefixes confine, and a reload
// that fails keeps the tokens in force.
#include "server/auth.h"

#include <gtest/gtest.h>

#include "core/util/digest.h"
#include "tests/unit/test_util.h"

namespace berth::server {
namespace {

using berth::testing::TempDir;

std::string Line(const std::string& id, const std::string& secret, const std::string& role,
                 const std::string& prefix = "") {
  std::string l = "{\"id\": \"" + id + "\", \"sha256\": \"" + Sha256Hex(secret) +
                  "\", \"role\": \"" + role + "\"";
  if (!prefix.empty()) l += ", \"model_prefix\": \"" + prefix + "\"";
  return l + "}\n";
}

TEST(TokenAuthenticatorTest, TokensAuthenticateByDigestAndRolesNest) {
  TempDir dir;
  const std::string file = dir.File("tokens.jsonl");
  testing::WriteFile(file, Line("reader", "s1", "classify", "team-a-") + "\n" +
                               Line("trainer", "s2", "train") + Line("boss", "s3", "admin") +
                               Line("viewer", "s4", "read"));
  auto auth = TokenAuthenticator::Load(file);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ((*auth)->size(), 4u);
  EXPECT_EQ((*auth)->Authenticate(std::nullopt).status().message(),
            "authorization: missing (send 'authorization: Bearer <token>')");
  EXPECT_EQ((*auth)->Authenticate("Basic s1").status().message(),
            "authorization: expected 'Bearer <token>'");
  EXPECT_EQ((*auth)->Authenticate("Bearer nope").status().code(),
            absl::StatusCode::kUnauthenticated);
  auto reader = (*auth)->Authenticate("Bearer s1");
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(reader->id, "reader");
  EXPECT_TRUE(Authorize(*reader, Permission::kClassify, "team-a-x").ok());
  EXPECT_EQ(Authorize(*reader, Permission::kClassify, "team-b-x").message(),
            "token 'reader' may only use models whose names start with 'team-a-'");
  EXPECT_EQ(Authorize(*reader, Permission::kTrain, "").message(),
            "token 'reader' has role classify; this call needs train or admin");
  EXPECT_EQ(Authorize(*reader, Permission::kSeeJobs, "").message(),
            "token 'reader' has role classify; this call needs read, train or admin");
  auto trainer = (*auth)->Authenticate("Bearer s2");
  ASSERT_TRUE(trainer.ok());
  EXPECT_TRUE(Authorize(*trainer, Permission::kClassify, "any").ok());
  EXPECT_TRUE(Authorize(*trainer, Permission::kTrain, "any").ok());
  EXPECT_EQ(Authorize(*trainer, Permission::kAdmin, "").code(),
            absl::StatusCode::kPermissionDenied);
  auto boss = (*auth)->Authenticate("Bearer s3");
  ASSERT_TRUE(boss.ok());
  EXPECT_TRUE(Authorize(*boss, Permission::kAdmin, "any").ok());
  // read: classifies and sees every job, and changes nothing.
  auto viewer = (*auth)->Authenticate("Bearer s4");
  ASSERT_TRUE(viewer.ok());
  EXPECT_TRUE(Authorize(*viewer, Permission::kClassify, "any").ok());
  EXPECT_TRUE(Authorize(*viewer, Permission::kSeeJobs, "").ok());
  EXPECT_TRUE(Authorize(*trainer, Permission::kSeeJobs, "").ok());
  EXPECT_EQ(Authorize(*viewer, Permission::kTrain, "").message(),
            "token 'viewer' has role read; this call needs train or admin");
  EXPECT_EQ(Authorize(*viewer, Permission::kAdmin, "").code(), absl::StatusCode::kPermissionDenied);
}

TEST(TokenAuthenticatorTest, BadTokenFilesNameTheLineAndAReloadKeepsTheOldTokens) {
  TempDir dir;
  const std::string file = dir.File("tokens.jsonl");
  const struct {
    std::string contents, error;
  } cases[] = {
      {"{\"id\": \"a\"}\n", ":1: needs string fields id, sha256 and role"},
      {Line("a", "s", "root"), ":1: role must be classify, read, train or admin"},
      {"\n" + Line("a", "s", "train") + Line("a", "t", "train"), ":3: id 'a' appears twice"},
      {"{\"id\": \"a\", \"sha256\": \"xyz\", \"role\": \"train\"}\n",
       ":1: sha256 must be 64 hex digits (the secret's digest)"},
      {"not json\n", ":1"},
  };
  for (const auto& c : cases) {
    testing::WriteFile(file, c.contents);
    auto auth = TokenAuthenticator::Load(file);
    ASSERT_FALSE(auth.ok()) << c.contents;
    EXPECT_NE(auth.status().message().find(file + c.error), std::string::npos)
        << auth.status() << " for " << c.contents;
  }
  EXPECT_EQ(TokenAuthenticator::Load(dir.File("absent")).status().code(),
            absl::StatusCode::kNotFound);

  testing::WriteFile(file, Line("a", "s1", "train"));
  auto auth = TokenAuthenticator::Load(file);
  ASSERT_TRUE(auth.ok());
  testing::WriteFile(file, "garbage\n");
  EXPECT_FALSE((*auth)->Reload().ok());
  EXPECT_TRUE((*auth)->Authenticate("Bearer s1").ok()) << "the tokens in force stay";
  testing::WriteFile(file, Line("b", "s2", "train"));
  ASSERT_TRUE((*auth)->Reload().ok());
  EXPECT_FALSE((*auth)->Authenticate("Bearer s1").ok());
  EXPECT_TRUE((*auth)->Authenticate("Bearer s2").ok());
}

}  // namespace
}  // namespace berth::server
