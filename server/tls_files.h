// The server's TLS files, re-read when the operator says so (SIGHUP) rather than whenever they
// change on disk. gRPC 1.51 offers only a file-watching certificate provider, which picks up
// whatever the files hold at its next poll (a key written before its certificate included); its
// C++ API has no way to push new certificates on demand. So Berth validates the configured PEM
// files (certificates parse, the key matches the certificate) and copies them into a private
// staging directory whose `current` link it swaps in one rename; gRPC watches the staged copies
// every second. Files that do not validate are refused and the previous ones stay in force.
#ifndef BERTH_SERVER_TLS_FILES_H_
#define BERTH_SERVER_TLS_FILES_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace berth::server {

class TlsFiles {
 public:
  // `cert`, `key`: the configured PEM files; `client_ca` may be empty (no mTLS). Stages them in
  // `stage_dir` (created with mode 0700). Errors name the flag and the file.
  static absl::StatusOr<std::unique_ptr<TlsFiles>> Create(std::string cert, std::string key,
                                                          std::string client_ca,
                                                          std::string stage_dir);

  // Validates the configured files again and stages them if they changed. On error the staged
  // files are untouched. Thread-safe.
  absl::Status Reload();

  // The staged copies gRPC watches (through the `current` link).
  std::string key_path() const;
  std::string cert_path() const;
  std::string client_ca_path() const;  // empty without mTLS
  // How many times new files were staged (the first staging included).
  int generation() const;

 private:
  TlsFiles() = default;
  absl::Status StageLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::string cert_, key_, client_ca_, stage_dir_;
  mutable absl::Mutex mu_;
  std::string staged_ ABSL_GUARDED_BY(mu_);  // cert + key + ca contents last staged
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace berth::server

#endif  // BERTH_SERVER_TLS_FILES_H_
