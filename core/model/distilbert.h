// DistilBERT and its sequence-classification head as torch modules named exactly as Hugging
// Face's state dict (distilbert.transformer.layer.N.attention.q_lin.weight, pre_classifier, ...).
#ifndef BERTH_CORE_MODEL_DISTILBERT_H_
#define BERTH_CORE_MODEL_DISTILBERT_H_

#include "core/model/bert.h"

namespace berth {

class DistilBertEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit DistilBertEmbeddingsImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& input_ids);  // [batch, seq] -> [batch, seq, dim]

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(DistilBertEmbeddings);

class DistilBertAttentionImpl : public torch::nn::Module, public QkvFusable {
 public:
  explicit DistilBertAttentionImpl(const ModelConfig& c);
  // From now on (until train()) inference of every row takes one product for Q, K and V.
  void FuseQkv() override;
  LinearImpl* FusedQkvLayer() const override { return qkv_.layer(); }
  void train(bool on = true) override;
  // x [batch, seq, dim], mask [batch, 1, 1, seq] additive -> [batch, seq, dim]; with a
  // packing, x and the result are packed [tokens, dim] (as BERT's); with first_token_only
  // (unpacked), the first token's row alone -> [batch, 1, dim].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask,
                        const TokenPacking* packing = nullptr, bool first_token_only = false);

  Linear q_lin{nullptr}, k_lin{nullptr}, v_lin{nullptr}, out_lin{nullptr};
  Dropout dropout{nullptr};
  int64_t num_heads, head_dim;

 private:
  FusedQkv qkv_;
};
TORCH_MODULE(DistilBertAttention);

class DistilBertFfnImpl : public torch::nn::Module {
 public:
  explicit DistilBertFfnImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x);

  Linear lin1{nullptr}, lin2{nullptr};
  Dropout dropout{nullptr};
  std::string act;
};
TORCH_MODULE(DistilBertFfn);

class DistilBertBlockImpl : public torch::nn::Module {
 public:
  explicit DistilBertBlockImpl(const ModelConfig& c);
  // Packed [tokens, dim] with a packing; with first_token_only, the block's output for the
  // first token alone -> [batch, 1, dim] (RunPackedLayers runs DistilBERT's blocks as BERT's).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask,
                        const TokenPacking* packing = nullptr, bool first_token_only = false);

  DistilBertAttention attention{nullptr};
  torch::nn::LayerNorm sa_layer_norm{nullptr};
  DistilBertFfn ffn{nullptr};
  torch::nn::LayerNorm output_layer_norm{nullptr};
};
TORCH_MODULE(DistilBertBlock);

// DistilBertForSequenceClassification: first token -> pre_classifier -> ReLU -> dropout ->
// classifier. Token types are ignored (the model has none).
class DistilBertForSequenceClassificationImpl : public SequenceClassifierModule {
 public:
  explicit DistilBertForSequenceClassificationImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                        const torch::Tensor& attention_mask) override;
  torch::Tensor Encode(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                       const torch::Tensor& attention_mask) override;
  torch::Tensor Head(const torch::Tensor& first_token) override;
  void InitWeights(double initializer_range) override;
  void InitHead(double initializer_range) override;
  std::vector<std::string> HeadPrefixes() const override {
    return {"pre_classifier.", "classifier."};
  }

  DistilBertEmbeddings embeddings{nullptr};  // registered as distilbert.embeddings
  torch::nn::ModuleList layers{nullptr};     // registered as distilbert.transformer.layer
  Linear pre_classifier{nullptr}, classifier{nullptr};
  Dropout dropout{nullptr};
};

}  // namespace berth

#endif  // BERTH_CORE_MODEL_DISTILBERT_H_
