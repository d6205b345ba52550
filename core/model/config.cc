// Parsing and validation of Hugging Face config.json for BERT-family classifiers.
#include "core/model/config.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace berth {
namespace {

absl::Status ReadInt(const Json& j, const char* key, const std::string& what, int64_t min,
                     int64_t* out) {
  ASSIGN_OR_RETURN(std::optional<int64_t> v, GetOptionalInt(j, key, what));
  if (!v) return absl::OkStatus();
  if (*v < min) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": field '", key, "' must be at least ", min, ", got ", *v));
  }
  *out = *v;
  return absl::OkStatus();
}

absl::Status ReadProbability(const Json& j, const char* key, const std::string& what, double* out) {
  ASSIGN_OR_RETURN(std::optional<double> v, GetOptionalDouble(j, key, what));
  if (!v) return absl::OkStatus();
  if (!(*v >= 0.0 && *v < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": field '", key, "' must be in [0, 1), got ", *v));
  }
  *out = *v;
  return absl::OkStatus();
}

}  // namespace

bool IsSupportedActivation(const std::string& name) {
  static const char* const kNames[] = {"gelu",       "gelu_new", "gelu_fast", "gelu_pytorch_tanh",
                                       "quick_gelu", "relu",     "silu",      "swish",
                                       "tanh"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

namespace {

// A classifier head with more classes is a hostile file, not a model: it would be built label by
// label before anything else could refuse it, and single-label evaluation keeps a labels x labels
// confusion matrix (100,000 labels: 80 GB).
constexpr int64_t kMaxLabels = 100000;

// DistilBERT's config.json names (and defaults) for the fields BERT's config calls otherwise.
absl::StatusOr<Json> DistilBertAsBertNames(const Json& j, const std::string& what) {
  ASSIGN_OR_RETURN(std::optional<bool> sinusoidal,
                   GetOptionalBool(j, "sinusoidal_pos_embds", what));
  if (sinusoidal.value_or(false)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": sinusoidal_pos_embds is not supported"));
  }
  Json k = j;
  const std::pair<const char*, const char*> kNames[] = {
      {"dim", "hidden_size"},
      {"n_layers", "num_hidden_layers"},
      {"n_heads", "num_attention_heads"},
      {"hidden_dim", "intermediate_size"},
      {"activation", "hidden_act"},
      {"dropout", "hidden_dropout_prob"},
      {"attention_dropout", "attention_probs_dropout_prob"},
      {"seq_classif_dropout", "classifier_dropout"}};
  const Json kDefaults = {{"dim", 768},
                          {"n_layers", 6},
                          {"n_heads", 12},
                          {"hidden_dim", 3072},
                          {"activation", "gelu"},
                          {"dropout", 0.1},
                          {"attention_dropout", 0.1},
                          {"seq_classif_dropout", 0.2}};
  for (const auto& [from, to] : kNames) k[to] = j.contains(from) ? j[from] : kDefaults[from];
  k["type_vocab_size"] = 0;     // no token types
  k["layer_norm_eps"] = 1e-12;  // DistilBERT's LayerNorms
  return k;
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfig::FromJson(const Json& j, const std::string& what) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not a JSON object"));
  if (j.contains("model_type") && j["model_type"] == "distilbert") {
    ASSIGN_OR_RETURN(Json k, DistilBertAsBertNames(j, what));
    Json renamed = k;
    renamed["model_type"] = "distilbert-internal";  // parse with BERT's names, once
    ASSIGN_OR_RETURN(ModelConfig c, FromJson(renamed, what));
    c.model_type = "distilbert";
    c.raw = j;
    return c;
  }
  ModelConfig c;
  c.raw = j;
  ASSIGN_OR_RETURN(auto model_type, GetOptionalString(j, "model_type", what));
  if (model_type) c.model_type = *model_type;
  RETURN_IF_ERROR(ReadInt(j, "vocab_size", what, 1, &c.vocab_size));
  RETURN_IF_ERROR(ReadInt(j, "hidden_size", what, 1, &c.hidden_size));
  RETURN_IF_ERROR(ReadInt(j, "num_hidden_layers", what, 0, &c.num_hidden_layers));
  RETURN_IF_ERROR(ReadInt(j, "num_attention_heads", what, 1, &c.num_attention_heads));
  RETURN_IF_ERROR(ReadInt(j, "intermediate_size", what, 1, &c.intermediate_size));
  RETURN_IF_ERROR(ReadInt(j, "max_position_embeddings", what, 1, &c.max_position_embeddings));
  RETURN_IF_ERROR(ReadInt(j, "type_vocab_size", what, 0, &c.type_vocab_size));
  RETURN_IF_ERROR(ReadInt(j, "pad_token_id", what, 0, &c.pad_token_id));
  RETURN_IF_ERROR(ReadProbability(j, "hidden_dropout_prob", what, &c.hidden_dropout_prob));
  RETURN_IF_ERROR(
      ReadProbability(j, "attention_probs_dropout_prob", what, &c.attention_probs_dropout_prob));
  double cd = 0;
  if (j.contains("classifier_dropout") && !j["classifier_dropout"].is_null()) {
    RETURN_IF_ERROR(ReadProbability(j, "classifier_dropout", what, &cd));
    c.classifier_dropout = cd;
  }
  ASSIGN_OR_RETURN(auto init_range, GetOptionalDouble(j, "initializer_range", what));
  if (init_range) c.initializer_range = *init_range;
  ASSIGN_OR_RETURN(auto eps, GetOptionalDouble(j, "layer_norm_eps", what));
  if (eps) {
    if (!(*eps > 0))
      return absl::InvalidArgumentError(absl::StrCat(what, ": layer_norm_eps must be positive"));
    c.layer_norm_eps = *eps;
  }
  ASSIGN_OR_RETURN(auto act, GetOptionalString(j, "hidden_act", what));
  if (act) c.hidden_act = *act;
  if (!IsSupportedActivation(c.hidden_act)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": hidden_act '", c.hidden_act, "' is not supported"));
  }
  ASSIGN_OR_RETURN(auto pos, GetOptionalString(j, "position_embedding_type", what));
  if (pos) c.position_embedding_type = *pos;
  if (c.position_embedding_type != "absolute") {
    return absl::InvalidArgumentError(absl::StrCat(what, ": position_embedding_type '",
                                                   c.position_embedding_type,
                                                   "' is not supported (only 'absolute')"));
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": hidden_size ", c.hidden_size,
                                                   " is not a multiple of num_attention_heads ",
                                                   c.num_attention_heads));
  }
  ASSIGN_OR_RETURN(auto problem, GetOptionalString(j, "problem_type", what));
  if (problem) {
    if (*problem != kSingleLabel && *problem != kMultiLabel && *problem != kRegression) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": problem_type '", *problem, "' is not recognised"));
    }
    c.problem_type = *problem;
  }

  // Labels: id2label {"0": "neg", ...} must cover 0..n-1; else num_labels, else HF's 2.
  if (j.contains("id2label") && !j["id2label"].is_null()) {
    const Json& m = j["id2label"];
    if (!m.is_object())
      return absl::InvalidArgumentError(absl::StrCat(what, ": id2label must be an object"));
    c.id2label.assign(m.size(), "");
    std::vector<bool> seen(m.size(), false);
    for (auto& [key, value] : m.items()) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || id < 0 || static_cast<size_t>(id) >= m.size() || seen[id]) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": id2label keys must be the ids 0..",
                                                       m.size() - 1, ", got '", key, "'"));
      }
      if (!value.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": id2label['", key, "'] must be a string"));
      }
      seen[id] = true;
      c.id2label[id] = value.get<std::string>();
    }
  } else {
    int64_t n = 2;
    RETURN_IF_ERROR(ReadInt(j, "num_labels", what, 1, &n));
    if (n > kMaxLabels) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": num_labels ", n, " is more than Berth accepts (", kMaxLabels, ")"));
    }
    for (int64_t i = 0; i < n; ++i) c.id2label.push_back(absl::StrCat("LABEL_", i));
  }
  if (c.id2label.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": no labels"));
  return c;
}

