// Classification and tokenization against registered models.
#include "core/service/inference.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <tuple>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/service/model_ref.h"
#include "core/util/status_macros.h"

namespace berth::service {
namespace {

const std::vector<ClassifyResult> kNoResults;

// A text cut to fit, or an error when the request said not to cut (Truncation::kNone).
absl::Status RefuseTruncated(const Truncation truncation,
                             const std::vector<ClassifyResult>& results, const char* field,
                             int most) {
  if (truncation != Truncation::kNone) return absl::OkStatus();
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].truncated) {
      return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "]: ", results[i].num_tokens,
                                                     " tokens, more than the model takes (", most,
                                                     "); ask for truncation to cut it"));
    }
  }
  return absl::OkStatus();
}

TruncationMode EngineTruncation(Truncation t) {
  return t == Truncation::kLeft     ? TruncationMode::kLeft
         : t == Truncation::kWindow ? TruncationMode::kWindow
                                    : TruncationMode::kRight;
}

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

// The engine's own failures (a forward pass that threw) are the model's, not the request's.
absl::Status AsModelFailure(absl::Status s) {
  if (s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kUnknown)
    s.SetPayload(kModelFailurePayload, absl::Cord("1"));
  return s;
}

// Scores from the logits as `a` asks; the label, its score and the top k follow them.
void ApplyActivation(Activation a, int top_k, const std::vector<std::string>& labels,
                     ClassifyResult* r) {
  std::vector<float>& s = r->scores;
  s = r->logits;
  if (a == Activation::kSigmoid) {
    for (float& x : s) x = 1.0f / (1.0f + std::exp(-x));
  } else if (a == Activation::kSoftmax && !s.empty()) {
    const float m = *std::max_element(s.begin(), s.end());
    double sum = 0;
    for (float& x : s) sum += (x = std::exp(x - m));
    for (float& x : s) x = static_cast<float>(x / sum);
  }
  if (s.empty()) return;
  std::vector<size_t> order(s.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return s[x] > s[y]; });
  r->score = s[order[0]];
  r->label = order[0] < labels.size() ? labels[order[0]] : r->label;
  r->top_k.clear();
  for (size_t i = 0; i < order.size() && static_cast<int>(i) < top_k; ++i) {
    r->top_k.push_back(LabelScore{order[i] < labels.size() ? labels[order[i]] : "", s[order[i]]});
  }
}

// A text's (and its pair's) own tokens, with no special tokens around them and no cut.
absl::StatusOr<text::Encoding> Unframed(const text::Tokenizer& tok, const std::string& text,
                                        const std::string* pair) {
  text::Encoding e;
  RETURN_IF_ERROR(tok.Tokenize(text, text::InvalidUtf8::kReject, &e.input_ids, &e.tokens));
  if (pair != nullptr) {
    std::vector<int32_t> ids;
    std::vector<std::string> pieces;
    RETURN_IF_ERROR(tok.Tokenize(*pair, text::InvalidUtf8::kReject, &ids, &pieces));
    e.token_type_ids.assign(e.input_ids.size(), 0);
    e.token_type_ids.resize(e.input_ids.size() + ids.size(), tok.layout().second_segment_type_id);
    e.input_ids.insert(e.input_ids.end(), ids.begin(), ids.end());
    e.tokens.insert(e.tokens.end(), pieces.begin(), pieces.end());
  } else {
    e.token_type_ids.assign(e.input_ids.size(), 0);
  }
  e.attention_mask.assign(e.input_ids.size(), 1);
  e.num_tokens_untruncated = static_cast<int32_t>(e.input_ids.size());
  return e;
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
  const SteadyClock::time_point start = SteadyClock::now();
  RETURN_IF_ERROR(Validate(r));
  ASSIGN_OR_RETURN(ModelRef ref, Resolve(r.model));
  ASSIGN_OR_RETURN(ModelHandle handle, registry_->Acquire(ref));
  absl::StatusOr<ClassifyReply> reply = Run(handle, r, call);
  Count(handle, reply.status(), reply.ok() ? reply->results : kNoResults, start);
  return reply;
}

