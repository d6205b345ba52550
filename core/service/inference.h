// The inference facade: what Classify, its streaming form and Tokenize do between a request and
// the engine, for every front door (gRPC, HTTP, a test's JSON adapter). It owns the rules:
// validation with the messages callers see, the limits, model and alias resolution, option
// mapping, deadlines and cancellation, and reporting to the observer. Requests and replies are
// plain structs; errors are absl::Status by meaning (INVALID_ARGUMENT naming the field,
// NOT_FOUND, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, CANCELLED), each door maps them once.
// Classify and Tokenize block (tokenizing, waiting for a batch): never call them on a network
// thread.
#ifndef BERTH_CORE_SERVICE_INFERENCE_H_
#define BERTH_CORE_SERVICE_INFERENCE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/infer/engine.h"
#include "core/service/limits.h"
#include "core/service/model_registry.h"
#include "core/text/tokenizer.h"

namespace berth::service {

// How long texts are cut. kDefault is what a request that says nothing gets (right for
// Classify and Tokenize); kNone refuses a text longer than the model takes (TEI's
// truncate: false); kInvalid is what a door makes of a value it does not know, refused by
// validation with the message callers have always seen.
enum class Truncation { kDefault, kRight, kLeft, kWindow, kNone, kInvalid };

// How scores come from the logits: the model's own (softmax, or sigmoid per label for a
// multi-label model), softmax or sigmoid asked for, or none (the logits themselves).
enum class Activation { kDefault, kSoftmax, kSigmoid, kNone };

// An error the model itself raised while answering (its forward pass), as opposed to one about
// the request: it carries this payload, which the doors map (HTTP 424).
inline constexpr char kModelFailurePayload[] = "berth.dev/model-failure";

// Which model answers: "NAME", "NAME:VERSION" or "NAME@ALIAS", with version or alias also
// possible apart (a conflict is an error naming the field).
struct ModelSelector {
  std::string model;
  int64_t version = 0;
  std::string alias;
};

struct ClassifyRequest {
  ModelSelector model;
  std::vector<std::string> texts;
  std::vector<std::string> text_pairs;  // empty, or one second segment per text
  int64_t top_k = 0;                    // > 0: also the k best labels
  bool raw_scores = false;              // also the logits
  Truncation truncation = Truncation::kDefault;
  int64_t max_length = 0;  // 0: the model's maximum
  int64_t stride = 0;      // window overlap (kWindow); 0: 128
  Activation activation = Activation::kDefault;
  // Also each text's sentence embedding (ClassifyResult::embedding), normalised as the model's
  // modules.json says, from the same forward pass (the Open Inference Protocol's `embedding`).
  bool embed = false;
};

struct ClassifyReply {
  std::string model;
  int64_t model_version = 0;
  std::vector<std::string> labels;      // the model's, in id order
  std::vector<ClassifyResult> results;  // one per text, in order
  double queue_seconds = 0;             // the slowest text's wait for a batch
  double compute_seconds = 0;
};

struct TokenizeRequest {
  ModelSelector model;
  std::vector<std::string> texts;
  std::vector<std::string> text_pairs;
  int64_t max_length = 0;
  Truncation truncation = Truncation::kDefault;  // right or left
  bool add_special_tokens = true;                // false: the text's own tokens, unframed and uncut
};

struct TokenizeReply {
  int64_t model_version = 0;
  std::vector<text::Encoding> encodings;   // one per text, tokens included
  std::vector<std::vector<bool>> special;  // per encoding, per token: a special token
};

// Sentence embeddings (TEI's /embed, OpenAI's /v1/embeddings): the model's pooling
// (sentence-transformers' files, or mean), then `dimensions` (Matryoshka: the first N
// components), then normalisation when asked (or when the model has a Normalize module).
struct EmbedRequest {
  ModelSelector model;
  std::vector<std::string> texts;
  Truncation truncation = Truncation::kDefault;  // right, left, or none (an over-long text fails)
  int64_t max_length = 0;                        // 0: the model's max_seq_length
  std::optional<bool> normalize;                 // unset: as the model's modules.json says
  std::optional<int64_t> dimensions;             // unset: all; else in [1, the model's]
};

struct EmbedReply {
  std::string model;
  int64_t model_version = 0;
  int64_t dimensions = 0;  // of each embedding returned
  bool normalized = false;
  // One per text, in order: embedding, num_tokens, truncated and the timings are set.
  std::vector<ClassifyResult> results;
};

// A query against texts through a cross-encoder (a pair classifier with one label; TEI's
// /rerank): each (query, text) pair's score, sigmoid of the logit unless raw_scores, the
// results sorted best first with their indices.
struct RerankRequest {
  ModelSelector model;
  std::string query;
  std::vector<std::string> texts;
  bool raw_scores = false;
  Truncation truncation = Truncation::kDefault;  // right, left or none
};

struct RerankResult {
  int64_t index = 0;  // into the request's texts
  float score = 0;
};

struct RerankReply {
  std::string model;
  int64_t model_version = 0;
  std::vector<RerankResult> results;  // best first (ties: lower index first)
};

// Ids back to text (TEI's /decode): one text per sequence.
struct DecodeRequest {
  ModelSelector model;
  std::vector<std::vector<int32_t>> ids;
  bool skip_special_tokens = true;
};

struct DecodeReply {
  int64_t model_version = 0;
  std::vector<std::string> texts;
};

// What a door tells about a model (TEI's /info, the Open Inference Protocol's metadata).
struct ModelInfo {
  std::string name;
  int64_t version = 0;
  std::vector<std::string> labels;  // in id order
  bool multi_label = false;
  std::string model_type;  // config.json's (bert, roberta, ...)
  std::string dtype;       // the weights it classifies with: float32 or bfloat16
  int max_length = 0;      // tokens per text, special tokens included
  int64_t max_batch_tokens = 0;
  int64_t embedding_dimension = 0;  // of its sentence embeddings
};

// A count of events and the time they took, summed (the Open Inference Protocol's statistics).
struct Duration {
  uint64_t count = 0;
  uint64_t ns = 0;
};

// What a model version has answered since this process loaded it: the facade's calls and the
// engine's own figures. Calls: `success` and `fail` (calls that reached the model, each with its
// time from its arrival at the facade to its answer), `inference_count` (texts answered) and
// `last_inference`. The engine's: `execution_count` (forward passes run, shared by every
// caller), `queue` (per text, its wait for a batch) and `compute_infer` (per text, the forward
// pass it ran in). `compute_input` is, per text, its share of the call's time outside the
// batcher (checks, resolving the model, tokenizing); `compute_output` counts every text with no
// time of its own (scores are made with the batch, inside compute_infer). The three compute
// counts are equal, as Triton's are (perf_analyzer requires it).
struct ModelStatistics {
  std::string name;
  int64_t version = 0;
  uint64_t last_inference_ms = 0;  // since the Unix epoch; 0: never
  uint64_t inference_count = 0;
  uint64_t execution_count = 0;
  Duration success, fail, queue, compute_input, compute_infer, compute_output;
  int64_t queue_depth = 0;  // requests waiting for a batch now
};

// What a call carries besides its request: when to give up, and whether its caller has gone
// (polled before each piece's forward pass; true drops the piece and fails with CANCELLED).
struct CallContext {
  SteadyClock::time_point deadline = SteadyClock::time_point::max();
  CancelProbe cancelled;
};

class Inference {
 public:
  // `streams` counts the streams open across the service (ClassifyStream here); `observer`
  // may be null.
  Inference(ModelRegistry* registry, const Limits& limits, Slots* streams, Observer* observer)
      : registry_(registry), limits_(limits), streams_(streams), observer_(observer) {}

