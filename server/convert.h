// Conversions between berth.v1 messages and core types, done once at the server boundary.
#ifndef BERTH_SERVER_CONVERT_H_
#define BERTH_SERVER_CONVERT_H_

#include "absl/status/statusor.h"
#include "berth/v1/inference.pb.h"
#include "berth/v1/models.pb.h"
#include "berth/v1/training.pb.h"
#include "core/infer/engine.h"
#include "core/jobs/job_spec.h"
#include "core/jobs/training.h"
#include "core/service/inference.h"
#include "core/service/model_import.h"
#include "core/store/store.h"

namespace berth::server {

// Every enum mapping between berth.v1 and core lives in this file (convert.cc). A value a
// mapping does not know becomes the facade's "invalid" value, which the facade refuses with
// the message callers have always seen.

// Inference: requests in, replies out.
service::ClassifyRequest FromProto(const v1::ClassifyRequest& request);
service::TokenizeRequest FromProto(const v1::TokenizeRequest& request);
void ToProto(const service::ClassifyReply& reply, v1::ClassifyResponse* out);
void ToProto(const service::TokenizeReply& reply, v1::TokenizeResponse* out);
service::EmbedRequest FromProto(const v1::EmbedRequest& request);
service::RerankRequest FromProto(const v1::RerankRequest& request);
void ToProto(const service::EmbedReply& reply, v1::EmbedResponse* out);
void ToProto(const service::RerankReply& reply, v1::RerankResponse* out);
service::Truncation FromProto(v1::Truncation truncation);

// Models.
template <typename Request>  // ClassifyRequest, TokenizeRequest, GetModelRequest, ...
service::ModelSelector ToSelector(const Request& r) {
  return service::ModelSelector{r.model(), r.version(), r.alias()};
}
service::ImportSource ToImportSource(const v1::ImportModelInfo& info);

// Training.
// The request as a job spec with the Trainer's defaults filled in; not yet validated.
jobs::JobSpec ToJobSpec(const v1::StartTrainingRequest& request);
data::DatasetOptions ToDatasetOptions(const v1::DatasetInfo& info);
jobs::ListJobsRequest FromProto(const v1::ListJobsRequest& request);
void ToProto(const jobs::StoredDataset& stored, v1::UploadDatasetResponse* out);
void ToProto(const jobs::Submission& submission, v1::StartTrainingResponse* out);
void ToProto(const jobs::JobPage& page, v1::ListJobsResponse* out);
void ToProto(const store::JobRecord& job, v1::JobStatus* out);
// The inverse of ToJobSpec: every field set.
void ToProto(const jobs::JobSpec& spec, v1::StartTrainingRequest* out);
void ToProto(const std::vector<store::JobEvent>& events, v1::ListJobEventsResponse* out);
void ToProto(const service::ModelStatistics& m, v1::LoadedModel* out);
// `config_json` is the text of the version's config.json ("" if unreadable).
void ToProto(const store::ModelRecord& model, const std::string& config_json,
             v1::ModelVersion* out);
void ToProto(const ClassifyResult& result, v1::Classification* out);
v1::JobState ToProto(store::JobState state);
std::optional<store::JobState> FromProto(v1::JobState state);

}  // namespace berth::server

#endif  // BERTH_SERVER_CONVERT_H_
