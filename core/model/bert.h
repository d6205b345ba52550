// BERT encoder and sequence-classification head as torch modules whose parameter names are
// exactly Hugging Face's state-dict names (bert.embeddings.word_embeddings.weight, ...).
#ifndef BERTH_CORE_MODEL_BERT_H_
#define BERTH_CORE_MODEL_BERT_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/model/config.h"
#include "core/model/dropout.h"
#include "core/model/linear.h"

namespace berth {

// Applies the activation a config names (HF's ACT2FN).
torch::Tensor ApplyActivation(const std::string& name, const torch::Tensor& x);

// HF's _init_weights on `m` and every submodule: normal(0, std) Linear and Embedding weights,
// zero biases and padding rows, LayerNorm weight 1 and bias 0.
void InitModuleWeights(torch::nn::Module& m, double std);

// LayerNorm over hidden_size with the config's eps.
torch::nn::LayerNorm MakeLayerNorm(const ModelConfig& c);

// LayerNorm forward; bf16 inputs are normalised in fp32 (exact for the bf16 weights, and ~10x
// faster than torch 1.13's bf16 CPU kernel), the result rounded back to bf16.
torch::Tensor LayerNormForward(torch::nn::LayerNorm& ln, const torch::Tensor& x);

// Additive attention mask: 0 where attended, the dtype's lowest value where padded.
// attention_mask [batch, seq] of 0/1 -> [batch, 1, 1, seq]. An undefined attention_mask (every
// position is a token; see ModelAttentionMask) gives an undefined result.
torch::Tensor ExtendedAttentionMask(const torch::Tensor& attention_mask, torch::Dtype dtype);

// The additive mask as scaled_dot_product_attention takes it: none for an undefined mask, which
// lets SDPA pick its flash kernels (they take no mask), else in the queries' dtype.
std::optional<torch::Tensor> SdpaMask(const torch::Tensor& additive_mask, at::ScalarType dtype);

// The attention_mask a caller gives the model for a batch it built on the host: undefined when
// no row is padded and the batch runs on a GPU, as transformers drops an all-ones mask for SDPA
// (the host knows there is no padding, so unlike transformers' check nothing waits on the
// device); the mask itself on the CPU, whose numerics the golden tests pin, and whenever a row
// is padded.
torch::Tensor ModelAttentionMask(const torch::Tensor& mask, bool padded, const c10::Device& device);

// The real tokens of a right- (or any-) padded batch, packed: token-wise work (every Linear,
// LayerNorm, activation, dropout and residual) then skips the padding, and only attention
// sees the padded [batch, seq] layout. Real tokens' values are those of the padded
// computation up to rounding (the rows of a matrix product do not depend on each other; only
// the blocking of the product changes), so the logits agree with transformers to the same
// tolerance; a random batch of 32 SST-2 sentences is two-thirds padding (0.34 real/padded),
// which is that much less work.
struct TokenPacking {
  torch::Tensor
      index;  // [tokens] flat positions (row * seq + column) of the real tokens, ascending
  int64_t batch = 0, seq = 0;
  // [batch, seq, ...] -> [tokens, ...]
  torch::Tensor Pack(const torch::Tensor& padded) const;
  // [tokens, hidden] -> [batch, seq, hidden], zeros at the padding
  torch::Tensor Unpack(const torch::Tensor& packed) const;
};

// A packing for this attention mask [batch, seq] when it pays: CPU tensors (the token count
// is read on the host, which would stall a GPU stream) with at least 5% padding (below that
// the gathers and scatters cost about what they save).
std::optional<TokenPacking> PackingFor(const torch::Tensor& attention_mask);

// While one lives, forward passes on this thread compute what transformers computes: the
// padded layout (PackingFor says no) and every token's row of the last layer (no
// first_token_only shortcut). For benchmarks that compare against naive eager batching; the
// logits are the same up to rounding either way.
class ScopedFullComputation {
 public:
  ScopedFullComputation();
  ~ScopedFullComputation();
  ScopedFullComputation(const ScopedFullComputation&) = delete;
  ScopedFullComputation& operator=(const ScopedFullComputation&) = delete;

 private:
  bool previous_;
};

class BertEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit BertEmbeddingsImpl(const ModelConfig& c);
  // input_ids, token_type_ids [batch, seq] -> [batch, seq, hidden]
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids);

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr},
      token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(BertEmbeddings);

