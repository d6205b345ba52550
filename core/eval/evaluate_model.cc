#include "core/eval/evaluate_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/data/training_spec.h"
#include "core/model/config.h"
#include "core/util/files.h"
#include "core/util/status_macros.h"
#include "core/util/thread_pool.h"

namespace berth {
namespace {

// log(sum(exp(x))) - x[target]: cross-entropy of one row, in double.
double CrossEntropy(const std::vector<float>& x, int64_t target) {
  double top = x[0];
  for (float v : x) top = std::max(top, static_cast<double>(v));
  double sum = 0;
  for (float v : x) sum += std::exp(static_cast<double>(v) - top);
  return top + std::log(sum) - static_cast<double>(x[static_cast<size_t>(target)]);
}

// Mean over the labels of binary cross-entropy with logits (the numerically stable form).
double BinaryCrossEntropy(const std::vector<float>& x, const std::vector<uint8_t>& truth) {
  double sum = 0;
  for (size_t c = 0; c < x.size(); ++c) {
    const double v = x[c];
    sum += std::max(v, 0.0) - v * truth[c] + std::log1p(std::exp(-std::abs(v)));
  }
  return sum / static_cast<double>(x.size());
}

// Binary cross-entropy with logits against a graded label in [0, 1] (the stable form).
double GradedBinaryCrossEntropy(double x, double y) {
  return std::max(x, 0.0) - x * y + std::log1p(std::exp(-std::abs(x)));
}

}  // namespace

absl::StatusOr<data::EvalMetrics> EvaluateWithEngine(const InferenceEngine& engine,
                                                     const data::Dataset& data, bool pairs,
                                                     const EvaluateOptions& options) {
  const ModelConfig& config = engine.model().config();
  const std::vector<std::string>& labels = config.id2label;
  const bool multi = config.multi_label();
  const size_t k = labels.size();
  // A scorer, as Berth saves one (`--score`): a regression model (mean squared error on its
  // logit, which is its score) or one label without a problem type (a sentence-transformers
  // CrossEncoder: binary cross-entropy, scored by the sigmoid). Its labels are numbers.
  const bool regression = config.problem_type == kRegression;
  const bool scorer = regression || (k == 1 && !multi);
  std::map<std::string, int64_t> ids;
  for (size_t i = 0; i < k; ++i) ids[labels[i]] = static_cast<int64_t>(i);
  ASSIGN_OR_RETURN(const int max_length, engine.MaxLength(options.max_length));
  text::EncodeOptions eo;
  eo.max_length = max_length;
  const text::Tokenizer& tok = engine.model().tokenizer();
  // The Trainer's threshold (core/train/evaluate.cc compares sigmoid(logit) in float with it).
  const float threshold = static_cast<float>(data::kDefaultMultiLabelThreshold);
  ClassifyOptions co;
  co.return_logits = true;

  const size_t n = data.examples.size(), window = std::max<size_t>(1, options.window);
  std::vector<int64_t> truth, pred;
  std::vector<std::vector<uint8_t>> mtruth, mpred;
  std::vector<double> score_truth, score_pred;
  std::vector<double> losses;
  losses.reserve(n);
  double loss_sum = 0;
  for (size_t start = 0; start < n; start += window) {
    const size_t end = std::min(n, start + window);
    std::vector<absl::StatusOr<text::Encoding>> encoded(end - start,
                                                        absl::UnknownError("not encoded"));
    ParallelFor(end - start, 64, [&](size_t i) {
      const data::Example& e = data.examples[start + i];
      encoded[i] = pairs ? tok.EncodePair(e.text, e.text_pair, eo) : tok.Encode(e.text, eo);
    });
    std::vector<text::Encoding> batch;
    std::vector<std::vector<int64_t>> targets;
    batch.reserve(end - start);
    for (size_t i = start; i < end; ++i) {
      const data::Example& e = data.examples[i];
      std::vector<int64_t> y;
      if (scorer) {
        ASSIGN_OR_RETURN(const double v, data::ScoreLabel(data, e, !regression));
        score_truth.push_back(v);
      }
      for (const std::string& l : scorer ? std::vector<std::string>{} : e.labels) {
        auto it = ids.find(l);
        if (it == ids.end()) {
          return absl::InvalidArgumentError(absl::StrCat(data.source, ":", e.line, ": label '", l,
                                                         "' is not one of the model's labels (",
                                                         absl::StrJoin(labels, ", "), ")"));
        }
        y.push_back(it->second);
      }
      if (!scorer && !multi && y.size() != 1) {
        return absl::InvalidArgumentError(absl::StrCat(data.source, ":", e.line, ": ", y.size(),
                                                       " labels for a single-label model"));
      }
      absl::StatusOr<text::Encoding>& enc = encoded[i - start];
      if (!enc.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(data.source, ":", e.line, ": ", enc.status().message()));
      }
      batch.push_back(std::move(*enc));
      targets.push_back(std::move(y));
    }
    ASSIGN_OR_RETURN(std::vector<ClassifyResult> results,
                     engine.ClassifyEncoded(std::move(batch), co));
    for (size_t i = 0; i < results.size(); ++i) {
      const std::vector<float>& x = results[i].logits;
      if (x.size() != k) return absl::InternalError("the engine returned no logits");
      double loss = 0;
      if (scorer) {
        // The Trainer's evaluation (core/train/evaluate.cc): the loss of the training task, and
        // the score served (sigmoid, or the logit of a regression) against the label.
        const double x0 = x[0], y = score_truth[score_pred.size()];
        loss = regression ? (x0 - y) * (x0 - y) : GradedBinaryCrossEntropy(x0, y);
        score_pred.push_back(regression ? x0 : 1.0 / (1.0 + std::exp(-x0)));
      } else if (multi) {
        std::vector<uint8_t> t(k, 0), p(k, 0);
        for (int64_t c : targets[i]) t[static_cast<size_t>(c)] = 1;
        for (size_t c = 0; c < k; ++c) p[c] = 1.0f / (1.0f + std::exp(-x[c])) > threshold;
        loss = BinaryCrossEntropy(x, t);
        mtruth.push_back(std::move(t));
        mpred.push_back(std::move(p));
      } else {
        loss = CrossEntropy(x, targets[i][0]);
        truth.push_back(targets[i][0]);
        // The first of equal maxima, as torch's argmax.
        pred.push_back(std::max_element(x.begin(), x.end()) - x.begin());
      }
      losses.push_back(loss);
      loss_sum += loss;
    }
    if (options.progress) options.progress(end, n);
  }
  data::EvalMetrics m = scorer  ? data::ComputeScoreMetrics(score_truth, score_pred)
                        : multi ? data::ComputeMultiLabelMetrics(mtruth, mpred, labels)
                                : data::ComputeSingleLabelMetrics(truth, pred, labels);
  m.loss = n == 0 ? 0 : loss_sum / static_cast<double>(n);
  m.example_losses = std::move(losses);
  return m;
}

