// The one place where Berth's absl::Status errors become gRPC statuses.
#ifndef BERTH_SERVER_STATUS_H_
#define BERTH_SERVER_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace berth::server {

// invalid → INVALID_ARGUMENT, unknown → NOT_FOUND, full queue → RESOURCE_EXHAUSTED, not ready
// → FAILED_PRECONDITION, shutting down → UNAVAILABLE, ... (absl and gRPC share canonical codes;
// an unknown code becomes UNKNOWN).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace berth::server

#endif  // BERTH_SERVER_STATUS_H_