// An attention block whose query, key and value projections can run as one product
// (FusedQkv): what SequenceClassifierModule::FuseQkvProjections finds in every family.
class QkvFusable {
 public:
  virtual ~QkvFusable() = default;
  virtual void FuseQkv() = 0;
  // The fused product's layer, or null while unfused.
  virtual LinearImpl* FusedQkvLayer() const = 0;
  bool QkvFused() const { return FusedQkvLayer() != nullptr; }
};

// Both families' query, key and value heads, each [batch, heads, len, head_dim], of `hidden`
// ([batch, seq, H], or packed [tokens, H]): through the fused product (views of one tensor) when
// there is one, every row is wanted and autograd is off; else through the three layers, where
// first_token_only (unpacked) gives the first token's query alone (len 1).
std::array<torch::Tensor, 3> QkvHeads(const FusedQkv& fused, Linear& query, Linear& key,
                                      Linear& value, const torch::Tensor& hidden,
                                      const TokenPacking* packing, int64_t num_heads,
                                      int64_t head_dim, bool first_token_only);

class BertSelfAttentionImpl : public torch::nn::Module, public QkvFusable {
 public:
  explicit BertSelfAttentionImpl(const ModelConfig& c);
  // From now on (until train()) inference of every row takes one product for Q, K and V.
  void FuseQkv() override;
  LinearImpl* FusedQkvLayer() const override { return qkv_.layer(); }
  void train(bool on = true) override;
  // hidden [batch, seq, hidden], mask [batch, 1, 1, seq] additive -> [batch, seq, hidden];
  // with a packing, hidden and the result are packed [tokens, hidden]. With first_token_only
  // (unpacked), the first token's context alone -> [batch, 1, hidden] (keys and values of every
  // token, the query of the first).
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& mask,
                        const TokenPacking* packing = nullptr, bool first_token_only = false);

  Linear query{nullptr}, key{nullptr}, value{nullptr};
  Dropout dropout{nullptr};
  int64_t num_heads, head_dim;

 private:
  FusedQkv qkv_;
};
TORCH_MODULE(BertSelfAttention);

// Dense + dropout + residual LayerNorm: BertSelfOutput and BertOutput have this shape.
class BertResidualOutputImpl : public torch::nn::Module {
 public:
  BertResidualOutputImpl(int64_t in_features, const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);

  Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(BertResidualOutput);

class BertAttentionImpl : public torch::nn::Module {
 public:
  explicit BertAttentionImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& mask,
                        const TokenPacking* packing = nullptr, bool first_token_only = false);

  BertSelfAttention self{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

class BertIntermediateImpl : public torch::nn::Module {
 public:
  explicit BertIntermediateImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x);

  Linear dense{nullptr};
  std::string act;
};
TORCH_MODULE(BertIntermediate);

class BertLayerImpl : public torch::nn::Module {
 public:
  explicit BertLayerImpl(const ModelConfig& c);
  // With first_token_only (unpacked), the layer's output for the first token alone:
  // [batch, seq, hidden] -> [batch, 1, hidden].
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& mask,
                        const TokenPacking* packing = nullptr, bool first_token_only = false);

  BertAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertLayer);

// hidden [batch, seq, hidden] (the embeddings' output) through a list of BertLayers, packed
// when PackingFor says so -> [batch, seq, hidden] (zeros at padding when packed: nothing
// reads them). BERT and RoBERTa share it.
//
// With first_token_only, for a classification head that reads the first token alone: in
// evaluation mode the last layer computes only that token's row (its query, attention output
// and feed-forward; keys and values of every token), and the result is [batch, 1, hidden]. The
// same maths for that row; the other rows' last-layer work (about a twelfth of bert-base's
// forward, nearly half of a 2-layer model's) is skipped. In training mode, and under a
// ScopedFullComputation, every row is computed (dropout draws the same masks as transformers).
torch::Tensor RunBertLayers(const torch::nn::ModuleList& layers, torch::Tensor hidden,
                            const torch::Tensor& attention_mask, bool first_token_only = false);

// Whether a model's last layer may compute the first token's row alone (see RunBertLayers):
// in evaluation mode, outside a ScopedFullComputation. BERT, RoBERTa and DistilBERT ask it.
bool LastLayerFirstTokenOnly(const torch::nn::Module& last_layer);