absl::StatusOr<data::EvalMetrics> EvaluateExamples(const std::string& model_dir,
                                                   const data::Dataset& data, bool pairs,
                                                   const EvaluateModelOptions& options) {
  EngineOptions eo = options.engine;
  // One caller that hands over a window at a time: nothing to wait for, room for the window.
  eo.batcher.max_wait = std::chrono::microseconds(0);
  eo.batcher.max_queued_requests = std::max<int64_t>(eo.batcher.max_queued_requests,
                                                     static_cast<int64_t>(options.evaluate.window));
  ASSIGN_OR_RETURN(std::unique_ptr<InferenceEngine> engine, InferenceEngine::Load(model_dir, eo));
  auto m = EvaluateWithEngine(*engine, data, pairs, options.evaluate);
  engine->Shutdown();
  return m;
}

absl::StatusOr<data::EvalMetrics> EvaluateModel(const std::string& model_dir,
                                                const std::string& data_path,
                                                const data::DatasetOptions& data,
                                                const EvaluateModelOptions& options) {
  ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::Load(JoinPath(model_dir, "config.json")));
  data::DatasetOptions o = data;
  o.multi_label = config.multi_label();
  ASSIGN_OR_RETURN(data::Dataset d, data::ReadDataset(data_path, o));
  return EvaluateExamples(model_dir, d, !o.text_pair_column.empty(), options);
}

}  // namespace berth
