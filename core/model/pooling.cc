// sentence-transformers' Pooling (sentence_transformer/modules/pooling.py), read and computed.
#include "core/model/pooling.h"

#include <ATen/ATen.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"

namespace berth {
namespace {

// The legacy boolean keys in sentence-transformers' order (its _LEGACY_POOLING_MODE_KWARGS).
constexpr std::pair<const char*, PoolingMode> kLegacyKeys[] = {
    {"pooling_mode_cls_token", PoolingMode::kCls},
    {"pooling_mode_max_tokens", PoolingMode::kMax},
    {"pooling_mode_mean_tokens", PoolingMode::kMean},
    {"pooling_mode_mean_sqrt_len_tokens", PoolingMode::kMeanSqrtLen},
    {"pooling_mode_weightedmean_tokens", PoolingMode::kWeightedMean},
    {"pooling_mode_lasttoken", PoolingMode::kLastToken},
};

absl::StatusOr<std::vector<PoolingMode>> ReadModes(const std::string& path) {
  ASSIGN_OR_RETURN(Json j, ReadJsonFile(path));
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  std::vector<PoolingMode> modes;
  if (j.contains("pooling_mode") && !j["pooling_mode"].is_null()) {
    const Json& m = j["pooling_mode"];
    std::vector<Json> names = m.is_array() ? m.get<std::vector<Json>>() : std::vector<Json>{m};
    for (const Json& name : names) {
      if (!name.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": field 'pooling_mode' must be a string or a list of strings"));
      }
      auto mode = ParsePoolingMode(name.get<std::string>());
      if (!mode.ok())
        return absl::InvalidArgumentError(absl::StrCat(path, ": ", mode.status().message()));
      modes.push_back(*mode);
    }
  } else {
    for (const auto& [key, mode] : kLegacyKeys) {
      ASSIGN_OR_RETURN(std::optional<bool> on, GetOptionalBool(j, key, path));
      if (on.value_or(false)) modes.push_back(mode);
    }
  }
  if (modes.empty()) modes.push_back(PoolingMode::kMean);  // sentence-transformers' default
  return modes;
}

}  // namespace

const char* PoolingModeName(PoolingMode mode) {
  switch (mode) {
    case PoolingMode::kCls:
      return "cls";
    case PoolingMode::kMax:
      return "max";
    case PoolingMode::kMean:
      return "mean";
    case PoolingMode::kMeanSqrtLen:
      return "mean_sqrt_len_tokens";
    case PoolingMode::kWeightedMean:
      return "weightedmean";
    case PoolingMode::kLastToken:
      return "lasttoken";
  }
  return "?";
}

absl::StatusOr<PoolingMode> ParsePoolingMode(const std::string& name) {
  for (PoolingMode m :
       {PoolingMode::kCls, PoolingMode::kMax, PoolingMode::kMean, PoolingMode::kMeanSqrtLen,
        PoolingMode::kWeightedMean, PoolingMode::kLastToken}) {
    if (name == PoolingModeName(m)) return m;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown pooling_mode '", name,
                   "' (cls, max, mean, mean_sqrt_len_tokens, weightedmean or lasttoken)"));
}

