// The one place where Berth's absl::Status errors become each transport's codes: gRPC
// statuses, and HTTP statuses with the error type of the JSON error body.
#ifndef BERTH_SERVER_STATUS_H_
#define BERTH_SERVER_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace berth::server {

// invalid → INVALID_ARGUMENT, unknown → NOT_FOUND, full queue → RESOURCE_EXHAUSTED, not ready
// → FAILED_PRECONDITION, shutting down → UNAVAILABLE, ... (absl and gRPC share canonical codes;
// an unknown code becomes UNKNOWN).
grpc::Status ToGrpcStatus(const absl::Status& status);

// HTTP, by meaning: a request that breaks a rule 422 (Validation), a body that is not what its
// route reads 400 (MalformedRequest), unauthenticated 401, not permitted 403, not found 404, a
// state that refuses it 409, a model that failed 424 (Backend, ModelFailure), overloaded 429
// (Overloaded, with Retry-After), cancelled by the client 499, unavailable or draining 503
// (Unhealthy), past its deadline 504; anything else 500. The types are TEI's where TEI has one.
struct HttpError {
  int status;
  const char* type;
};
HttpError ToHttpError(const absl::Status& status);

// A request body its route cannot read (malformed JSON, a field of the wrong type): 400 where a
// request that reads but breaks a rule is 422. The message names the field.
absl::Status MalformedRequest(absl::string_view message);
// A model that failed while answering (its forward pass or its files): 424.
absl::Status ModelFailure(const absl::Status& cause);

}  // namespace berth::server

#endif  // BERTH_SERVER_STATUS_H_