// RunBertLayers for any layer type whose forward is (hidden, mask, packing, first_token_only):
// BERT's and DistilBERT's blocks share the packed layout and the last-layer shortcut.
template <typename LayerImpl>
torch::Tensor RunPackedLayers(const torch::nn::ModuleList& layers, torch::Tensor hidden,
                              const torch::Tensor& attention_mask, bool first_token_only) {
  const torch::Tensor mask = ExtendedAttentionMask(attention_mask, hidden.scalar_type());
  const std::optional<TokenPacking> packing = PackingFor(attention_mask);
  std::vector<LayerImpl*> all;
  for (const auto& layer : *layers) all.push_back(layer->template as<LayerImpl>());
  LayerImpl* last = first_token_only && !all.empty() && LastLayerFirstTokenOnly(*all.back())
                        ? all.back()
                        : nullptr;
  if (last != nullptr) all.pop_back();
  if (!packing) {
    for (LayerImpl* layer : all) hidden = layer->forward(hidden, mask);
  } else {
    hidden = packing->Pack(hidden);  // [tokens, hidden]
    for (LayerImpl* layer : all) hidden = layer->forward(hidden, mask, &*packing);
    hidden = packing->Unpack(hidden);
  }
  return last != nullptr ? last->forward(hidden, mask, nullptr, /*first_token_only=*/true) : hidden;
}

class BertModelImpl : public torch::nn::Module {
 public:
  explicit BertModelImpl(const ModelConfig& c);
  // Returns the pooled output [batch, hidden] (tanh(dense(first token))).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                        const torch::Tensor& attention_mask);
  // The last layer's hidden states [batch, seq, hidden], every row computed.
  torch::Tensor Encode(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                       const torch::Tensor& attention_mask);
  // tanh(dense(first token)) [batch, hidden].
  torch::Tensor Pool(const torch::Tensor& first_token);

  BertEmbeddings embeddings{nullptr};
  torch::nn::ModuleList layers{nullptr};  // registered as encoder.layer
  Linear pooler_dense{nullptr};           // registered as pooler.dense
};
TORCH_MODULE(BertModel);

// Every sequence classifier Berth trains or serves: inputs in, logits [batch, num_labels] out.
class SequenceClassifierModule : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                                const torch::Tensor& attention_mask) = 0;
  // The encoder's last hidden states for every token, [batch, seq, hidden] (zeros at padding
  // when packed): what sentence-transformers' Transformer module hands its Pooling
  // (token_embeddings). Every row of the last layer is computed.
  virtual torch::Tensor Encode(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                               const torch::Tensor& attention_mask) = 0;
  // The classification head on the first token's hidden state [batch, hidden] -> logits
  // [batch, num_labels]: forward() is Head(Encode(...)[:, 0]), with the last layer's other rows
  // skipped.
  virtual torch::Tensor Head(const torch::Tensor& first_token) = 0;
  // HF's _init_weights for every parameter: normal(0, initializer_range) for Linear and
  // Embedding weights, zero biases and padding rows, LayerNorm weight 1 and bias 0.
  virtual void InitWeights(double initializer_range) = 0;
  // Re-initialises only the classification head (a new label set on a pretrained encoder).
  virtual void InitHead(double initializer_range) = 0;
  // State-dict prefixes of the classification head (left out when a base model's head does
  // not fit the new labels).
  virtual std::vector<std::string> HeadPrefixes() const { return {"classifier."}; }
  // Fuses every attention block's Q, K and V projections for inference (QkvFusable), on the
  // device and in the precision the model will run in; train() undoes it. Nothing with
  // BERTH_NO_FUSED_QKV=1 (FusedQkvEnabled).
  void FuseQkvProjections();
  // Quantizes every layer DeferInt8 marked, the fused products' layers among them and their
  // parts left to their first forward (LinearImpl::QuantizeDeferredInt8, on `threads` threads).
  void QuantizeDeferredInt8(int threads);
};

class BertForSequenceClassificationImpl : public SequenceClassifierModule {
 public:
  explicit BertForSequenceClassificationImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                        const torch::Tensor& attention_mask) override;
  torch::Tensor Encode(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                       const torch::Tensor& attention_mask) override;
  torch::Tensor Head(const torch::Tensor& first_token) override;
  void InitWeights(double initializer_range) override;
  void InitHead(double initializer_range) override;

  BertModel bert{nullptr};
  Dropout dropout{nullptr};
  Linear classifier{nullptr};
};

// Builds the classifier module for config.model_type: the one place model families dispatch
// (core/model/families.cc).
absl::StatusOr<std::shared_ptr<SequenceClassifierModule>> CreateSequenceClassifier(
    const ModelConfig& config);

}  // namespace berth

#endif  // BERTH_CORE_MODEL_BERT_H_
