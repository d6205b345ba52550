// Online classification: tokenization (spread over the cores for a request of many texts),
// long-text handling (truncate right/left or sliding windows), a dynamic batcher per model
// that receives each request whole, and result assembly.
#ifndef BERTH_CORE_INFER_ENGINE_H_
#define BERTH_CORE_INFER_ENGINE_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/multi_label.h"
#include "core/infer/batcher.h"
#include "core/infer/sequence_classifier.h"

namespace berth {

enum class TruncationMode {
  kRight,   // keep the first max_length tokens (default)
  kLeft,    // keep the last ones
  kWindow,  // sliding windows of max_length with `stride` tokens of overlap; scores averaged
};

// Where one Classify call's time went, on the calling thread (the batcher's share is in
// BatcherStats).
struct ClassifyTimings {
  double tokenize_seconds = 0;  // texts to encodings
  double submit_seconds = 0;    // into the batcher's queue
  double wait_seconds = 0;      // until the last piece's result was back
  double assemble_seconds = 0;  // scores, labels, top-k, windows combined
};

struct ClassifyOptions {
  TruncationMode truncation = TruncationMode::kRight;
  int max_length = 0;  // 0: the model's maximum
  int stride = 128;    // window overlap in tokens (window mode)
  int top_k = 0;       // > 0: also return the k best labels
  bool return_logits = false;
  // Also each text's pooled embedding (SequenceClassifier::pooling; not normalised), computed in
  // the same forward pass. Not with windows. max_length 0 then means the pooling's
  // max_seq_length (sentence_bert_config.json) where it has one.
  bool embed = false;
  SteadyClock::time_point deadline = SteadyClock::time_point::max();
  // Polled by the batcher before each piece's forward pass: true drops the piece (no forward
  // pass) and fails the call with CANCELLED. A server passes "the client has gone".
  CancelProbe cancelled;
  ClassifyTimings* timings = nullptr;  // filled in when set
};

struct LabelScore {
  std::string label;
  float score;
};

struct ClassifyResult {
  std::string label;                  // arg-max label
  float score = 0;                    // its score
  std::vector<float> scores;          // per label in id order (softmax, or sigmoid for multi-label)
  std::vector<LabelScore> top_k;      // best first, when asked for
  std::vector<LabelScore> predicted;  // multi-label: every label over the threshold
  std::vector<float> logits;          // when asked for (window mode: mean over windows)
  std::vector<float> embedding;       // when asked for (ClassifyOptions::embed)
  int32_t num_tokens = 0;             // tokens of the text, special tokens included, untruncated
  bool truncated = false;
  int32_t windows = 1;
  double queue_seconds = 0;  // the slowest window's
  double compute_seconds = 0;
};

// A pooled embedding as a caller asked for it: its first `dimensions` components (Matryoshka; 0
// keeps all), then, with `normalize`, divided by its L2 norm (torch's F.normalize: a zero
// vector stays zero).
void FinishEmbedding(std::vector<float>* embedding, int64_t dimensions, bool normalize);

struct EngineOptions {
  ClassifierOptions classifier;
  BatcherOptions batcher;
  float multi_label_threshold = static_cast<float>(data::kDefaultMultiLabelThreshold);
};

class InferenceEngine {
 public:
  static absl::StatusOr<std::unique_ptr<InferenceEngine>> Load(const std::string& model_dir,
                                                               const EngineOptions& options,
                                                               BatchObserver observer = nullptr);
  static absl::StatusOr<std::unique_ptr<InferenceEngine>> Create(
      std::shared_ptr<const SequenceClassifier> model, const EngineOptions& options,
      BatchObserver observer = nullptr);

  // Classifies texts (and, if `pairs` is not empty, one second segment per text). Blocks the
  // calling thread; safe to call from many threads at once. An invalid text fails the call
  // with INVALID_ARGUMENT naming its index (the lowest, when several are invalid).
  absl::StatusOr<std::vector<ClassifyResult>> Classify(const std::vector<std::string>& texts,
                                                       const std::vector<std::string>& pairs,
                                                       const ClassifyOptions& options) const;

  const SequenceClassifier& model() const { return *model_; }
  // The same for texts already encoded (berth predict tokenizes as it reads): one result per
  // encoding, in order. Truncation options do not apply; deadline, cancelled, top_k,
  // return_logits and timings do.
  absl::StatusOr<std::vector<ClassifyResult>> ClassifyEncoded(std::vector<text::Encoding> encodings,
                                                              const ClassifyOptions& options) const;
  // The tokens per text a request of `requested` max_length gets (0: the tokenizer's
  // model_max_length, capped by the model's positions; for an embedding also by the pooling's
  // max_seq_length); more than the positions is an error.
  absl::StatusOr<int> MaxLength(int requested, bool embed = false) const;
  DynamicBatcher& batcher() const { return *batcher_; }
  void Shutdown() { batcher_->Shutdown(); }

 private:
  InferenceEngine(std::shared_ptr<const SequenceClassifier> model,
                  std::unique_ptr<DynamicBatcher> batcher, const EngineOptions& options)
      : model_(std::move(model)), batcher_(std::move(batcher)), options_(options) {}
  // FAILED_PRECONDITION for a classification by a model without a head.
  absl::Status CheckHead(const ClassifyOptions& o) const;
  // Submits the pieces, waits for them, and fills in `out` (one result per text; owner[p] is
  // piece p's text, whose `windows` pieces are combined).
  absl::Status Run(std::vector<text::Encoding> pieces, const std::vector<size_t>& owner,
                   const ClassifyOptions& o, std::vector<ClassifyResult>* out) const;

  std::shared_ptr<const SequenceClassifier> model_;
  std::unique_ptr<DynamicBatcher> batcher_;
  EngineOptions options_;
};

}  // namespace berth

#endif  // BERTH_CORE_INFER_ENGINE_H_
