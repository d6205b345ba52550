// config.json parsing: every field BERT uses, and invalid values named in errors.
#include "core/model/config.h"

#include <gtest/gtest.h>

#include "tests/unit/test_util.h"

namespace berth {
namespace {

TEST(ModelConfigTest, ReadsTheFixtureConfig) {
  auto c = ModelConfig::Load(berth::testing::FixturePath("bert-tiny-uncased") + "/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->num_hidden_layers, 2);
  EXPECT_EQ(c->num_attention_heads, 2);
  EXPECT_EQ(c->intermediate_size, 256);
  EXPECT_EQ(c->hidden_act, "gelu");
  EXPECT_DOUBLE_EQ(c->layer_norm_eps, 1e-12);
  EXPECT_FALSE(c->classifier_dropout.has_value());
  EXPECT_EQ(c->id2label, (std::vector<std::string>{"negative", "neutral", "positive"}));
  EXPECT_FALSE(c->multi_label());
  auto m = ModelConfig::Load(berth::testing::FixturePath("bert-tiny-multilabel") + "/config.json");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->multi_label());
}

TEST(ModelConfigTest, ToJsonKeepsUnknownFieldsAndWritesLabelMaps) {
  Json j = {{"model_type", "bert"}, {"num_labels", 3}, {"custom_field", 7}};
  auto c = ModelConfig::FromJson(j, "config.json");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->id2label, (std::vector<std::string>{"LABEL_0", "LABEL_1", "LABEL_2"}));
  Json out = c->ToJson();
  EXPECT_EQ(out["custom_field"], 7);
  EXPECT_EQ(out["id2label"]["2"], "LABEL_2");
  EXPECT_EQ(out["label2id"]["LABEL_1"], 1);
  auto again = ModelConfig::FromJson(out, "again");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id2label, c->id2label);
}

// A classifier fine-tuned from a headless or pre-training checkpoint is saved as a classifier.
TEST(ModelConfigTest, ToJsonNamesTheSequenceClassifierArchitecture) {
  struct Case {
    const char* model_type;
    const char* base_architecture;
    const char* saved;
  };
  for (const Case& k :
       {Case{"bert", "BertModel", "BertForSequenceClassification"},
        Case{"bert", "BertForMaskedLM", "BertForSequenceClassification"},
        Case{"bert", "BertForSequenceClassification", "BertForSequenceClassification"},
        Case{"distilbert", "DistilBertModel", "DistilBertForSequenceClassification"},
        Case{"xlm-roberta", "XLMRobertaForMaskedLM", "XLMRobertaForSequenceClassification"}}) {
    Json j = {{"model_type", k.model_type}, {"architectures", {k.base_architecture}}};
    auto c = ModelConfig::FromJson(j, "config.json");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->ToJson()["architectures"], Json::array({k.saved})) << k.base_architecture;
  }
}

TEST(ModelConfigTest, InvalidValuesAreNamed) {
  struct Case {
    Json j;
    const char* needle;
  } cases[] = {
      {{{"hidden_act", "mish"}}, "hidden_act"},
      {{{"hidden_size", 10}, {"num_attention_heads", 3}}, "num_attention_heads"},
      {{{"hidden_size", "big"}}, "hidden_size"},
      {{{"hidden_dropout_prob", 1.5}}, "hidden_dropout_prob"},
      {{{"id2label", {{"0", "a"}, {"2", "b"}}}}, "id2label"},
      {{{"position_embedding_type", "relative_key"}}, "position_embedding_type"},
      {{{"problem_type", "ranking"}}, "problem_type"},
      {{{"num_hidden_layers", -1}}, "num_hidden_layers"},
      // Found by fuzzing (tests/fuzz/regressions/model_config): these threw or ran out of memory.
      {{{"model_type", 1}}, "model_type"},
      {{{"num_labels", 1000000000000}}, "num_labels"},
      {{{"num_labels", 100001}},
       "num_labels"},  // one over the limit; a million took 12 s in the fuzzer
      {{{"model_type", "distilbert"}, {"sinusoidal_pos_embds", "yes"}}, "sinusoidal_pos_embds"},
  };
  for (const Case& c : cases) {
    auto r = ModelConfig::FromJson(c.j, "x/config.json");
    ASSERT_FALSE(r.ok()) << c.j.dump();
    EXPECT_NE(r.status().message().find(c.needle), absl::string_view::npos) << r.status();
    EXPECT_NE(r.status().message().find("x/config.json"), absl::string_view::npos);
  }
}

}  // namespace
}  // namespace berth
