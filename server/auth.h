// API tokens with roles. A token file holds one JSON object per line:
//   {"id": "ci-bot", "sha256": "<hex SHA-256 of the secret>", "role": "classify", "model_prefix":
//   "team-a-"}
// Clients send `authorization: Bearer <secret>`. Only digests are stored, and a presented secret
// is hashed and compared with every digest in constant time.
#ifndef BERTH_SERVER_AUTH_H_
#define BERTH_SERVER_AUTH_H_

#include <grpcpp/server_context.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace berth::server {

// classify ⊂ train ⊂ admin, and read: classify, and see every job without changing any (a
// console or dashboard that watches but may not start, cancel or delete).
enum class Role { kClassify = 0, kTrain = 1, kAdmin = 2, kRead = 3 };

struct Principal {
  std::string id;
  Role role = Role::kClassify;
  std::string model_prefix;  // "" : every model
};

// What a call needs.
enum class Permission {
  kClassify,  // Classify, ClassifyStream, Tokenize, ListModels, GetModel
  kSeeJobs,   // GetStatus, WatchJob, ListJobs, ListJobEvents (read, train and admin)
  kTrain,     // UploadDataset, StartTraining, CancelJob (of own jobs)
  kAdmin,     // DeleteModel, SetAlias, other tokens' jobs
};

class TokenAuthenticator {
 public:
  // Reads the token file; errors name the file and line.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> Load(const std::string& path);
  // Re-reads the file (SIGHUP). On error the tokens in force stay and the error is returned.
  absl::Status Reload();

  // The caller's principal from its `authorization` metadata: UNAUTHENTICATED when it is
  // missing, malformed or unknown.
  absl::StatusOr<Principal> Authenticate(const grpc::CallbackServerContext& context) const;
  // The same for the value of an Authorization header (any transport); nullopt: none was sent.
  absl::StatusOr<Principal> Authenticate(std::optional<absl::string_view> authorization) const;

  size_t size() const;

 private:
  struct Entry {
    std::string digest;  // 32 raw bytes
    Principal principal;
  };
  static absl::StatusOr<std::vector<Entry>> Parse(const std::string& path);

  const std::string path_;
  mutable absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);

  explicit TokenAuthenticator(std::string path) : path_(std::move(path)) {}
};

// PERMISSION_DENIED unless `p` may do `need` on `model` ("" when the call names no model).
absl::Status Authorize(const Principal& p, Permission need, absl::string_view model);

}  // namespace berth::server

#endif  // BERTH_SERVER_AUTH_H_
