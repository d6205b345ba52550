// BERT modules, numerically following transformers' modeling_bert.py (4.36, eager attention).
#include "core/model/bert.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/nn/init.h>

#include <cmath>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace berth {

torch::nn::LayerNorm MakeLayerNorm(const ModelConfig& c) {
  return torch::nn::LayerNorm(
      torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps).elementwise_affine(true));
}

void InitModuleWeights(torch::nn::Module& m, double std) {
  torch::NoGradGuard no_grad;
  for (auto& child : m.modules(/*include_self=*/true)) {
    if (auto* lin = child->as<Linear>()) {
      lin->DropPackedWeight();
      lin->weight.normal_(0.0, std);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* emb = child->as<torch::nn::Embedding>()) {
      emb->weight.normal_(0.0, std);
      if (emb->options.padding_idx().has_value()) emb->weight[*emb->options.padding_idx()].zero_();
    } else if (auto* ln = child->as<torch::nn::LayerNorm>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  }
}

torch::Tensor LayerNormForward(torch::nn::LayerNorm& ln, const torch::Tensor& x) {
  if (x.scalar_type() == at::kBFloat16 && x.device().is_cpu()) {
    return at::layer_norm(x.to(at::kFloat), ln->options.normalized_shape(),
                          ln->weight.to(at::kFloat), ln->bias.to(at::kFloat), ln->options.eps())
        .to(at::kBFloat16);
  }
  return ln(x);
}

torch::Tensor ApplyActivation(const std::string& name, const torch::Tensor& x) {
  if (name == "gelu") return at::gelu(x);
  if (name == "relu") return at::relu(x);
  if (name == "gelu_pytorch_tanh") return at::gelu(x, "tanh");
  if (name == "gelu_new") {
    // NewGELUActivation, written out as transformers does.
    return 0.5 * x * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * at::pow(x, 3.0))));
  }
  if (name == "gelu_fast") {
    return 0.5 * x * (1.0 + at::tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)));
  }
  if (name == "quick_gelu") return x * at::sigmoid(1.702 * x);
  if (name == "silu" || name == "swish") return at::silu(x);
  if (name == "tanh") return at::tanh(x);
  TORCH_CHECK(false, "unsupported activation ", name);  // config validation rules this out
}

torch::Tensor ExtendedAttentionMask(const torch::Tensor& attention_mask, torch::Dtype dtype) {
  if (!attention_mask.defined()) return {};
  // [batch, seq] -> [batch, 1, 1, seq]; (1 - mask) * finfo(dtype).min as in HF.
  torch::Tensor m = attention_mask.unsqueeze(1).unsqueeze(2).to(dtype);
  double lowest = dtype == torch::kFloat32    ? std::numeric_limits<float>::lowest()
                  : dtype == torch::kFloat64  ? std::numeric_limits<double>::lowest()
                  : dtype == torch::kBFloat16 ? -3.3895313892515355e+38
                                              : -65504.0;  // float16
  return (1.0 - m) * lowest;
}

std::optional<torch::Tensor> SdpaMask(const torch::Tensor& additive_mask, at::ScalarType dtype) {
  if (!additive_mask.defined()) return std::nullopt;
  return additive_mask.to(dtype);
}

torch::Tensor ModelAttentionMask(const torch::Tensor& mask, bool padded,
                                 const c10::Device& device) {
  return padded || device.is_cpu() ? mask : torch::Tensor();
}

torch::Tensor TokenPacking::Pack(const torch::Tensor& padded) const {
  std::vector<int64_t> shape = padded.sizes().vec();
  shape.erase(shape.begin());
  shape[0] = batch * seq;
  return padded.reshape(shape).index_select(0, index);
}

torch::Tensor TokenPacking::Unpack(const torch::Tensor& packed) const {
  return at::zeros({batch * seq, packed.size(1)}, packed.options())
      .index_copy(0, index, packed)
      .view({batch, seq, packed.size(1)});
}

namespace {
thread_local bool t_full_computation = false;
}  // namespace

ScopedFullComputation::ScopedFullComputation() : previous_(t_full_computation) {
  t_full_computation = true;
}
ScopedFullComputation::~ScopedFullComputation() { t_full_computation = previous_; }

bool LastLayerFirstTokenOnly(const torch::nn::Module& last_layer) {
  return !last_layer.is_training() && !t_full_computation;
}

std::optional<TokenPacking> PackingFor(const torch::Tensor& attention_mask) {
  if (t_full_computation || !attention_mask.defined() || !attention_mask.device().is_cpu() ||
      attention_mask.dim() != 2) {
    return std::nullopt;
  }
  const int64_t positions = attention_mask.numel();
  torch::Tensor index = attention_mask.reshape({-1}).nonzero().squeeze(1);
  if (index.size(0) == 0 ||
      static_cast<double>(index.size(0)) > 0.95 * static_cast<double>(positions)) {
    return std::nullopt;
  }
  return TokenPacking{index, attention_mask.size(0), attention_mask.size(1)};
}

