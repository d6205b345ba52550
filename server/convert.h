// Conversions between berth.v1 messages and core types, done once at the server boundary.
#ifndef BERTH_SERVER_CONVERT_H_
#define BERTH_SERVER_CONVERT_H_

#include "absl/status/statusor.h"
#include "berth/v1/inference.pb.h"
#include "berth/v1/models.pb.h"
#include "berth/v1/training.pb.h"
#include "core/infer/engine.h"
#include "core/service/job_spec.h"
#include "core/store/store.h"

namespace berth::server {

// The request as a job spec with the Trainer's defaults filled in; not yet validated.
service::JobSpec ToJobSpec(const v1::StartTrainingRequest& request);
void ToProto(const store::JobRecord& job, v1::JobStatus* out);
// `config_json` is the text of the version's config.json ("" if unreadable).
void ToProto(const store::ModelRecord& model, const std::string& config_json,
             v1::ModelVersion* out);
void ToProto(const ClassifyResult& result, v1::Classification* out);
v1::JobState ToProto(store::JobState state);
std::optional<store::JobState> FromProto(v1::JobState state);

}  // namespace berth::server

#endif  // BERTH_SERVER_CONVERT_H_