absl::StatusOr<ModelConfig> ModelConfig::Load(const std::string& path) {
  ASSIGN_OR_RETURN(Json j, ReadJsonFile(path));
  return FromJson(j, path);
}

Json ModelConfig::ToJson() const {
  Json j = raw.is_object() ? raw : Json::object();
  j["model_type"] = model_type;
  if (model_type == "distilbert") {
    j["vocab_size"] = vocab_size;
    j["dim"] = hidden_size;
    j["n_layers"] = num_hidden_layers;
    j["n_heads"] = num_attention_heads;
    j["hidden_dim"] = intermediate_size;
    j["activation"] = hidden_act;
    j["dropout"] = hidden_dropout_prob;
    j["attention_dropout"] = attention_probs_dropout_prob;
    j["seq_classif_dropout"] = EffectiveClassifierDropout();
    j["max_position_embeddings"] = max_position_embeddings;
    j["initializer_range"] = initializer_range;
    j["pad_token_id"] = pad_token_id;
    j["sinusoidal_pos_embds"] = false;
  } else {
    j["vocab_size"] = vocab_size;
    j["hidden_size"] = hidden_size;
    j["num_hidden_layers"] = num_hidden_layers;
    j["num_attention_heads"] = num_attention_heads;
    j["intermediate_size"] = intermediate_size;
    j["hidden_act"] = hidden_act;
    j["hidden_dropout_prob"] = hidden_dropout_prob;
    j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
    j["max_position_embeddings"] = max_position_embeddings;
    j["type_vocab_size"] = type_vocab_size;
    j["initializer_range"] = initializer_range;
    j["layer_norm_eps"] = layer_norm_eps;
    j["pad_token_id"] = pad_token_id;
    j["position_embedding_type"] = position_embedding_type;
    j["classifier_dropout"] = classifier_dropout ? Json(*classifier_dropout) : Json(nullptr);
  }
  Json id2label = Json::object();
  Json label2id = Json::object();
  for (size_t i = 0; i < this->id2label.size(); ++i) {
    id2label[std::to_string(i)] = this->id2label[i];
    label2id[this->id2label[i]] = i;
  }
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  j.erase("num_labels");
  if (!problem_type.empty()) j["problem_type"] = problem_type;
  // What Berth saves is a sequence classifier whatever its base was (a headless BertModel, a
  // BertForMaskedLM): tools that pick a model class from `architectures` (pipelines, TEI) must
  // see one.
  const char* arch = model_type == "distilbert"    ? "DistilBertForSequenceClassification"
                     : model_type == "xlm-roberta" ? "XLMRobertaForSequenceClassification"
                     : model_type == "roberta"     ? "RobertaForSequenceClassification"
                                                   : "BertForSequenceClassification";
  j["architectures"] = Json::array({arch});
  return j;
}

}  // namespace berth
