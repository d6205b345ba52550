// Metric computations (scikit-learn's definitions; an undefined ratio counts as 0).
#include "core/data/metrics.h"

#include <algorithm>
#include <cmath>

namespace berth::data {
namespace {

double Ratio(double a, double b) { return b > 0 ? a / b : 0.0; }
double F1(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

void FillPrf(const std::vector<int64_t>& tp, const std::vector<int64_t>& fp,
             const std::vector<int64_t>& fn, EvalMetrics* m) {
  const size_t k = tp.size();
  double sp = 0, sr = 0, sf = 0;
  int64_t TP = 0, FP = 0, FN = 0;
  m->per_label.assign(k, LabelScores{});
  for (size_t c = 0; c < k; ++c) {
    double p = Ratio(tp[c], tp[c] + fp[c]);
    double r = Ratio(tp[c], tp[c] + fn[c]);
    m->per_label[c] = {p, r, F1(p, r), tp[c] + fn[c]};
    sp += p;
    sr += r;
    sf += F1(p, r);
    TP += tp[c];
    FP += fp[c];
    FN += fn[c];
  }
  m->macro_precision = k ? sp / k : 0;
  m->macro_recall = k ? sr / k : 0;
  m->macro_f1 = k ? sf / k : 0;
  m->micro_precision = Ratio(TP, TP + FP);
  m->micro_recall = Ratio(TP, TP + FN);
  m->micro_f1 = F1(m->micro_precision, m->micro_recall);
}

}  // namespace

bool EvalMetrics::Get(const std::string& name, double* value) const {
  const std::map<std::string, double> all = {{"loss", loss},
                                             {"accuracy", accuracy},
                                             {"macro_precision", macro_precision},
                                             {"macro_recall", macro_recall},
                                             {"macro_f1", macro_f1},
                                             {"micro_precision", micro_precision},
                                             {"micro_recall", micro_recall},
                                             {"micro_f1", micro_f1},
                                             {"hamming_loss", hamming_loss},
                                             {"pearson", pearson},
                                             {"spearman", spearman}};
  auto it = all.find(name);
  if (it == all.end()) return false;
  *value = it->second;
  return true;
}

Json EvalMetrics::ToJson() const {
  Json j = {{"examples", examples},
            {"loss", loss},
            {"accuracy", accuracy},
            {"macro_precision", macro_precision},
            {"macro_recall", macro_recall},
            {"macro_f1", macro_f1},
            {"micro_precision", micro_precision},
            {"micro_recall", micro_recall},
            {"micro_f1", micro_f1},
            {"labels", labels}};
  Json rows = Json::array();
  for (const LabelScores& l : per_label)
    rows.push_back(
        {{"precision", l.precision}, {"recall", l.recall}, {"f1", l.f1}, {"support", l.support}});
  j["per_label"] = rows;
  if (scored) {
    j = {{"examples", examples}, {"loss", loss}, {"pearson", pearson}, {"spearman", spearman}};
  } else if (!confusion.empty()) {
    j["confusion_matrix"] = confusion;
  } else {
    j["hamming_loss"] = hamming_loss;
  }
  return j;
}

EvalMetrics EvalMetrics::FromJson(const Json& j) {
  EvalMetrics m;
  m.examples = j.value("examples", int64_t{0});
  m.loss = j.value("loss", 0.0);
  m.accuracy = j.value("accuracy", 0.0);
  m.macro_precision = j.value("macro_precision", 0.0);
  m.macro_recall = j.value("macro_recall", 0.0);
  m.macro_f1 = j.value("macro_f1", 0.0);
  m.micro_precision = j.value("micro_precision", 0.0);
  m.micro_recall = j.value("micro_recall", 0.0);
  m.micro_f1 = j.value("micro_f1", 0.0);
  m.hamming_loss = j.value("hamming_loss", 0.0);
  m.scored = j.contains("pearson");
  m.pearson = j.value("pearson", 0.0);
  m.spearman = j.value("spearman", 0.0);
  if (j.contains("labels") && j["labels"].is_array())
    m.labels = j["labels"].get<std::vector<std::string>>();
  if (j.contains("per_label") && j["per_label"].is_array()) {
    for (const Json& l : j["per_label"]) {
      if (!l.is_object()) continue;
      m.per_label.push_back({l.value("precision", 0.0), l.value("recall", 0.0), l.value("f1", 0.0),
                             l.value("support", int64_t{0})});
    }
  }
  if (j.contains("confusion_matrix") && j["confusion_matrix"].is_array()) {
    m.confusion = j["confusion_matrix"].get<std::vector<std::vector<int64_t>>>();
  }
  return m;
}

EvalMetrics ComputeSingleLabelMetrics(const std::vector<int64_t>& truth,
                                      const std::vector<int64_t>& pred,
                                      const std::vector<std::string>& labels) {
  EvalMetrics m;
  const size_t k = labels.size();
  m.labels = labels;
  m.examples = static_cast<int64_t>(truth.size());
  m.confusion.assign(k, std::vector<int64_t>(k, 0));
  std::vector<int64_t> tp(k, 0), fp(k, 0), fn(k, 0);
  int64_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    const int64_t t = truth[i], p = pred[i];
    if (t < 0 || p < 0 || static_cast<size_t>(t) >= k || static_cast<size_t>(p) >= k) continue;
    ++m.confusion[t][p];
    if (t == p) {
      ++correct;
      ++tp[t];
    } else {
      ++fp[p];
      ++fn[t];
    }
  }
  m.accuracy = Ratio(static_cast<double>(correct), static_cast<double>(truth.size()));
  FillPrf(tp, fp, fn, &m);
  return m;
}

EvalMetrics ComputeMultiLabelMetrics(const std::vector<std::vector<uint8_t>>& truth,
                                     const std::vector<std::vector<uint8_t>>& pred,
                                     const std::vector<std::string>& labels) {
  EvalMetrics m;
  const size_t k = labels.size();
  m.labels = labels;
  m.examples = static_cast<int64_t>(truth.size());
  std::vector<int64_t> tp(k, 0), fp(k, 0), fn(k, 0);
  int64_t exact = 0, wrong_bits = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    bool all = true;
    for (size_t c = 0; c < k; ++c) {
      const bool t = truth[i][c], p = pred[i][c];
      tp[c] += t && p;
      fp[c] += !t && p;
      fn[c] += t && !p;
      if (t != p) {
        all = false;
        ++wrong_bits;
      }
    }
    exact += all;
  }
  m.accuracy = Ratio(static_cast<double>(exact), static_cast<double>(truth.size()));
  m.hamming_loss = Ratio(static_cast<double>(wrong_bits), static_cast<double>(truth.size() * k));
  FillPrf(tp, fp, fn, &m);
  return m;
}

namespace {

// Pearson's correlation; 0 when either side is constant.
double Pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  if (n == 0) return 0;
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) {
    ma += a[i];
    mb += b[i];
  }
  ma /= static_cast<double>(n);
  mb /= static_cast<double>(n);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

// 1-based ranks, ties sharing their mean rank (scipy.stats.rankdata's "average").
std::vector<double> Ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return v[x] < v[y]; });
  std::vector<double> ranks(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double mean = (static_cast<double>(i) + static_cast<double>(j)) / 2 + 1;
    for (size_t t = i; t <= j; ++t) ranks[order[t]] = mean;
    i = j + 1;
  }
  return ranks;
}

}  // namespace

EvalMetrics ComputeScoreMetrics(const std::vector<double>& truth, const std::vector<double>& pred) {
  EvalMetrics m;
  m.scored = true;
  m.examples = static_cast<int64_t>(truth.size());
  m.pearson = Pearson(truth, pred);
  m.spearman = Pearson(Ranks(truth), Ranks(pred));
  return m;
}

}  // namespace berth::data
