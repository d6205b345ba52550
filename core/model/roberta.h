// RoBERTa / XLM-RoBERTa for sequence classification, named exactly as Hugging Face's state
// dict (roberta.embeddings..., roberta.encoder.layer.N..., classifier.dense, classifier.out_proj).
// The encoder layers are BERT's; the embeddings number positions after the padding index.
#ifndef BERTH_CORE_MODEL_ROBERTA_H_
#define BERTH_CORE_MODEL_ROBERTA_H_

#include "core/model/bert.h"

namespace berth {

class RobertaEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit RobertaEmbeddingsImpl(const ModelConfig& c);
  // input_ids, token_type_ids [batch, seq] -> [batch, seq, hidden]. Positions count real
  // tokens from padding_idx + 1; padding keeps padding_idx (HF's
  // create_position_ids_from_input_ids).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids);

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr},
      token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  Dropout dropout{nullptr};
  int64_t padding_idx;
};
TORCH_MODULE(RobertaEmbeddings);

// dropout -> dense -> tanh -> dropout -> out_proj, on the first token (<s>).
class RobertaClassificationHeadImpl : public torch::nn::Module {
 public:
  explicit RobertaClassificationHeadImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& first_token);  // [batch, hidden] -> [batch, labels]

  Linear dense{nullptr}, out_proj{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(RobertaClassificationHead);

class RobertaForSequenceClassificationImpl : public SequenceClassifierModule {
 public:
  explicit RobertaForSequenceClassificationImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                        const torch::Tensor& attention_mask) override;
  torch::Tensor Encode(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                       const torch::Tensor& attention_mask) override;
  torch::Tensor Head(const torch::Tensor& first_token) override;
  void InitWeights(double initializer_range) override;
  void InitHead(double initializer_range) override;

  RobertaEmbeddings embeddings{nullptr};  // registered as roberta.embeddings
  torch::nn::ModuleList layers{nullptr};  // registered as roberta.encoder.layer
  RobertaClassificationHead classifier{nullptr};
};

}  // namespace berth

#endif  // BERTH_CORE_MODEL_ROBERTA_H_
