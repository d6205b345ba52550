// DistilBERT modules, numerically following transformers' modeling_distilbert.py (sdpa attention).
#include "core/model/distilbert.h"

#include <ATen/ATen.h>

namespace berth {

DistilBertEmbeddingsImpl::DistilBertEmbeddingsImpl(const ModelConfig& c) {
  torch::nn::EmbeddingOptions word_options = EmbeddingOptionsFor(c.vocab_size, c.hidden_size);
  if (c.pad_token_id < c.vocab_size) word_options.padding_idx(c.pad_token_id);
  word_embeddings = register_module("word_embeddings", torch::nn::Embedding(word_options));
  position_embeddings = register_module(
      "position_embeddings",
      torch::nn::Embedding(EmbeddingOptionsFor(c.max_position_embeddings, c.hidden_size)));
  LayerNorm = register_module("LayerNorm", MakeLayerNorm(c));
  dropout = register_module("dropout", Dropout(c.hidden_dropout_prob));
}

torch::Tensor DistilBertEmbeddingsImpl::forward(const torch::Tensor& input_ids) {
  torch::Tensor positions =
      at::arange(input_ids.size(1), input_ids.options()).unsqueeze(0);  // [1, seq]
  torch::Tensor x = word_embeddings(input_ids) + position_embeddings(positions);
  return dropout(LayerNormForward(LayerNorm, x));
}

DistilBertAttentionImpl::DistilBertAttentionImpl(const ModelConfig& c)
    : num_heads(c.num_attention_heads), head_dim(c.hidden_size / c.num_attention_heads) {
  q_lin = register_module("q_lin", Linear(c.hidden_size, c.hidden_size));
  k_lin = register_module("k_lin", Linear(c.hidden_size, c.hidden_size));
  v_lin = register_module("v_lin", Linear(c.hidden_size, c.hidden_size));
  out_lin = register_module("out_lin", Linear(c.hidden_size, c.hidden_size));
  dropout = register_module("dropout", Dropout(c.attention_probs_dropout_prob));
}

void DistilBertAttentionImpl::FuseQkv() { qkv_.Fuse(*q_lin, *k_lin, *v_lin); }

void DistilBertAttentionImpl::train(bool on) {
  qkv_.Reset();
  torch::nn::Module::train(on);
}

torch::Tensor DistilBertAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                               const TokenPacking* packing, bool first_token_only) {
  const int64_t batch = packing != nullptr ? packing->batch : x.size(0);
  const int64_t seq = packing != nullptr ? packing->seq : x.size(1);
  const int64_t queries = first_token_only ? 1 : seq;
  // transformers' default sdpa attention: one fused kernel, scaling by 1/sqrt(head_dim) inside
  // (the eager path scaled the queries first: the same maths, rounded differently).
  const auto [q, k, v] =
      QkvHeads(qkv_, q_lin, k_lin, v_lin, x, packing, num_heads, head_dim, first_token_only);
  torch::Tensor ctx = at::scaled_dot_product_attention(q, k, v, SdpaMask(mask, q.scalar_type()),
                                                       is_training() ? dropout->p() : 0.0)
                          .transpose(1, 2)
                          .contiguous()
                          .view({batch, queries, num_heads * head_dim});
  return out_lin(packing != nullptr ? packing->Pack(ctx) : ctx);
}

DistilBertFfnImpl::DistilBertFfnImpl(const ModelConfig& c) : act(c.hidden_act) {
  lin1 = register_module("lin1", Linear(c.hidden_size, c.intermediate_size));
  lin2 = register_module("lin2", Linear(c.intermediate_size, c.hidden_size));
  dropout = register_module("dropout", Dropout(c.hidden_dropout_prob));
}

torch::Tensor DistilBertFfnImpl::forward(const torch::Tensor& x) {
  return dropout(lin2(ApplyActivation(act, lin1(x))));
}

DistilBertBlockImpl::DistilBertBlockImpl(const ModelConfig& c) {
  attention = register_module("attention", DistilBertAttention(c));
  sa_layer_norm = register_module("sa_layer_norm", MakeLayerNorm(c));
  ffn = register_module("ffn", DistilBertFfn(c));
  output_layer_norm = register_module("output_layer_norm", MakeLayerNorm(c));
}

torch::Tensor DistilBertBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                           const TokenPacking* packing, bool first_token_only) {
  torch::Tensor sa =
      LayerNormForward(sa_layer_norm, attention->forward(x, mask, packing, first_token_only) +
                                          (first_token_only ? x.narrow(1, 0, 1) : x));
  return LayerNormForward(output_layer_norm, ffn(sa) + sa);
}

DistilBertForSequenceClassificationImpl::DistilBertForSequenceClassificationImpl(
    const ModelConfig& c) {
  auto distilbert = register_module("distilbert", std::make_shared<torch::nn::Module>());
  embeddings = distilbert->register_module("embeddings", DistilBertEmbeddings(c));
  auto transformer =
      distilbert->register_module("transformer", std::make_shared<torch::nn::Module>());
  layers = transformer->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DistilBertBlock(c));
  pre_classifier = register_module("pre_classifier", Linear(c.hidden_size, c.hidden_size));
  classifier = register_module("classifier", Linear(c.hidden_size, c.num_labels()));
  dropout = register_module("dropout", Dropout(c.EffectiveClassifierDropout()));
}

torch::Tensor DistilBertForSequenceClassificationImpl::forward(
    const torch::Tensor& input_ids, const torch::Tensor& /*token_type_ids*/,
    const torch::Tensor& attention_mask) {
  // Packed when it pays, and the last block computes the first token's row alone in evaluation
  // mode (the head reads no other): see RunBertLayers.
  torch::Tensor hidden = RunPackedLayers<DistilBertBlockImpl>(
      layers, embeddings(input_ids), attention_mask, /*first_token_only=*/true);
  return Head(hidden.select(1, 0));  // [batch, num_labels]
}

torch::Tensor DistilBertForSequenceClassificationImpl::Encode(
    const torch::Tensor& input_ids, const torch::Tensor& /*token_type_ids*/,
    const torch::Tensor& attention_mask) {
  return RunPackedLayers<DistilBertBlockImpl>(layers, embeddings(input_ids), attention_mask,
                                              /*first_token_only=*/false);
}

torch::Tensor DistilBertForSequenceClassificationImpl::Head(const torch::Tensor& first_token) {
  return classifier(dropout(at::relu(pre_classifier(first_token))));  // [batch, num_labels]
}

void DistilBertForSequenceClassificationImpl::InitWeights(double initializer_range) {
  InitModuleWeights(*this, initializer_range);
}

void DistilBertForSequenceClassificationImpl::InitHead(double initializer_range) {
  InitModuleWeights(*pre_classifier, initializer_range);
  InitModuleWeights(*classifier, initializer_range);
}

}  // namespace berth
