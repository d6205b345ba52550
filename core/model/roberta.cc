// RoBERTa modules, numerically following transformers' modeling_roberta.py (4.36, eager).
#include "core/model/roberta.h"

#include <ATen/ATen.h>

namespace berth {

RobertaEmbeddingsImpl::RobertaEmbeddingsImpl(const ModelConfig& c) : padding_idx(c.pad_token_id) {
  word_embeddings = register_module(
      "word_embeddings",
      torch::nn::Embedding(
          EmbeddingOptionsFor(c.vocab_size, c.hidden_size).padding_idx(padding_idx)));
  position_embeddings = register_module(
      "position_embeddings",
      torch::nn::Embedding(
          EmbeddingOptionsFor(c.max_position_embeddings, c.hidden_size).padding_idx(padding_idx)));
  token_type_embeddings = register_module(
      "token_type_embeddings", torch::nn::Embedding(EmbeddingOptionsFor(
                                   std::max<int64_t>(c.type_vocab_size, 1), c.hidden_size)));
  LayerNorm = register_module("LayerNorm", MakeLayerNorm(c));
  dropout = register_module("dropout", Dropout(c.hidden_dropout_prob));
}

torch::Tensor RobertaEmbeddingsImpl::forward(const torch::Tensor& input_ids,
                                             const torch::Tensor& token_type_ids) {
  torch::Tensor real = input_ids.ne(padding_idx).to(at::kInt);  // [batch, seq]
  torch::Tensor positions = (at::cumsum(real, 1).to(at::kInt) * real).to(at::kLong) + padding_idx;
  torch::Tensor x = word_embeddings(input_ids) + token_type_embeddings(token_type_ids);
  x = x + position_embeddings(positions);  // [batch, seq, hidden]
  return dropout(LayerNormForward(LayerNorm, x));
}

RobertaClassificationHeadImpl::RobertaClassificationHeadImpl(const ModelConfig& c) {
  dense = register_module("dense", Linear(c.hidden_size, c.hidden_size));
  out_proj = register_module("out_proj", Linear(c.hidden_size, c.num_labels()));
  dropout = register_module("dropout", Dropout(c.EffectiveClassifierDropout()));
}

torch::Tensor RobertaClassificationHeadImpl::forward(const torch::Tensor& first_token) {
  return out_proj(dropout(at::tanh(dense(dropout(first_token)))));
}

RobertaForSequenceClassificationImpl::RobertaForSequenceClassificationImpl(const ModelConfig& c) {
  auto roberta = register_module("roberta", std::make_shared<torch::nn::Module>());
  embeddings = roberta->register_module("embeddings", RobertaEmbeddings(c));
  auto encoder = roberta->register_module("encoder", std::make_shared<torch::nn::Module>());
  layers = encoder->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(BertLayer(c));
  classifier = register_module("classifier", RobertaClassificationHead(c));
}

torch::Tensor RobertaForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                            const torch::Tensor& token_type_ids,
                                                            const torch::Tensor& attention_mask) {
  torch::Tensor hidden =
      RunBertLayers(layers, embeddings(input_ids, token_type_ids), attention_mask,
                    /*first_token_only=*/true);
  return classifier(hidden.select(1, 0));  // [batch, num_labels]
}

torch::Tensor RobertaForSequenceClassificationImpl::Encode(const torch::Tensor& input_ids,
                                                           const torch::Tensor& token_type_ids,
                                                           const torch::Tensor& attention_mask) {
  return RunBertLayers(layers, embeddings(input_ids, token_type_ids), attention_mask);
}

torch::Tensor RobertaForSequenceClassificationImpl::Head(const torch::Tensor& first_token) {
  return classifier(first_token);
}

void RobertaForSequenceClassificationImpl::InitWeights(double initializer_range) {
  InitModuleWeights(*this, initializer_range);
}

void RobertaForSequenceClassificationImpl::InitHead(double initializer_range) {
  InitModuleWeights(*classifier, initializer_range);
}

}  // namespace berth
