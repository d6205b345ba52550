// Sentence embeddings as sentence-transformers makes them from an encoder's token states:
// modules.json, 1_Pooling/config.json, a Normalize module and sentence_bert_config.json read from
// the model directory, and the pooling itself over [batch, seq, hidden].
#ifndef BERTH_CORE_MODEL_POOLING_H_
#define BERTH_CORE_MODEL_POOLING_H_

#include <torch/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace berth {

// sentence-transformers' pooling modes, in the order its legacy pooling_mode_* keys list them
// (several modes concatenate in the order the config gives).
enum class PoolingMode { kCls, kMax, kMean, kMeanSqrtLen, kWeightedMean, kLastToken };

struct PoolingConfig {
  std::vector<PoolingMode> modes = {
      PoolingMode::kMean};  // no files: mean, as sentence-transformers
  bool normalize = false;   // modules.json has a Normalize module after the pooling
  int max_seq_length = 0;   // sentence_bert_config.json's (0: the tokenizer's)
  std::string source;  // where it came from, for `describe` ("1_Pooling/config.json", "default")
};

// The pooling of the model directory `dir`. A directory without modules.json pools by mean and
// does not normalise (SentenceTransformer(dir) on a plain transformers checkpoint). Errors name
// the file and the field.
absl::StatusOr<PoolingConfig> ReadPoolingConfig(const std::string& dir);

// The modes' names as sentence-transformers writes them ("cls", "mean", ...), and back.
const char* PoolingModeName(PoolingMode mode);
absl::StatusOr<PoolingMode> ParsePoolingMode(const std::string& name);

// Pools hidden [batch, seq, hidden] under attention_mask [batch, seq] (1 real, 0 padding) into
// [batch, hidden * modes] fp32, exactly as sentence-transformers' Pooling._forward_padded does for
// right-padded rows (bf16 states are accumulated in fp32). Normalisation is the caller's.
torch::Tensor PoolTokens(const PoolingConfig& config, const torch::Tensor& hidden,
                         const torch::Tensor& attention_mask);

}  // namespace berth

#endif  // BERTH_CORE_MODEL_POOLING_H_
