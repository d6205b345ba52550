// Berth's evaluation metrics (core/data/metrics.cc) against scikit-learn's on seeded random
// predictions: tests/data/fixtures/metrics-sklearn.json, written and kept true by
// tests/reference/metrics_reference.py (scikit-learn with labels = every class, zero_division 0).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/data/metrics.h"
#include "core/util/json.h"
#include "tests/unit/test_util.h"

namespace berth::train {
namespace {

std::vector<std::string> Names(int k) {
  std::vector<std::string> n;
  for (int c = 0; c < k; ++c) n.push_back("c" + std::to_string(c));
  return n;
}

TEST(MetricsTest, MatchScikitLearnOnSeededPredictions) {
  auto fixture = ReadJsonFile(testing::DataPath("fixtures/metrics-sklearn.json"));
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  const Json& cases = fixture->at("cases");
  ASSERT_GE(cases.size(), 7u);
  for (const Json& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const int k = c.at("k").get<int>();
    const bool multi = c.at("kind") == "multi";
    const data::EvalMetrics m =
        multi ? data::ComputeMultiLabelMetrics(
                    c.at("truth").get<std::vector<std::vector<uint8_t>>>(),
                    c.at("pred").get<std::vector<std::vector<uint8_t>>>(), Names(k))
              : data::ComputeSingleLabelMetrics(c.at("truth").get<std::vector<int64_t>>(),
                                                c.at("pred").get<std::vector<int64_t>>(), Names(k));
    const Json& want = c.at("expected");
    for (const char* name : {"accuracy", "macro_precision", "macro_recall", "macro_f1",
                             "micro_precision", "micro_recall", "micro_f1", "hamming_loss"}) {
      if (!want.contains(name)) continue;
      double got = 0;
      ASSERT_TRUE(m.Get(name, &got)) << name;
      // Ratios of counts below 10^3: the two orders of the same double operations (scikit-learn
      // takes F1 = 2tp / (2tp + fp + fn), Berth 2PR / (P + R), then means over classes) differ by
      // a few ulps, ~1e-16; 1e-12 leaves room for that and for nothing else.
      EXPECT_NEAR(got, want.at(name).get<double>(), 1e-12) << name;
    }
    const Json& rows = want.at("per_label");
    ASSERT_EQ(m.per_label.size(), rows.size());
    for (size_t l = 0; l < rows.size(); ++l) {
      EXPECT_NEAR(m.per_label[l].precision, rows[l].at("precision").get<double>(), 1e-12) << l;
      EXPECT_NEAR(m.per_label[l].recall, rows[l].at("recall").get<double>(), 1e-12) << l;
      EXPECT_NEAR(m.per_label[l].f1, rows[l].at("f1").get<double>(), 1e-12) << l;
      EXPECT_EQ(m.per_label[l].support, rows[l].at("support").get<int64_t>()) << l;
    }
    const data::EvalMetrics back = data::EvalMetrics::FromJson(m.ToJson());
    ASSERT_EQ(back.per_label.size(), m.per_label.size());
    for (size_t l = 0; l < rows.size(); ++l) EXPECT_EQ(back.per_label[l].f1, m.per_label[l].f1);
    if (!multi) {
      EXPECT_EQ(m.confusion, want.at("confusion_matrix").get<std::vector<std::vector<int64_t>>>());
    }
    EXPECT_EQ(m.examples, static_cast<int64_t>(c.at("truth").size()));
  }
}

// A scorer's correlations, by their defining properties (the live comparison with scipy is
// cross_encoder_finetune): Spearman is Pearson's on ranks, so any increasing transform of the
// scores leaves it 1; ties share their mean rank; a constant side has no correlation.
TEST(MetricsTest, ScoreCorrelations) {
  const std::vector<double> truth = {0, 0.25, 0.5, 1, 1};
  const data::EvalMetrics same = data::ComputeScoreMetrics(truth, truth);
  EXPECT_TRUE(same.scored);
  EXPECT_EQ(same.examples, 5);
  EXPECT_NEAR(same.pearson, 1.0, 1e-12);
  EXPECT_NEAR(same.spearman, 1.0, 1e-12);
  std::vector<double> cubed;
  for (double t : truth) cubed.push_back((t - 0.3) * (t - 0.3) * (t - 0.3));
  const data::EvalMetrics monotone = data::ComputeScoreMetrics(truth, cubed);
  EXPECT_NEAR(monotone.spearman, 1.0, 1e-12);
  EXPECT_LT(monotone.pearson, 1.0 - 1e-3);
  std::vector<double> reversed;
  for (double t : truth) reversed.push_back(-t);
  EXPECT_NEAR(data::ComputeScoreMetrics(truth, reversed).spearman, -1.0, 1e-12);
  EXPECT_EQ(data::ComputeScoreMetrics(truth, {3, 3, 3, 3, 3}).pearson, 0.0);
  EXPECT_EQ(data::ComputeScoreMetrics(truth, {3, 3, 3, 3, 3}).spearman, 0.0);
  // The evaluation log and the stored job carry them through JSON.
  const data::EvalMetrics back = data::EvalMetrics::FromJson(monotone.ToJson());
  EXPECT_TRUE(back.scored);
  EXPECT_EQ(back.pearson, monotone.pearson);
  double v = 0;
  EXPECT_TRUE(back.Get("spearman", &v));
  EXPECT_EQ(v, monotone.spearman);
}

}  // namespace
}  // namespace berth::train