  absl::StatusOr<ClassifyReply> Classify(const ClassifyRequest& request,
                                         const CallContext& call = {}) const;
  absl::StatusOr<TokenizeReply> Tokenize(const TokenizeRequest& request) const;
  absl::StatusOr<EmbedReply> Embed(const EmbedRequest& request, const CallContext& call = {}) const;
  absl::StatusOr<RerankReply> Rerank(const RerankRequest& request,
                                     const CallContext& call = {}) const;
  // At most max_texts sequences, each at most max_text_bytes ids; loads the model.
  absl::StatusOr<DecodeReply> Decode(const DecodeRequest& request) const;
  // Loads the model if it is not loaded.
  absl::StatusOr<ModelInfo> Describe(const ModelSelector& model) const;
  // The model version's figures (ModelStatistics); loads it if it is not loaded.
  absl::StatusOr<ModelStatistics> Statistics(const ModelSelector& model) const;
  // Every loaded model version's figures now (loads nothing), by name then version.
  std::vector<ModelStatistics> Loaded() const;

  // The streaming form: a stream holds one of the service's stream slots while it is open, and
  // each of its requests is one Classify.
  absl::StatusOr<Slots::Held> OpenStream() const { return streams_->Take(); }

  const Limits& limits() const { return limits_; }

 private:
  absl::Status Validate(const ClassifyRequest& r) const;
  absl::Status Validate(const TokenizeRequest& r) const;
  absl::Status Validate(const EmbedRequest& r) const;
  absl::Status ValidateTexts(const std::vector<std::string>& texts,
                             const std::vector<std::string>& pairs) const;
  absl::StatusOr<ClassifyReply> Run(const ModelHandle& handle, const ClassifyRequest& r,
                                    const CallContext& call) const;
  // Counts one call to a model version in its statistics.
  void Count(const ModelHandle& handle, const absl::Status& status,
             const std::vector<ClassifyResult>& results, SteadyClock::time_point start) const;

  // Per model version: the calls' side of ModelStatistics.
  struct CallFigures {
    Duration success, fail, queue, compute_input, compute_infer, compute_output;
    uint64_t texts = 0;
    uint64_t last_ms = 0;
  };

  ModelRegistry* const registry_;
  const Limits limits_;
  Slots* const streams_;
  Observer* const observer_;
  mutable absl::Mutex mu_;
  mutable std::map<std::pair<std::string, int64_t>, CallFigures> figures_ ABSL_GUARDED_BY(mu_);
};

}  // namespace berth::service

#endif  // BERTH_CORE_SERVICE_INFERENCE_H_
