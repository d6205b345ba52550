// Classify: encode every text (or split it into windows), spread over the cores for large
// requests, submit all pieces to the batcher at once, then combine: mean logits over windows
// for single-label models, mean sigmoid scores for multi-label ones.
#include "core/infer/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/runtime/runtime.h"
#include "core/util/status_macros.h"
#include "core/util/thread_pool.h"

namespace berth {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One text's pieces (the text, or its windows) and what its result reports about them.
struct EncodedText {
  absl::Status status;
  std::vector<text::Encoding> pieces;
  int32_t num_tokens = 0;
  bool truncated = false;
};

EncodedText EncodeText(const text::Tokenizer& tok, const std::string& text, const std::string* pair,
                       const ClassifyOptions& o, int max_length) {
  EncodedText out;
  if (o.truncation == TruncationMode::kWindow && pair == nullptr) {
    std::vector<int32_t> ids;
    out.status = tok.Tokenize(text, text::InvalidUtf8::kReject, &ids, nullptr);
    if (!out.status.ok()) return out;
    const int body = max_length - tok.NumSpecialTokens(false);
    if (body < 1) {
      out.status =
          absl::InvalidArgumentError(absl::StrCat("max_length ", max_length, " is too small"));
      return out;
    }
    const int stride = std::clamp(o.stride, 0, body - 1);
    const int step = body - stride;
    size_t start = 0;
    do {
      const size_t end = std::min(ids.size(), start + static_cast<size_t>(body));
      std::vector<int32_t> window(ids.begin() + start, ids.begin() + end);
      out.pieces.push_back(tok.BuildInputs(window, nullptr, false));
      if (end == ids.size()) break;
      start += static_cast<size_t>(step);
    } while (true);
    out.num_tokens = static_cast<int32_t>(ids.size()) + tok.NumSpecialTokens(false);
    return out;
  }
  text::EncodeOptions eo;
  eo.max_length = max_length;
  eo.side = o.truncation == TruncationMode::kLeft ? text::TruncationSide::kLeft
                                                  : text::TruncationSide::kRight;
  auto e = pair == nullptr ? tok.Encode(text, eo) : tok.EncodePair(text, *pair, eo);
  if (!e.ok()) {
    out.status = e.status();
    return out;
  }
  out.num_tokens = e->num_tokens_untruncated;
  out.truncated = e->truncated;
  out.pieces.push_back(std::move(*e));
  return out;
}

}  // namespace

void FinishEmbedding(std::vector<float>* embedding, int64_t dimensions, bool normalize) {
  if (dimensions > 0 && static_cast<size_t>(dimensions) < embedding->size())
    embedding->resize(static_cast<size_t>(dimensions));
  if (!normalize) return;
  double sum = 0;
  for (float x : *embedding) sum += static_cast<double>(x) * x;
  const double norm = std::max(std::sqrt(sum), 1e-12);
  for (float& x : *embedding) x = static_cast<float>(x / norm);
}

absl::StatusOr<std::unique_ptr<InferenceEngine>> InferenceEngine::Load(const std::string& model_dir,
                                                                       const EngineOptions& options,
                                                                       BatchObserver observer) {
  ASSIGN_OR_RETURN(std::unique_ptr<SequenceClassifier> model,
                   SequenceClassifier::Load(model_dir, options.classifier));
  return Create(std::shared_ptr<const SequenceClassifier>(std::move(model)), options,
                std::move(observer));
}

absl::StatusOr<std::unique_ptr<InferenceEngine>> InferenceEngine::Create(
    std::shared_ptr<const SequenceClassifier> model, const EngineOptions& options,
    BatchObserver observer) {
  ASSIGN_OR_RETURN(std::unique_ptr<DynamicBatcher> batcher,
                   DynamicBatcher::Create(model, options.batcher, std::move(observer)));
  // The model was loaded and warmed up on this thread, and from now on the batcher thread runs
  // it: this thread's intra-op team would only take the CPU from the batcher's (see
  // ReleaseThreadPool).
  ReleaseThreadPool();
  return std::unique_ptr<InferenceEngine>(
      new InferenceEngine(std::move(model), std::move(batcher), options));
}

absl::Status InferenceEngine::CheckHead(const ClassifyOptions& o) const {
  if (o.embed || model_->has_head()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      "model: a base checkpoint (its weights have no classification head): it embeds, it does "
      "not classify; fine-tune it to classify");
}

absl::StatusOr<int> InferenceEngine::MaxLength(int requested, bool embed) const {
  const ModelConfig& config = model_->config();
  int max_length = requested > 0
                       ? requested
                       : static_cast<int>(std::min<int64_t>(model_->tokenizer().model_max_length(),
                                                            config.max_position_embeddings));
  if (max_length > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_length ", max_length, " exceeds the model's ", config.max_position_embeddings));
  }
  if (embed && requested == 0 && model_->pooling().max_seq_length > 0) {
    max_length = std::min(max_length, model_->pooling().max_seq_length);
  }
  return max_length;
}