torch::Tensor RunBertLayers(const torch::nn::ModuleList& layers, torch::Tensor hidden,
                            const torch::Tensor& attention_mask, bool first_token_only) {
  return RunPackedLayers<BertLayerImpl>(layers, std::move(hidden), attention_mask,
                                        first_token_only);
}

BertEmbeddingsImpl::BertEmbeddingsImpl(const ModelConfig& c) {
  torch::nn::EmbeddingOptions word_options = EmbeddingOptionsFor(c.vocab_size, c.hidden_size);
  if (c.pad_token_id < c.vocab_size) word_options.padding_idx(c.pad_token_id);
  word_embeddings = register_module("word_embeddings", torch::nn::Embedding(word_options));
  position_embeddings = register_module(
      "position_embeddings",
      torch::nn::Embedding(EmbeddingOptionsFor(c.max_position_embeddings, c.hidden_size)));
  token_type_embeddings = register_module(
      "token_type_embeddings", torch::nn::Embedding(EmbeddingOptionsFor(
                                   std::max<int64_t>(c.type_vocab_size, 1), c.hidden_size)));
  LayerNorm = register_module("LayerNorm", MakeLayerNorm(c));
  dropout = register_module("dropout", Dropout(c.hidden_dropout_prob));
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& input_ids,
                                          const torch::Tensor& token_type_ids) {
  const int64_t seq = input_ids.size(1);
  torch::Tensor positions = at::arange(seq, input_ids.options()).unsqueeze(0);  // [1, seq]
  torch::Tensor x = word_embeddings(input_ids) + token_type_embeddings(token_type_ids);
  x = x + position_embeddings(positions);  // [batch, seq, hidden]
  return dropout(LayerNormForward(LayerNorm, x));
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const ModelConfig& c)
    : num_heads(c.num_attention_heads), head_dim(c.hidden_size / c.num_attention_heads) {
  query = register_module("query", Linear(c.hidden_size, c.hidden_size));
  key = register_module("key", Linear(c.hidden_size, c.hidden_size));
  value = register_module("value", Linear(c.hidden_size, c.hidden_size));
  dropout = register_module("dropout", Dropout(c.attention_probs_dropout_prob));
}

std::array<torch::Tensor, 3> QkvHeads(const FusedQkv& fused, Linear& query, Linear& key,
                                      Linear& value, const torch::Tensor& hidden,
                                      const TokenPacking* packing, int64_t num_heads,
                                      int64_t head_dim, bool first_token_only) {
  const int64_t batch = packing != nullptr ? packing->batch : hidden.size(0);
  const int64_t seq = packing != nullptr ? packing->seq : hidden.size(1);
  auto unpacked = [&](const torch::Tensor& t) {
    return packing != nullptr ? packing->Unpack(t) : t;
  };
  if (fused.fused() && !first_token_only && !c10::GradMode::is_enabled()) {
    // [..., 3H]: Q, K, V side by side -> [batch, seq, 3, heads, dim] -> [3, batch, heads, seq, dim]
    const torch::Tensor qkv =
        unpacked(fused(hidden)).view({batch, seq, 3, num_heads, head_dim}).permute({2, 0, 3, 1, 4});
    return {qkv[0], qkv[1], qkv[2]};
  }
  auto heads = [&](const torch::Tensor& t, int64_t len) {  // -> [batch, heads, len, dim]
    return unpacked(t).view({batch, len, num_heads, head_dim}).permute({0, 2, 1, 3});
  };
  return {
      heads(query(first_token_only ? hidden.narrow(1, 0, 1) : hidden), first_token_only ? 1 : seq),
      heads(key(hidden), seq), heads(value(hidden), seq)};
}

void SequenceClassifierModule::FuseQkvProjections() {
  if (!FusedQkvEnabled()) return;
  for (const std::shared_ptr<torch::nn::Module>& m : modules()) {
    if (auto* block = dynamic_cast<QkvFusable*>(m.get())) block->FuseQkv();
  }
}

void SequenceClassifierModule::QuantizeDeferredInt8(int threads) {
  std::vector<LinearImpl*> layers;
  for (const std::shared_ptr<torch::nn::Module>& m : modules()) {
    if (auto* linear = dynamic_cast<LinearImpl*>(m.get())) layers.push_back(linear);
    if (auto* block = dynamic_cast<QkvFusable*>(m.get())) {
      if (LinearImpl* fused = block->FusedQkvLayer()) layers.push_back(fused);
    }
  }
  LinearImpl::QuantizeDeferredInt8(layers, threads);
}

void BertSelfAttentionImpl::FuseQkv() { qkv_.Fuse(*query, *key, *value); }

void BertSelfAttentionImpl::train(bool on) {
  qkv_.Reset();
  torch::nn::Module::train(on);
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& hidden, const torch::Tensor& mask,
                                             const TokenPacking* packing, bool first_token_only) {
  const int64_t batch = packing != nullptr ? packing->batch : hidden.size(0);
  const int64_t seq = packing != nullptr ? packing->seq : hidden.size(1);
  const int64_t queries = first_token_only ? 1 : seq;
  const auto [q, k, v] =
      QkvHeads(qkv_, query, key, value, hidden, packing, num_heads, head_dim, first_token_only);
  // One fused kernel (flash or memory-efficient attention on CUDA, the flash CPU kernel here),
  // the same maths as transformers' sdpa attention; the additive mask takes the query's dtype
  // under autocast.
  torch::Tensor ctx = at::scaled_dot_product_attention(q, k, v, SdpaMask(mask, q.scalar_type()),
                                                       is_training() ? dropout->p() : 0.0);
  ctx = ctx.permute({0, 2, 1, 3}).contiguous().view({batch, queries, num_heads * head_dim});
  return packing != nullptr ? packing->Pack(ctx) : ctx;
}

