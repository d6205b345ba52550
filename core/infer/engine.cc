// Classify: encode (or split into windows) on the caller's thread, submit every piece to the
// batcher, then combine: mean logits over windows for single-label models, mean sigmoid scores
// for multi-label ones.
#include "core/infer/engine.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace berth {
namespace {

struct Piece {
  size_t text;
  std::future<absl::StatusOr<BatchResult>> future;
};

}  // namespace

absl::StatusOr<std::unique_ptr<InferenceEngine>> InferenceEngine::Load(const std::string& model_dir,
                                                                       const EngineOptions& options,
                                                                       BatchObserver observer) {
  ASSIGN_OR_RETURN(std::unique_ptr<SequenceClassifier> model,
                   SequenceClassifier::Load(model_dir, options.classifier));
  return Create(std::shared_ptr<const SequenceClassifier>(std::move(model)), options, std::move(observer));
}

absl::StatusOr<std::unique_ptr<InferenceEngine>> InferenceEngine::Create(
    std::shared_ptr<const SequenceClassifier> model, const EngineOptions& options,
    BatchObserver observer) {
  ASSIGN_OR_RETURN(std::unique_ptr<DynamicBatcher> batcher,
                   DynamicBatcher::Create(model, options.batcher, std::move(observer)));
  return std::unique_ptr<InferenceEngine>(new InferenceEngine(std::move(model), std::move(batcher), options));
}

absl::StatusOr<std::vector<ClassifyResult>> InferenceEngine::Classify(
    const std::vector<std::string>& texts, const std::vector<std::string>& pairs,
    const ClassifyOptions& o) const {
  if (!pairs.empty() && pairs.size() != texts.size()) {
    return absl::InvalidArgumentError(absl::StrCat(pairs.size(), " text pairs for ", texts.size(), " texts"));
  }
  const text::Tokenizer& tok = model_->tokenizer();
  const ModelConfig& config = model_->config();
  int max_length = o.max_length > 0 ? o.max_length
                                    : static_cast<int>(std::min<int64_t>(tok.model_max_length(),
                                                                         config.max_position_embeddings));
  if (max_length > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("max_length ", max_length, " exceeds the model's ",
                                                   config.max_position_embeddings));
  }
  std::vector<ClassifyResult> results(texts.size());
  std::vector<Piece> pieces;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto fail = [&](const absl::Status& s) {
      return absl::Status(s.code(), absl::StrCat("texts[", i, "]: ", s.message()));
    };
    std::vector<text::Encoding> encodings;
    if (o.truncation == TruncationMode::kWindow && pairs.empty()) {
      std::vector<int32_t> ids;
      absl::Status st = tok.Tokenize(texts[i], text::InvalidUtf8::kReject, &ids, nullptr);
      if (!st.ok()) return fail(st);
      const int body = max_length - tok.NumSpecialTokens(false);
      if (body < 1) return absl::InvalidArgumentError(absl::StrCat("max_length ", max_length, " is too small"));
      const int stride = std::clamp(o.stride, 0, body - 1);
      const int step = body - stride;
      size_t start = 0;
      do {
        const size_t end = std::min(ids.size(), start + static_cast<size_t>(body));
        std::vector<int32_t> window(ids.begin() + start, ids.begin() + end);
        encodings.push_back(tok.BuildInputs(window, nullptr, false));
        if (end == ids.size()) break;
        start += static_cast<size_t>(step);
      } while (true);
      results[i].num_tokens = static_cast<int32_t>(ids.size()) + tok.NumSpecialTokens(false);
    } else {
      text::EncodeOptions eo;
      eo.max_length = max_length;
      eo.side = o.truncation == TruncationMode::kLeft ? text::TruncationSide::kLeft : text::TruncationSide::kRight;
      auto e = pairs.empty() ? tok.Encode(texts[i], eo) : tok.EncodePair(texts[i], pairs[i], eo);
      if (!e.ok()) return fail(e.status());
      results[i].num_tokens = e->num_tokens_untruncated;
      results[i].truncated = e->truncated;
      encodings.push_back(std::move(*e));
    }
    results[i].windows = static_cast<int32_t>(encodings.size());
    for (text::Encoding& e : encodings) {
      auto f = batcher_->Submit(std::move(e), o.deadline);
      if (!f.ok()) return f.status();
      pieces.push_back(Piece{i, std::move(*f)});
    }
  }

  const size_t labels = static_cast<size_t>(config.num_labels());
  std::vector<std::vector<double>> sums(texts.size(), std::vector<double>(labels, 0.0));
  std::vector<std::vector<double>> prob_sums(texts.size(), std::vector<double>(labels, 0.0));
  absl::Status first_error;
  for (Piece& p : pieces) {
    absl::StatusOr<BatchResult> r = p.future.get();  // wait for every piece, even after an error
    if (!r.ok()) {
      if (first_error.ok()) first_error = r.status();
      continue;
    }
    ClassifyResult& res = results[p.text];
    for (size_t c = 0; c < labels && c < r->logits.size(); ++c) {
      sums[p.text][c] += r->logits[c];
      prob_sums[p.text][c] += 1.0 / (1.0 + std::exp(-static_cast<double>(r->logits[c])));
    }
    res.queue_seconds = std::max(res.queue_seconds, r->queue_seconds);
    res.compute_seconds = std::max(res.compute_seconds, r->compute_seconds);
  }
  if (!first_error.ok()) return first_error;

  for (size_t i = 0; i < texts.size(); ++i) {
    ClassifyResult& res = results[i];
    const double n = static_cast<double>(res.windows);
    std::vector<float> logits(labels);
    for (size_t c = 0; c < labels; ++c) logits[c] = static_cast<float>(sums[i][c] / n);
    Prediction p = MakePrediction(config, logits);
    if (config.multi_label() && res.windows > 1) {
      for (size_t c = 0; c < labels; ++c) p.scores[c] = static_cast<float>(prob_sums[i][c] / n);
    }
    res.scores = p.scores;
    const size_t best = static_cast<size_t>(std::max_element(res.scores.begin(), res.scores.end()) - res.scores.begin());
    res.label = config.id2label[best];
    res.score = res.scores[best];
    if (o.return_logits) res.logits = logits;
    std::vector<size_t> order(labels);
    for (size_t c = 0; c < labels; ++c) order[c] = c;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return res.scores[a] > res.scores[b]; });
    if (o.top_k > 0) {
      for (size_t k = 0; k < std::min<size_t>(labels, static_cast<size_t>(o.top_k)); ++k) {
        res.top_k.push_back({config.id2label[order[k]], res.scores[order[k]]});
      }
    }
    if (config.multi_label()) {
      for (size_t c : order) {
        if (res.scores[c] > options_.multi_label_threshold) res.predicted.push_back({config.id2label[c], res.scores[c]});
      }
    }
  }
  return results;
}

}  // namespace berth
