#include "server/tls_files.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/util/files.h"
#include "core/util/log.h"
#include "core/util/status_macros.h"

namespace berth::server {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

BioPtr MemBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

absl::StatusOr<std::string> ReadPem(const char* flag, const std::string& path) {
  auto pem = ReadFileToString(path);
  if (!pem.ok())
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", pem.status().message()));
  return *std::move(pem);
}

// The certificates, the key and the CA bundle parse, and the key belongs to the (first)
// certificate, so that gRPC is never handed a pair it would reject.
absl::Status Validate(const std::string& cert_path, const std::string& cert,
                      const std::string& key_path, const std::string& key,
                      const std::string& ca_path, const std::string& ca) {
  X509Ptr x(PEM_read_bio_X509(MemBio(cert).get(), nullptr, nullptr, nullptr));
  if (x == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cert: ", cert_path, " holds no PEM certificate"));
  }
  PkeyPtr k(PEM_read_bio_PrivateKey(MemBio(key).get(), nullptr, nullptr, nullptr));
  if (k == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-key: ", key_path, " holds no PEM private key (or it is encrypted)"));
  }
  if (X509_check_private_key(x.get(), k.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-key: ", key_path, " does not match the certificate in ", cert_path));
  }
  if (!ca_path.empty()) {
    X509Ptr c(PEM_read_bio_X509(MemBio(ca).get(), nullptr, nullptr, nullptr));
    if (c == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-client-ca: ", ca_path, " holds no PEM certificate"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsFiles>> TlsFiles::Create(std::string cert, std::string key,
                                                           std::string client_ca,
                                                           std::string stage_dir) {
  std::unique_ptr<TlsFiles> t(new TlsFiles());
  t->cert_ = std::move(cert);
  t->key_ = std::move(key);
  t->client_ca_ = std::move(client_ca);
  t->stage_dir_ = std::move(stage_dir);
  // Nothing watches the directory yet: start from an empty one (a previous run left its own).
  RETURN_IF_ERROR(RemoveAll(t->stage_dir_));
  RETURN_IF_ERROR(MakeDirectories(t->stage_dir_));
  // The staged private key must be no more readable than the original.
  if (::chmod(t->stage_dir_.c_str(), 0700) != 0) {
    return absl::PermissionDeniedError(absl::StrCat("cannot make ", t->stage_dir_, " private"));
  }
  absl::MutexLock lock(&t->mu_);
  RETURN_IF_ERROR(t->StageLocked());
  return t;
}

absl::Status TlsFiles::Reload() {
  absl::MutexLock lock(&mu_);
  return StageLocked();
}

absl::Status TlsFiles::StageLocked() {
  ASSIGN_OR_RETURN(std::string cert, ReadPem("--tls-cert", cert_));
  ASSIGN_OR_RETURN(std::string key, ReadPem("--tls-key", key_));
  std::string ca;
  if (!client_ca_.empty()) {
    ASSIGN_OR_RETURN(ca, ReadPem("--tls-client-ca", client_ca_));
  }
  RETURN_IF_ERROR(Validate(cert_, cert, key_, key, client_ca_, ca));
  std::string all = absl::StrCat(cert.size(), ":", cert, key.size(), ":", key, ca);
  if (generation_ > 0 && all == staged_) return absl::OkStatus();  // nothing changed

  // A new generation directory, then one rename of the `current` link: gRPC reads either the
  // old pair or the new one, never half of each.
  const int next = generation_ + 1;
  const std::string gen = absl::StrCat("gen-", next);
  const std::string dir = JoinPath(stage_dir_, gen);
  RETURN_IF_ERROR(RemoveAll(dir));
  RETURN_IF_ERROR(MakeDirectories(dir));
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "key.pem"), key));
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "cert.pem"), cert));
  if (!client_ca_.empty()) RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "ca.pem"), ca));
  const std::string link_tmp = JoinPath(stage_dir_, "current.tmp");
  ::unlink(link_tmp.c_str());
  if (::symlink(gen.c_str(), link_tmp.c_str()) != 0 ||
      std::rename(link_tmp.c_str(), JoinPath(stage_dir_, "current").c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot switch ", stage_dir_, "/current to ", gen));
  }
  // Keep the previous generation (gRPC may be reading it this second); drop older ones.
  if (next > 2) {
    const std::string old = JoinPath(stage_dir_, absl::StrCat("gen-", next - 2));
    LogIfError(RemoveAll(old), "tls.cleanup_failed", {{"path", old}});
  }
  staged_ = std::move(all);
  generation_ = next;
  return absl::OkStatus();
}

std::string TlsFiles::key_path() const { return JoinPath(stage_dir_, "current/key.pem"); }
std::string TlsFiles::cert_path() const { return JoinPath(stage_dir_, "current/cert.pem"); }
std::string TlsFiles::client_ca_path() const {
  return client_ca_.empty() ? std::string() : JoinPath(stage_dir_, "current/ca.pem");
}
int TlsFiles::generation() const {
  absl::MutexLock lock(&mu_);
  return generation_;
}

}  // namespace berth::server
