// A loaded text classifier: tokenizer + model + labels, immutable after Load, safe to share.
#ifndef BERTH_CORE_INFER_SEQUENCE_CLASSIFIER_H_
#define BERTH_CORE_INFER_SEQUENCE_CLASSIFIER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/infer/precision.h"
#include "core/model/config.h"
#include "core/model/pooling.h"
#include "core/text/tokenizer.h"

namespace berth {

struct Prediction {
  int32_t label_id = -1;
  std::string label;
  std::vector<float> logits;
  std::vector<float> scores;     // softmax, or per-label sigmoid for multi-label models
  std::vector<float> embedding;  // pooled, not normalised; when PredictBatch was asked to embed
};

// Where one PredictBatch's time went.
struct PredictTimings {
  double build_seconds = 0;  // host tensors from the encodings, queued copies to the device
  double forward_seconds =
      0;  // the forward pass and the copy of the logits back (it waits for the device)
  double assemble_seconds = 0;  // logits to predictions
};

struct ClassifierOptions {
  text::TokenizerOverrides tokenizer;
  // kBf16 converts the weights to bfloat16 at load (oneDNN's bf16 kernels run ~2-4x faster on
  // CPUs with avx512_bf16); kInt8 quantizes the encoder blocks' linear layers at load (CPU
  // only; see precision.h). Logits are returned as fp32 either way.
  InferencePrecision precision = InferencePrecision::kFp32;
  // "cpu", "cuda" or "cuda:N": the weights live there; each batch is copied in from pinned host
  // memory and its logits come back to the host.
  std::string device = "cpu";
};

struct LoadedModel;

class SequenceClassifier {
 public:
  static absl::StatusOr<std::unique_ptr<SequenceClassifier>> Load(
      const std::string& model_dir, const ClassifierOptions& options = {});
  // Wraps a model already in memory (e.g. a random-init one for benchmarks).
  static absl::StatusOr<std::unique_ptr<SequenceClassifier>> FromModel(
      LoadedModel model, const ClassifierOptions& options = {});
  ~SequenceClassifier();

  const text::Tokenizer& tokenizer() const;
  const ModelConfig& config() const;
  InferencePrecision precision() const;
  // Seconds spent quantizing and prepacking the weights at load (0 unless int8).
  double quantize_seconds() const;
  bool on_gpu() const;  // the weights live on a GPU

  const PoolingConfig& pooling() const;
  // False for a base checkpoint (no head in its weights): it embeds, it does not classify.
  bool has_head() const;
  // The width of an embedding: hidden_size times the pooling modes.
  int64_t embedding_dimension() const;

  // Runs the encodings as one batch padded to the longest (pad id, mask 0, type 0) and
  // returns one prediction each, in order. With `embed`, every row of the last layer is
  // computed and each prediction also carries its pooled embedding (PoolTokens). Safe to call
  // from several threads.
  absl::StatusOr<std::vector<Prediction>> PredictBatch(const std::vector<text::Encoding>& batch,
                                                       PredictTimings* timings = nullptr,
                                                       bool embed = false) const;

  // Writes this model as a Hugging Face directory.
  absl::Status Save(const std::string& dir) const;

 private:
  struct Impl;
  explicit SequenceClassifier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Softmax / sigmoid scores and the arg-max label for one row of logits.
Prediction MakePrediction(const ModelConfig& config, std::vector<float> logits);

}  // namespace berth

#endif  // BERTH_CORE_INFER_SEQUENCE_CLASSIFIER_H_