absl::StatusOr<ClassifyReply> Inference::Run(const ModelHandle& handle, const ClassifyRequest& r,
                                             const CallContext& call) const {
  ClassifyOptions o;
  o.truncation = EngineTruncation(r.truncation);
  const bool activate = r.activation != Activation::kDefault;
  o.max_length = static_cast<int>(r.max_length);
  if (r.stride > 0) o.stride = static_cast<int>(std::min<int64_t>(r.stride, 1 << 30));
  o.top_k = static_cast<int>(r.top_k);
  o.embed = r.embed;
  o.return_logits = r.raw_scores || activate;
  o.deadline = call.deadline;
  o.cancelled = call.cancelled;
  ClassifyReply reply;
  auto results = handle.engine->Classify(r.texts, r.text_pairs, o);
  if (!results.ok()) return AsModelFailure(results.status());
  reply.results = std::move(*results);
  reply.model = handle.record.name;
  reply.model_version = handle.record.version;
  reply.labels = handle.engine->model().config().id2label;
  RETURN_IF_ERROR(RefuseTruncated(r.truncation, reply.results,
                                  r.text_pairs.empty() ? "texts" : "texts/text_pairs",
                                  handle.engine->MaxLength(o.max_length).value_or(0)));
  const bool normalize = handle.engine->model().pooling().normalize;
  for (size_t i = 0; i < reply.results.size(); ++i) {
    ClassifyResult& c = reply.results[i];
    if (r.embed) FinishEmbedding(&c.embedding, 0, normalize);
    if (activate) ApplyActivation(r.activation, o.top_k, reply.labels, &c);
    if (!r.raw_scores) c.logits.clear();
  }
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

void Inference::Count(const ModelHandle& handle, const absl::Status& status,
                      const std::vector<ClassifyResult>& results,
                      SteadyClock::time_point start) const {
  auto ns = [](double seconds) { return static_cast<uint64_t>(std::llround(seconds * 1e9)); };
  const uint64_t took = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - start).count());
  const uint64_t now_ms = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
  absl::MutexLock lock(&mu_);
  CallFigures& f = figures_[{handle.record.name, handle.record.version}];
  Duration& outcome = status.ok() ? f.success : f.fail;
  ++outcome.count;
  outcome.ns += took;
  f.last_ms = now_ms;
  if (!status.ok()) return;
  // The call's time outside the batcher (checks, resolving, tokenizing), shared by its texts.
  double batcher = 0;
  for (const ClassifyResult& c : results) {
    batcher = std::max(batcher, c.queue_seconds + c.compute_seconds);
  }
  const uint64_t outside = took > ns(batcher) ? took - ns(batcher) : 0;
  const uint64_t n = std::max<uint64_t>(1, results.size());
  for (const ClassifyResult& c : results) {
    ++f.texts;
    ++f.queue.count;
    f.queue.ns += ns(c.queue_seconds);
    ++f.compute_input.count;
    f.compute_input.ns += outside / n;
    ++f.compute_infer.count;
    f.compute_infer.ns += ns(c.compute_seconds);
    ++f.compute_output.count;  // scores are made with the batch: in compute_infer
  }
}

absl::StatusOr<ModelStatistics> Inference::Statistics(const ModelSelector& model) const {
  ASSIGN_OR_RETURN(ModelRef ref, Resolve(model));
  ASSIGN_OR_RETURN(ModelHandle handle, registry_->Acquire(ref));
  ModelStatistics s;
  s.name = handle.record.name;
  s.version = handle.record.version;
  s.execution_count = static_cast<uint64_t>(handle.engine->batcher().stats().batches);
  absl::MutexLock lock(&mu_);
  auto it = figures_.find({s.name, s.version});
  if (it == figures_.end()) return s;
  const CallFigures& f = it->second;
  s.last_inference_ms = f.last_ms;
  s.inference_count = f.texts;
  s.success = f.success;
  s.fail = f.fail;
  s.queue = f.queue;
  s.compute_input = f.compute_input;
  s.compute_infer = f.compute_infer;
  s.compute_output = f.compute_output;
  return s;
}

std::vector<ModelStatistics> Inference::Loaded() const {
  std::vector<ModelStatistics> out;
  registry_->ForEachLoaded(
      [&](const std::string& name, int64_t version, const InferenceEngine& engine) {
        ModelStatistics s;
        s.name = name;
        s.version = version;
        const BatcherStats stats = engine.batcher().stats();
        s.execution_count = static_cast<uint64_t>(stats.batches);
        s.queue_depth = static_cast<int64_t>(stats.queue_depth);
        out.push_back(std::move(s));
      });
  absl::MutexLock lock(&mu_);
  for (ModelStatistics& s : out) {
    auto it = figures_.find({s.name, s.version});
    if (it == figures_.end()) continue;
    s.last_inference_ms = it->second.last_ms;
    s.inference_count = it->second.texts;
    s.success = it->second.success;
    s.fail = it->second.fail;
  }
  std::sort(out.begin(), out.end(), [](const ModelStatistics& a, const ModelStatistics& b) {
    return std::tie(a.name, a.version) < std::tie(b.name, b.version);
  });
  return out;
}