BertResidualOutputImpl::BertResidualOutputImpl(int64_t in_features, const ModelConfig& c) {
  dense = register_module("dense", Linear(in_features, c.hidden_size));
  LayerNorm = register_module("LayerNorm", MakeLayerNorm(c));
  dropout = register_module("dropout", Dropout(c.hidden_dropout_prob));
}

torch::Tensor BertResidualOutputImpl::forward(const torch::Tensor& x,
                                              const torch::Tensor& residual) {
  return LayerNormForward(LayerNorm, dropout(dense(x)) + residual);
}

BertAttentionImpl::BertAttentionImpl(const ModelConfig& c) {
  self = register_module("self", BertSelfAttention(c));
  output = register_module("output", BertResidualOutput(c.hidden_size, c));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& hidden, const torch::Tensor& mask,
                                         const TokenPacking* packing, bool first_token_only) {
  return output(self->forward(hidden, mask, packing, first_token_only),
                first_token_only ? hidden.narrow(1, 0, 1) : hidden);
}

BertIntermediateImpl::BertIntermediateImpl(const ModelConfig& c) : act(c.hidden_act) {
  dense = register_module("dense", Linear(c.hidden_size, c.intermediate_size));
}

torch::Tensor BertIntermediateImpl::forward(const torch::Tensor& x) {
  return ApplyActivation(act, dense(x));
}

BertLayerImpl::BertLayerImpl(const ModelConfig& c) {
  attention = register_module("attention", BertAttention(c));
  intermediate = register_module("intermediate", BertIntermediate(c));
  output = register_module("output", BertResidualOutput(c.intermediate_size, c));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& hidden, const torch::Tensor& mask,
                                     const TokenPacking* packing, bool first_token_only) {
  torch::Tensor a = attention->forward(hidden, mask, packing, first_token_only);
  return output(intermediate(a), a);
}

BertModelImpl::BertModelImpl(const ModelConfig& c) {
  embeddings = register_module("embeddings", BertEmbeddings(c));
  // HF nests the layers as encoder.layer.N and the pooler as pooler.dense.
  auto encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
  layers = encoder->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(BertLayer(c));
  auto pooler = register_module("pooler", std::make_shared<torch::nn::Module>());
  pooler_dense = pooler->register_module("dense", Linear(c.hidden_size, c.hidden_size));
}

torch::Tensor BertModelImpl::forward(const torch::Tensor& input_ids,
                                     const torch::Tensor& token_type_ids,
                                     const torch::Tensor& attention_mask) {
  torch::Tensor hidden = RunBertLayers(layers, embeddings(input_ids, token_type_ids),
                                       attention_mask, /*first_token_only=*/true);
  return Pool(hidden.select(1, 0));
}

torch::Tensor BertModelImpl::Encode(const torch::Tensor& input_ids,
                                    const torch::Tensor& token_type_ids,
                                    const torch::Tensor& attention_mask) {
  return RunBertLayers(layers, embeddings(input_ids, token_type_ids), attention_mask);
}

torch::Tensor BertModelImpl::Pool(const torch::Tensor& first_token) {
  return at::tanh(pooler_dense(first_token));  // [batch, hidden]
}

BertForSequenceClassificationImpl::BertForSequenceClassificationImpl(const ModelConfig& c) {
  bert = register_module("bert", BertModel(c));
  dropout = register_module("dropout", Dropout(c.EffectiveClassifierDropout()));
  classifier = register_module("classifier", Linear(c.hidden_size, c.num_labels()));
}

torch::Tensor BertForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                         const torch::Tensor& token_type_ids,
                                                         const torch::Tensor& attention_mask) {
  torch::Tensor pooled = bert(input_ids, token_type_ids, attention_mask);  // [batch, hidden]
  return classifier(dropout(pooled));                                      // [batch, num_labels]
}

torch::Tensor BertForSequenceClassificationImpl::Encode(const torch::Tensor& input_ids,
                                                        const torch::Tensor& token_type_ids,
                                                        const torch::Tensor& attention_mask) {
  return bert->Encode(input_ids, token_type_ids, attention_mask);
}

torch::Tensor BertForSequenceClassificationImpl::Head(const torch::Tensor& first_token) {
  return classifier(dropout(bert->Pool(first_token)));
}

void BertForSequenceClassificationImpl::InitWeights(double initializer_range) {
  InitModuleWeights(*this, initializer_range);
}

void BertForSequenceClassificationImpl::InitHead(double initializer_range) {
  InitModuleWeights(*classifier, initializer_range);
}

}  // namespace berth
