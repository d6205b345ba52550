// Classification and tokenization against registered models.
#include "core/service/inference.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/service/model_ref.h"
#include "core/util/status_macros.h"

namespace berth::service {
namespace {

// One bound for Classify and Tokenize; 3 fits [CLS], one token and [SEP].
absl::Status ValidateMaxLength(int64_t max_length) {
  if (max_length != 0 && (max_length < 3 || max_length > 8192)) {
    return absl::InvalidArgumentError(
        "max_length: must be 0 (the model's maximum) or in [3, 8192]");
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelRef> Resolve(const ModelSelector& m) {
  return ParseModelRef(m.model, m.version, m.alias, "model");
}

}  // namespace

absl::Status Inference::ValidateTexts(const std::vector<std::string>& texts,
                                      const std::vector<std::string>& pairs) const {
  if (texts.empty()) return absl::InvalidArgumentError("texts: at least one text is required");
  if (static_cast<int64_t>(texts.size()) > limits_.max_texts) {
    return absl::InvalidArgumentError(absl::StrCat("texts: ", texts.size(),
                                                   " texts; this server takes at most ",
                                                   limits_.max_texts, " per request"));
  }
  if (!pairs.empty() && pairs.size() != texts.size()) {
    return absl::InvalidArgumentError(absl::StrCat("text_pairs: ", pairs.size(), " pairs for ",
                                                   texts.size(),
                                                   " texts (give one per text or none)"));
  }
  for (const auto* list : {&texts, &pairs}) {
    const char* field = list == &texts ? "texts" : "text_pairs";
    for (size_t i = 0; i < list->size(); ++i) {
      if (static_cast<int64_t>((*list)[i].size()) > limits_.max_text_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "]: ", (*list)[i].size(),
                                                       " bytes; this server takes at most ",
                                                       limits_.max_text_bytes));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Inference::Validate(const ClassifyRequest& r) const {
  RETURN_IF_ERROR(Resolve(r.model).status());
  RETURN_IF_ERROR(ValidateTexts(r.texts, r.text_pairs));
  if (r.top_k < 0 || r.top_k > 1000)
    return absl::InvalidArgumentError("top_k: must be in [0, 1000]");
  RETURN_IF_ERROR(ValidateMaxLength(r.max_length));
  if (r.stride < 0) return absl::InvalidArgumentError("stride: must not be negative");
  if (r.truncation == Truncation::kInvalid)
    return absl::InvalidArgumentError("truncation: unknown mode");
  return absl::OkStatus();
}

absl::Status Inference::Validate(const TokenizeRequest& r) const {
  RETURN_IF_ERROR(Resolve(r.model).status());
  RETURN_IF_ERROR(ValidateTexts(r.texts, r.text_pairs));
  RETURN_IF_ERROR(ValidateMaxLength(r.max_length));
  if (r.truncation == Truncation::kWindow)
    return absl::InvalidArgumentError("truncation: Tokenize supports RIGHT or LEFT");
  if (r.truncation == Truncation::kInvalid)
    return absl::InvalidArgumentError("truncation: unknown mode");
  return absl::OkStatus();
}

absl::StatusOr<ClassifyReply> Inference::Classify(const ClassifyRequest& r,
                                                  const CallContext& call) const {
  RETURN_IF_ERROR(Validate(r));
  ASSIGN_OR_RETURN(ModelRef ref, Resolve(r.model));
  ASSIGN_OR_RETURN(ModelHandle handle, registry_->Acquire(ref));
  ClassifyOptions o;
  o.truncation = r.truncation == Truncation::kLeft     ? TruncationMode::kLeft
                 : r.truncation == Truncation::kWindow ? TruncationMode::kWindow
                                                       : TruncationMode::kRight;
  o.max_length = static_cast<int>(r.max_length);
  if (r.stride > 0) o.stride = static_cast<int>(std::min<int64_t>(r.stride, 1 << 30));
  o.top_k = static_cast<int>(r.top_k);
  o.return_logits = r.raw_scores;
  o.deadline = call.deadline;
  o.cancelled = call.cancelled;
  ClassifyReply reply;
  ASSIGN_OR_RETURN(reply.results, handle.engine->Classify(r.texts, r.text_pairs, o));
  reply.model = handle.record.name;
  reply.model_version = handle.record.version;
  reply.labels = handle.engine->model().config().id2label;
  std::vector<double> queue_each;
  queue_each.reserve(reply.results.size());
  for (const ClassifyResult& c : reply.results) {
    reply.queue_seconds = std::max(reply.queue_seconds, c.queue_seconds);
    reply.compute_seconds = std::max(reply.compute_seconds, c.compute_seconds);
    queue_each.push_back(c.queue_seconds);
  }
  if (observer_ != nullptr) {
    observer_->OnClassified(reply.model, static_cast<int64_t>(reply.results.size()), queue_each);
  }
  return reply;
}

absl::StatusOr<TokenizeReply> Inference::Tokenize(const TokenizeRequest& r) const {
  RETURN_IF_ERROR(Validate(r));
  ASSIGN_OR_RETURN(ModelRef ref, Resolve(r.model));
  ASSIGN_OR_RETURN(ModelHandle handle, registry_->Acquire(ref));
  const text::Tokenizer& tok = handle.engine->model().tokenizer();
  text::EncodeOptions o;
  o.max_length = static_cast<int>(r.max_length);
  o.return_tokens = true;
  if (r.truncation == Truncation::kLeft) o.side = text::TruncationSide::kLeft;
  if (r.truncation == Truncation::kRight) o.side = text::TruncationSide::kRight;
  TokenizeReply reply;
  reply.model_version = handle.record.version;
  for (size_t i = 0; i < r.texts.size(); ++i) {
    auto e = r.text_pairs.empty() ? tok.Encode(r.texts[i], o)
                                  : tok.EncodePair(r.texts[i], r.text_pairs[i], o);
    if (!e.ok())
      return absl::InvalidArgumentError(absl::StrCat("texts[", i, "]: ", e.status().message()));
    reply.encodings.push_back(std::move(*e));
  }
  return reply;
}

}  // namespace berth::service