absl::StatusOr<ModelInfo> Inference::Describe(const ModelSelector& model) const {
  ASSIGN_OR_RETURN(ModelRef ref, Resolve(model));
  ASSIGN_OR_RETURN(ModelHandle handle, registry_->Acquire(ref));
  const SequenceClassifier& m = handle.engine->model();
  ModelInfo info;
  info.name = handle.record.name;
  info.version = handle.record.version;
  info.labels = m.config().id2label;
  info.multi_label = m.config().multi_label();
  info.model_type = m.config().model_type;
  // The weights' type as TEI reports it ("float32", "bfloat16"); "int8" for the quantized layers.
  info.dtype = m.precision() == InferencePrecision::kBf16   ? "bfloat16"
               : m.precision() == InferencePrecision::kInt8 ? "int8"
                                                            : "float32";
  ASSIGN_OR_RETURN(info.max_length, handle.engine->MaxLength(0));
  info.embedding_dimension = m.embedding_dimension();
  info.max_batch_tokens = handle.engine->batcher().options().max_batch_tokens;
  return info;
}

absl::Status Inference::Validate(const EmbedRequest& r) const {
  RETURN_IF_ERROR(Resolve(r.model).status());
  RETURN_IF_ERROR(ValidateTexts(r.texts, {}));
  RETURN_IF_ERROR(ValidateMaxLength(r.max_length));
  if (r.truncation == Truncation::kWindow)
    return absl::InvalidArgumentError("truncation: an embedding takes RIGHT, LEFT or none");
  if (r.truncation == Truncation::kInvalid)
    return absl::InvalidArgumentError("truncation: unknown mode");
  if (r.dimensions.has_value() && *r.dimensions < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("dimensions: must be at least 1 (got ", *r.dimensions, ")"));
  return absl::OkStatus();
}

absl::StatusOr<EmbedReply> Inference::Embed(const EmbedRequest& r, const CallContext& call) const {
  const SteadyClock::time_point start = SteadyClock::now();
  RETURN_IF_ERROR(Validate(r));
  ASSIGN_OR_RETURN(ModelRef ref, Resolve(r.model));
  ASSIGN_OR_RETURN(ModelHandle handle, registry_->Acquire(ref));
  const SequenceClassifier& model = handle.engine->model();
  const int64_t full = model.embedding_dimension();
  if (r.dimensions.has_value() && *r.dimensions > full) {
    return absl::InvalidArgumentError(
        absl::StrCat("dimensions: ", *r.dimensions, " is more than the model's ", full));
  }
  ClassifyOptions o;
  o.truncation = EngineTruncation(r.truncation);
  o.max_length = static_cast<int>(r.max_length);
  o.embed = true;
  o.deadline = call.deadline;
  o.cancelled = call.cancelled;
  auto results = handle.engine->Classify(r.texts, {}, o);
  absl::Status status = results.ok() ? absl::OkStatus() : AsModelFailure(results.status());
  if (status.ok()) {
    status = RefuseTruncated(r.truncation, *results, "texts",
                             handle.engine->MaxLength(o.max_length, true).value_or(0));
  }
  Count(handle, status, status.ok() ? *results : kNoResults, start);
  RETURN_IF_ERROR(status);
  EmbedReply reply;
  reply.model = handle.record.name;
  reply.model_version = handle.record.version;
  reply.dimensions = r.dimensions.value_or(full);
  reply.normalized = r.normalize.value_or(model.pooling().normalize);
  reply.results = std::move(*results);
  std::vector<double> queue_each;
  for (ClassifyResult& c : reply.results) {
    FinishEmbedding(&c.embedding, reply.dimensions, reply.normalized);
    c.scores.clear();
    c.top_k.clear();
    c.predicted.clear();
    queue_each.push_back(c.queue_seconds);
  }
  if (observer_ != nullptr) {
    observer_->OnClassified(reply.model, static_cast<int64_t>(reply.results.size()), queue_each);
  }
  return reply;
}

