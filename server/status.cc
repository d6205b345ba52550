// absl::Status → grpc::Status.
#include "server/status.h"

#include <string>

#include "absl/strings/cord.h"
#include "core/service/inference.h"

namespace berth::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const int code = static_cast<int>(status.code());
  const grpc::StatusCode grpc_code =
      code > 0 && code <= static_cast<int>(grpc::StatusCode::UNAUTHENTICATED)
          ? static_cast<grpc::StatusCode>(code)
          : grpc::StatusCode::UNKNOWN;
  return grpc::Status(grpc_code, std::string(status.message()));
}

namespace {
constexpr const char kMalformed[] = "berth.dev/malformed";
constexpr const char* kModelFailure = service::kModelFailurePayload;
}  // namespace

absl::Status MalformedRequest(absl::string_view message) {
  absl::Status s = absl::InvalidArgumentError(message);
  s.SetPayload(kMalformed, absl::Cord("1"));
  return s;
}

absl::Status ModelFailure(const absl::Status& cause) {
  absl::Status s = cause;
  s.SetPayload(kModelFailure, absl::Cord("1"));
  return s;
}

HttpError ToHttpError(const absl::Status& s) {
  if (s.GetPayload(kMalformed)) return {400, "Validation"};
  if (s.GetPayload(kModelFailure)) return {424, "Backend"};
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return {200, ""};
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return {422, "Validation"};
    case absl::StatusCode::kUnauthenticated:
      return {401, "Unauthenticated"};
    case absl::StatusCode::kPermissionDenied:
      return {403, "PermissionDenied"};
    case absl::StatusCode::kNotFound:
      return {404, "NotFound"};
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition:
      return {409, "Conflict"};
    case absl::StatusCode::kResourceExhausted:
      return {429, "Overloaded"};
    case absl::StatusCode::kCancelled:
      return {499, "Cancelled"};
    case absl::StatusCode::kUnavailable:
      return {503, "Unhealthy"};
    case absl::StatusCode::kDeadlineExceeded:
      return {504, "Timeout"};
    case absl::StatusCode::kUnimplemented:
      return {501, "Unimplemented"};
    default:
      return {500, "Internal"};
  }
}

}  // namespace berth::server
