// Classification metrics: accuracy, precision/recall/F1 (macro and micro), confusion matrix,
// and for multi-label data micro-F1 and Hamming loss.
#ifndef BERTH_CORE_DATA_METRICS_H_
#define BERTH_CORE_DATA_METRICS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/util/json.h"

namespace berth::data {

// One label's scores (scikit-learn's classification_report row); support = true examples.
struct LabelScores {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;
};

struct EvalMetrics {
  int64_t examples = 0;
  double loss = 0;
  double accuracy = 0;  // multi-label: exact-match ratio
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  double micro_precision = 0, micro_recall = 0, micro_f1 = 0;
  double hamming_loss = 0;  // multi-label only
  // A scorer (TrainingSpec::score_loss): the correlations of its scores with the labels.
  bool scored = false;
  double pearson = 0, spearman = 0;
  std::vector<std::vector<int64_t>> confusion;  // single-label: [true][predicted]
  std::vector<std::string> labels;
  std::vector<LabelScores> per_label;  // in label order (classifiers; empty for a scorer)
  std::vector<double> example_losses;  // per example, in dataset order (not serialised)

  // A metric by name ("loss", "accuracy", "macro_f1", ...); false if the name is unknown.
  bool Get(const std::string& name, double* value) const;
  static bool GreaterIsBetter(const std::string& name) {
    return name != "loss" && name != "hamming_loss";
  }
  Json ToJson() const;
  static EvalMetrics FromJson(const Json& j);  // the inverse of ToJson (missing fields stay 0)
};

// Single-label: `truth[i]` and `pred[i]` are class ids.
EvalMetrics ComputeSingleLabelMetrics(const std::vector<int64_t>& truth,
                                      const std::vector<int64_t>& pred,
                                      const std::vector<std::string>& labels);
// A one-logit scorer: Pearson's and Spearman's correlation (scipy's: ties take their mean rank)
// of `pred` with `truth`; 0 where a side is constant.
EvalMetrics ComputeScoreMetrics(const std::vector<double>& truth, const std::vector<double>& pred);
// Multi-label: 0/1 indicator rows of width labels.size().
EvalMetrics ComputeMultiLabelMetrics(const std::vector<std::vector<uint8_t>>& truth,
                                     const std::vector<std::vector<uint8_t>>& pred,
                                     const std::vector<std::string>& labels);

}  // namespace berth::data

#endif  // BERTH_CORE_DATA_METRICS_H_