absl::StatusOr<PoolingConfig> ReadPoolingConfig(const std::string& dir) {
  PoolingConfig config;
  config.source = "default (mean)";
  const std::string modules_path = JoinPath(dir, "modules.json");
  if (!IsRegularFile(modules_path)) return config;
  ASSIGN_OR_RETURN(Json modules, ReadJsonFile(modules_path));
  if (!modules.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(modules_path, ": not a JSON list of modules"));
  }
  bool pooled = false;
  for (size_t i = 0; i < modules.size(); ++i) {
    const Json& m = modules[i];
    const std::string what = absl::StrCat(modules_path, ": module ", i);
    ASSIGN_OR_RETURN(std::optional<std::string> type, GetOptionalString(m, "type", what));
    ASSIGN_OR_RETURN(std::optional<std::string> path, GetOptionalString(m, "path", what));
    const std::string t = type.value_or("");
    auto ends_with = [&](absl::string_view suffix) {
      return t.size() >= suffix.size() &&
             t.compare(t.size() - suffix.size(), suffix.size(), suffix.data(), suffix.size()) == 0;
    };
    if (ends_with("Pooling")) {
      const std::string file = JoinPath(JoinPath(dir, path.value_or("")), "config.json");
      if (IsRegularFile(file)) {
        ASSIGN_OR_RETURN(config.modes, ReadModes(file));
        config.source = JoinPath(path.value_or(""), "config.json");
      }
      pooled = true;
    } else if (ends_with("Normalize")) {
      config.normalize = pooled;
    }
  }
  const std::string sbert = JoinPath(dir, "sentence_bert_config.json");
  if (IsRegularFile(sbert)) {
    ASSIGN_OR_RETURN(Json j, ReadJsonFile(sbert));
    ASSIGN_OR_RETURN(std::optional<int64_t> len, GetOptionalInt(j, "max_seq_length", sbert));
    if (len.has_value() && *len <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(sbert, ": field 'max_seq_length' must be positive"));
    }
    config.max_seq_length = static_cast<int>(len.value_or(0));
  }
  return config;
}

torch::Tensor PoolTokens(const PoolingConfig& config, const torch::Tensor& hidden_in,
                         const torch::Tensor& attention_mask) {
  // bf16 token states are accumulated in fp32, as sentence-transformers does for its sums; the
  // other modes read values that fp32 holds exactly.
  const torch::Tensor hidden = hidden_in.to(at::kFloat);
  const torch::Tensor mask = attention_mask.to(hidden.device());
  const int64_t seq = hidden.size(1);
  std::vector<torch::Tensor> out;
  for (PoolingMode mode : config.modes) {
    switch (mode) {
      case PoolingMode::kCls: {
        torch::Tensor first = mask.to(at::kInt).argmax(1);  // the first attended position
        out.push_back(
            hidden.gather(1, first.view({-1, 1, 1}).expand({-1, 1, hidden.size(2)})).squeeze(1));
        break;
      }
      case PoolingMode::kMax:
        out.push_back(hidden.masked_fill(mask.unsqueeze(-1).eq(0), -INFINITY).amax(1));
        break;
      case PoolingMode::kMean:
      case PoolingMode::kMeanSqrtLen: {
        torch::Tensor m = mask.unsqueeze(-1).to(at::kFloat);
        torch::Tensor sum = (hidden * m).sum(1);
        torch::Tensor count = m.sum(1).clamp_min(1e-9);
        out.push_back(sum / (mode == PoolingMode::kMean ? count : count.sqrt()));
        break;
      }
      case PoolingMode::kWeightedMean: {
        // Weights 1..seq by position; right-padded rows start at position 0 (no shift).
        torch::Tensor m = mask.unsqueeze(-1).to(at::kFloat);
        torch::Tensor w = at::arange(1, seq + 1, hidden.options()).view({1, -1, 1});
        w = w - mask.to(at::kInt).argmax(1).to(at::kFloat).view({-1, 1, 1});
        torch::Tensor wm = m * w;
        out.push_back((hidden * wm).sum(1) / wm.sum(1).clamp_min(1e-9));
        break;
      }
      case PoolingMode::kLastToken: {
        auto [values, indices] = mask.flip(1).max(1);
        indices = at::where(values.eq(0), at::full_like(indices, seq - 1), indices);
        torch::Tensor last = (seq - indices - 1).view({-1, 1, 1}).expand({-1, 1, hidden.size(2)});
        out.push_back((hidden * mask.unsqueeze(-1).to(at::kFloat)).gather(1, last).squeeze(1));
        break;
      }
    }
  }
  return out.size() == 1 ? out[0] : at::cat(out, -1);
}

}  // namespace berth
