// Token authentication and role checks.
#include "server/auth.h"

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/util/digest.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"

namespace berth::server {
namespace {

// Compares equal-length byte strings without an early exit.
bool ConstantTimeEqual(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

const char* RoleName(Role r) {
  switch (r) {
    case Role::kClassify:
      return "classify";
    case Role::kTrain:
      return "train";
    case Role::kAdmin:
      return "admin";
    case Role::kRead:
      return "read";
  }
  return "?";
}

}  // namespace

absl::StatusOr<std::vector<TokenAuthenticator::Entry>> TokenAuthenticator::Parse(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("--auth-tokens: cannot read ", path));
  std::vector<Entry> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::string where = absl::StrCat(path, ":", n);
    ASSIGN_OR_RETURN(Json j, ParseJson(line, where));
    if (!j.is_object() || !j.contains("id") || !j["id"].is_string() || !j.contains("sha256") ||
        !j["sha256"].is_string() || !j.contains("role") || !j["role"].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": needs string fields id, sha256 and role"));
    }
    Entry e;
    e.principal.id = j["id"].get<std::string>();
    if (e.principal.id.empty() || e.principal.id.size() > 64) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": id must be 1-64 characters"));
    }
    const std::string hex = absl::AsciiStrToLower(j["sha256"].get<std::string>());
    if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": sha256 must be 64 hex digits (the secret's digest)"));
    }
    e.digest = absl::HexStringToBytes(hex);
    const std::string role = j["role"].get<std::string>();
    if (role == "classify") {
      e.principal.role = Role::kClassify;
    } else if (role == "train") {
      e.principal.role = Role::kTrain;
    } else if (role == "admin") {
      e.principal.role = Role::kAdmin;
    } else if (role == "read") {
      e.principal.role = Role::kRead;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": role must be classify, read, train or admin"));
    }
    if (j.contains("model_prefix")) {
      if (!j["model_prefix"].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": model_prefix must be a string"));
      }
      e.principal.model_prefix = j["model_prefix"].get<std::string>();
    }
    for (const Entry& other : out) {
      if (other.principal.id == e.principal.id) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": id '", e.principal.id, "' appears twice"));
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::Load(
    const std::string& path) {
  std::unique_ptr<TokenAuthenticator> a(new TokenAuthenticator(path));
  RETURN_IF_ERROR(a->Reload());
  return a;
}

absl::Status TokenAuthenticator::Reload() {
  ASSIGN_OR_RETURN(std::vector<Entry> entries, Parse(path_));
  absl::MutexLock lock(&mu_);
  entries_ = std::move(entries);
  return absl::OkStatus();
}

size_t TokenAuthenticator::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

absl::StatusOr<Principal> TokenAuthenticator::Authenticate(
    const grpc::CallbackServerContext& context) const {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return Authenticate(std::nullopt);
  return Authenticate(absl::string_view(it->second.data(), it->second.size()));
}

absl::StatusOr<Principal> TokenAuthenticator::Authenticate(
    std::optional<absl::string_view> authorization) const {
  if (!authorization) {
    return absl::UnauthenticatedError(
        "authorization: missing (send 'authorization: Bearer <token>')");
  }
  const absl::string_view value = *authorization;
  if (!absl::StartsWith(value, "Bearer ") || value.size() <= 7) {
    return absl::UnauthenticatedError("authorization: expected 'Bearer <token>'");
  }
  const std::string digest = absl::HexStringToBytes(Sha256Hex(value.substr(7)));
  absl::MutexLock lock(&mu_);
  const Entry* found = nullptr;
  for (const Entry& e : entries_) {  // every entry is compared: the time does not say which matched
    if (ConstantTimeEqual(e.digest, digest) && found == nullptr) found = &e;
  }
  if (found == nullptr) return absl::UnauthenticatedError("authorization: unknown token");
  return found->principal;
}

absl::Status Authorize(const Principal& p, Permission need, absl::string_view model) {
  bool allowed = false;
  const char* needs = "";
  switch (need) {
    case Permission::kClassify:
      allowed = true;
      break;
    case Permission::kSeeJobs:
      allowed = p.role != Role::kClassify;
      needs = "read, train or admin";
      break;
    case Permission::kTrain:
      allowed = p.role == Role::kTrain || p.role == Role::kAdmin;
      needs = "train or admin";
      break;
    case Permission::kAdmin:
      allowed = p.role == Role::kAdmin;
      needs = "admin";
      break;
  }
  if (!allowed) {
    return absl::PermissionDeniedError(absl::StrCat("token '", p.id, "' has role ",
                                                    RoleName(p.role), "; this call needs ", needs));
  }
  if (!model.empty() && !p.model_prefix.empty() && !absl::StartsWith(model, p.model_prefix)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "token '", p.id, "' may only use models whose names start with '", p.model_prefix, "'"));
  }
  return absl::OkStatus();
}

}  // namespace berth::server