absl::StatusOr<RerankReply> Inference::Rerank(const RerankRequest& r,
                                              const CallContext& call) const {
  if (r.texts.empty()) return absl::InvalidArgumentError("texts: at least one text to rank");
  ClassifyRequest c;
  c.model = r.model;
  c.texts.assign(r.texts.size(), r.query);
  c.text_pairs = r.texts;
  c.truncation = r.truncation == Truncation::kWindow ? Truncation::kInvalid : r.truncation;
  c.raw_scores = true;
  if (r.query.empty()) return absl::InvalidArgumentError("query: must not be empty");
  ASSIGN_OR_RETURN(ClassifyReply classified, Classify(c, call));
  if (classified.labels.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("model: ", classified.model, " has ",
                                                   classified.labels.size(),
                                                   " labels; a reranker (cross-encoder) has one"));
  }
  RerankReply reply;
  reply.model = classified.model;
  reply.model_version = classified.model_version;
  for (size_t i = 0; i < classified.results.size(); ++i) {
    const float logit = classified.results[i].logits.at(0);
    // CrossEncoder.predict's default for one label: the sigmoid of the logit.
    reply.results.push_back(
        {static_cast<int64_t>(i),
         r.raw_scores ? logit : static_cast<float>(1.0 / (1.0 + std::exp(-double{logit})))});
  }
  std::stable_sort(reply.results.begin(), reply.results.end(),
                   [](const RerankResult& a, const RerankResult& b) { return a.score > b.score; });
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
  if (r.truncation == Truncation::kNone) o.truncation = false;  // an over-long text is an error
  TokenizeReply reply;
  reply.model_version = handle.record.version;
  const text::SpecialTokenLayout& layout = tok.layout();
  for (size_t i = 0; i < r.texts.size(); ++i) {
    absl::StatusOr<text::Encoding> e;
    if (r.add_special_tokens) {
      e = r.text_pairs.empty() ? tok.Encode(r.texts[i], o)
                               : tok.EncodePair(r.texts[i], r.text_pairs[i], o);
    } else {
      e = Unframed(tok, r.texts[i], r.text_pairs.empty() ? nullptr : &r.text_pairs[i]);
    }
    if (!e.ok())
      return absl::InvalidArgumentError(absl::StrCat("texts[", i, "]: ", e.status().message()));
    std::vector<bool> special;
    for (size_t k = 0; k < e->input_ids.size(); ++k) {
      const int32_t id = e->input_ids[k];
      // The framing tokens (and padding) are special; an unknown word's [UNK] is the text's.
      special.push_back(r.add_special_tokens &&
                        (id == layout.cls_id || id == layout.sep_id || id == layout.pad_id));
    }
    reply.special.push_back(std::move(special));
    reply.encodings.push_back(std::move(*e));
  }
  return reply;
}

absl::StatusOr<DecodeReply> Inference::Decode(const DecodeRequest& r) const {
  if (r.ids.empty()) return absl::InvalidArgumentError("ids: at least one sequence is required");
  if (static_cast<int64_t>(r.ids.size()) > limits_.max_texts) {
    return absl::InvalidArgumentError(absl::StrCat("ids: ", r.ids.size(),
                                                   " sequences; this server takes at most ",
                                                   limits_.max_texts, " per request"));
  }
  for (size_t i = 0; i < r.ids.size(); ++i) {
    if (static_cast<int64_t>(r.ids[i].size()) > limits_.max_text_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("ids[", i, "]: ", r.ids[i].size(),
                                                     " ids; at most ", limits_.max_text_bytes));
    }
  }
  ASSIGN_OR_RETURN(ModelRef ref, Resolve(r.model));
  ASSIGN_OR_RETURN(ModelHandle handle, registry_->Acquire(ref));
  const text::Tokenizer& tok = handle.engine->model().tokenizer();
  DecodeReply reply;
  reply.model_version = handle.record.version;
  for (size_t i = 0; i < r.ids.size(); ++i) {
    absl::StatusOr<std::string> text = tok.Decode(r.ids[i], r.skip_special_tokens);
    if (!text.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("ids[", i, "]", text.status().message()));
    }
    reply.texts.push_back(std::move(*text));
  }
  return reply;
}

}  // namespace berth::service