absl::StatusOr<std::vector<ClassifyResult>> InferenceEngine::Classify(
    const std::vector<std::string>& texts, const std::vector<std::string>& pairs,
    const ClassifyOptions& o) const {
  if (!pairs.empty() && pairs.size() != texts.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(pairs.size(), " text pairs for ", texts.size(), " texts"));
  }
  const text::Tokenizer& tok = model_->tokenizer();
  RETURN_IF_ERROR(CheckHead(o));
  if (o.embed && o.truncation == TruncationMode::kWindow) {
    return absl::InvalidArgumentError("truncation: an embedding is of one window (RIGHT or LEFT)");
  }
  ASSIGN_OR_RETURN(const int max_length, MaxLength(o.max_length, o.embed));
  const auto t0 = Clock::now();
  std::vector<EncodedText> encoded(texts.size());
  // A WordPiece text takes ~10-20 us: below ~64 texts per thread, starting threads costs more.
  ParallelFor(texts.size(), 64, [&](size_t i) {
    encoded[i] = EncodeText(tok, texts[i], pairs.empty() ? nullptr : &pairs[i], o, max_length);
  });
  std::vector<ClassifyResult> results(texts.size());
  std::vector<text::Encoding> pieces;
  std::vector<size_t> owner;  // the text of each piece
  for (size_t i = 0; i < texts.size(); ++i) {
    const absl::Status& s = encoded[i].status;
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("texts[", i, "]: ", s.message()));
    results[i].num_tokens = encoded[i].num_tokens;
    results[i].truncated = encoded[i].truncated;
    results[i].windows = static_cast<int32_t>(encoded[i].pieces.size());
    for (text::Encoding& e : encoded[i].pieces) {
      pieces.push_back(std::move(e));
      owner.push_back(i);
    }
  }
  if (o.timings != nullptr) o.timings->tokenize_seconds = Since(t0);
  RETURN_IF_ERROR(Run(std::move(pieces), owner, o, &results));
  return results;
}

absl::StatusOr<std::vector<ClassifyResult>> InferenceEngine::ClassifyEncoded(
    std::vector<text::Encoding> encodings, const ClassifyOptions& o) const {
  RETURN_IF_ERROR(CheckHead(o));
  std::vector<ClassifyResult> results(encodings.size());
  std::vector<size_t> owner(encodings.size());
  for (size_t i = 0; i < encodings.size(); ++i) {
    owner[i] = i;
    results[i].num_tokens = encodings[i].num_tokens_untruncated;
    results[i].truncated = encodings[i].truncated;
  }
  RETURN_IF_ERROR(Run(std::move(encodings), owner, o, &results));
  return results;
}

absl::Status InferenceEngine::Run(std::vector<text::Encoding> pieces,
                                  const std::vector<size_t>& owner, const ClassifyOptions& o,
                                  std::vector<ClassifyResult>* out) const {
  std::vector<ClassifyResult>& results = *out;
  const ModelConfig& config = model_->config();
  auto t = Clock::now();
  ASSIGN_OR_RETURN(auto futures,
                   batcher_->SubmitMany(std::move(pieces), o.deadline, o.cancelled, o.embed));
  if (o.timings != nullptr) o.timings->submit_seconds = Since(t);
  t = Clock::now();
  const size_t labels = static_cast<size_t>(config.num_labels());
  std::vector<std::vector<double>> sums(results.size(), std::vector<double>(labels, 0.0));
  std::vector<std::vector<double>> prob_sums(results.size(), std::vector<double>(labels, 0.0));
  absl::Status first_error;
  for (size_t p = 0; p < futures.size(); ++p) {
    absl::StatusOr<BatchResult> r = futures[p].get();  // wait for every piece, even after an error
    if (!r.ok()) {
      if (first_error.ok()) first_error = r.status();
      continue;
    }
    const size_t text = owner[p];
    ClassifyResult& res = results[text];
    for (size_t c = 0; c < labels && c < r->logits.size(); ++c) {
      sums[text][c] += r->logits[c];
      prob_sums[text][c] += 1.0 / (1.0 + std::exp(-static_cast<double>(r->logits[c])));
    }
    if (o.embed) res.embedding = std::move(r->embedding);  // one piece per text
    res.queue_seconds = std::max(res.queue_seconds, r->queue_seconds);
    res.compute_seconds = std::max(res.compute_seconds, r->compute_seconds);
  }
  if (o.timings != nullptr) o.timings->wait_seconds = Since(t);
  if (!first_error.ok()) return first_error;
  t = Clock::now();
  for (size_t i = 0; i < results.size(); ++i) {
    ClassifyResult& res = results[i];
    const double n = static_cast<double>(res.windows);
    std::vector<float> logits(labels);
    for (size_t c = 0; c < labels; ++c) logits[c] = static_cast<float>(sums[i][c] / n);
    Prediction p = MakePrediction(config, logits);
    if (config.multi_label() && res.windows > 1) {
      for (size_t c = 0; c < labels; ++c) p.scores[c] = static_cast<float>(prob_sums[i][c] / n);
    }
    res.scores = p.scores;
    const size_t best = static_cast<size_t>(std::max_element(res.scores.begin(), res.scores.end()) -
                                            res.scores.begin());
    res.label = config.id2label[best];
    res.score = res.scores[best];
    if (o.return_logits) res.logits = logits;
    std::vector<size_t> order(labels);
    for (size_t c = 0; c < labels; ++c) order[c] = c;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return res.scores[a] > res.scores[b]; });
    if (o.top_k > 0) {
      for (size_t k = 0; k < std::min<size_t>(labels, static_cast<size_t>(o.top_k)); ++k) {
        res.top_k.push_back({config.id2label[order[k]], res.scores[order[k]]});
      }
    }
    if (config.multi_label()) {
      for (size_t c : order) {
        if (res.scores[c] > options_.multi_label_threshold)
          res.predicted.push_back({config.id2label[c], res.scores[c]});
      }
    }
  }
  if (o.timings != nullptr) o.timings->assemble_seconds = Since(t);
  return absl::OkStatus();
}

}  // namespace berth
