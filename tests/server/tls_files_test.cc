// The server's TLS files (server/tls_files.h) without a server: files that do not parse or do
// not belong together are refused naming the flag and the file, the staging directory is
// private, a reload stages only what changed, and a bad reload keeps the files in force.
#include "server/tls_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

#include "core/util/files.h"
#include "tests/unit/test_util.h"

namespace berth::server {
namespace {

using berth::testing::TempDir;

// Two self-signed certificates with their keys, made by the openssl command line.
void MakeCertificates(const TempDir& dir) {
  std::string script = "set -e; cd '" + dir.path() + "'\n";
  for (const char* name : {"a", "b"}) {
    script += std::string("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 ") +
              "-nodes -keyout " + name + ".key -out " + name + ".pem -days 2 -subj /CN=" + name +
              " 2>/dev/null\n";
  }
  ASSERT_EQ(std::system(("bash -c \"" + script + "\"").c_str()), 0) << "openssl failed";
}

TEST(TlsFilesTest, BadFilesAreRefusedNamingTheFlagAndFile) {
  TempDir dir;
  ASSERT_NO_FATAL_FAILURE(MakeCertificates(dir));
  testing::WriteFile(dir.File("junk.pem"), "not a certificate\n");
  const std::string stage = dir.File("stage");
  auto missing = TlsFiles::Create(dir.File("absent.pem"), dir.File("a.key"), "", stage);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("--tls-cert: "), std::string::npos) << missing.status();
  auto junk = TlsFiles::Create(dir.File("junk.pem"), dir.File("a.key"), "", stage);
  EXPECT_EQ(junk.status().message(),
            "--tls-cert: " + dir.File("junk.pem") + " holds no PEM certificate");
  auto mismatch = TlsFiles::Create(dir.File("a.pem"), dir.File("b.key"), "", stage);
  EXPECT_EQ(mismatch.status().message(), "--tls-key: " + dir.File("b.key") +
                                             " does not match the certificate in " +
                                             dir.File("a.pem"));
  auto ca = TlsFiles::Create(dir.File("a.pem"), dir.File("a.key"), dir.File("junk.pem"), stage);
  EXPECT_EQ(ca.status().message(),
            "--tls-client-ca: " + dir.File("junk.pem") + " holds no PEM certificate");
}

TEST(TlsFilesTest, StagesPrivatelyAndReloadsOnlyWhatChanged) {
  TempDir dir;
  ASSERT_NO_FATAL_FAILURE(MakeCertificates(dir));
  const std::string cert = dir.File("server.pem"), key = dir.File("server.key");
  ASSERT_TRUE(WriteFileAtomically(cert, *ReadFileToString(dir.File("a.pem"))).ok());
  ASSERT_TRUE(WriteFileAtomically(key, *ReadFileToString(dir.File("a.key"))).ok());
  auto tls = TlsFiles::Create(cert, key, dir.File("b.pem"), dir.File("stage"));
  ASSERT_TRUE(tls.ok()) << tls.status();
  struct stat st;
  ASSERT_EQ(::stat(dir.File("stage").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ((*tls)->generation(), 1);
  EXPECT_EQ(*ReadFileToString((*tls)->cert_path()), *ReadFileToString(dir.File("a.pem")));
  EXPECT_EQ(*ReadFileToString((*tls)->client_ca_path()), *ReadFileToString(dir.File("b.pem")));

  ASSERT_TRUE((*tls)->Reload().ok());
  EXPECT_EQ((*tls)->generation(), 1) << "nothing changed, nothing staged";

  // A certificate without its key yet: refused, and the staged pair stays.
  ASSERT_TRUE(WriteFileAtomically(cert, *ReadFileToString(dir.File("b.pem"))).ok());
  EXPECT_FALSE((*tls)->Reload().ok());
  EXPECT_EQ((*tls)->generation(), 1);
  EXPECT_EQ(*ReadFileToString((*tls)->key_path()), *ReadFileToString(dir.File("a.key")));

  ASSERT_TRUE(WriteFileAtomically(key, *ReadFileToString(dir.File("b.key"))).ok());
  ASSERT_TRUE((*tls)->Reload().ok());
  EXPECT_EQ((*tls)->generation(), 2);
  EXPECT_EQ(*ReadFileToString((*tls)->cert_path()), *ReadFileToString(dir.File("b.pem")));
  EXPECT_EQ(*ReadFileToString((*tls)->key_path()), *ReadFileToString(dir.File("b.key")));
}

}  // namespace
}  // namespace berth::server
