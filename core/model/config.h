// Model configuration read from (and written back to) a Hugging Face config.json.
#ifndef BERTH_CORE_MODEL_CONFIG_H_
#define BERTH_CORE_MODEL_CONFIG_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/util/json.h"

namespace berth {

inline constexpr char kSingleLabel[] = "single_label_classification";
inline constexpr char kMultiLabel[] = "multi_label_classification";
inline constexpr char kRegression[] = "regression";

struct ModelConfig {
  std::string model_type = "bert";
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;
  std::string position_embedding_type = "absolute";
  std::optional<double> classifier_dropout;
  std::vector<std::string> id2label;  // label names by class id
  std::string problem_type;  // "" (unspecified), single_label_..., multi_label_..., regression

  // Everything config.json held, so fields Berth does not use survive a save.
  Json raw = Json::object();

  int64_t num_labels() const { return static_cast<int64_t>(id2label.size()); }
  bool multi_label() const { return problem_type == kMultiLabel; }
  double EffectiveClassifierDropout() const {
    return classifier_dropout.value_or(hidden_dropout_prob);
  }

  // Parses and validates; `what` (a path) prefixes every error.
  static absl::StatusOr<ModelConfig> FromJson(const Json& j, const std::string& what);
  static absl::StatusOr<ModelConfig> Load(const std::string& path);
  // config.json contents: `raw` with every known field overwritten by the current values.
  Json ToJson() const;
};

// The activation names Hugging Face's ACT2FN accepts that Berth implements.
bool IsSupportedActivation(const std::string& name);

}  // namespace berth

#endif  // BERTH_CORE_MODEL_CONFIG_H_
