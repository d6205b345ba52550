// A Linear layer (HF parameter names `weight`, `bias`) whose fp32 CPU inference runs through
// oneDNN with a pre-packed weight when OneDnnLinearFor says so (both sizes at least
// kOneDnnMinFeatures: a bert-base forward ~1.1-1.2x faster than the BLAS path torch takes on
// this class of CPU; narrower layers on AVX-512 CPUs with enough rows), and through at::linear
// (MKL) otherwise. Training uses at::linear, which is faster there
// under torch 2.x.
#ifndef BERTH_CORE_MODEL_LINEAR_H_
#define BERTH_CORE_MODEL_LINEAR_H_

#include <torch/nn/module.h>
#include <torch/nn/options/embedding.h>
#include <torch/nn/pimpl.h>

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace berth {

struct Int8Weights;  // an int8 weight in fbgemm's packing (linear.cc)

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features);
  // x [..., in] -> [..., out]
  torch::Tensor forward(const torch::Tensor& x);
  // Switching mode (and loading weights, which happens in train mode or before first use)
  // drops the packed copy.
  void train(bool on = true) override;
  void DropPackedWeight();
  // From now on (until train()) inference runs through fbgemm's int8 linear: the weight
  // quantized per output channel (symmetric qint8, scale amax/127) and prepacked once, here.
  // Each forward quantizes every row of the input to uint8 at its own scale (its absolute
  // maximum maps to 127 from the zero point 128, or 63 from 64 on CPUs without VNNI; one scale
  // per row kept a fine-tuned MiniLM's labels with fp32's 98.9% of the time where one scale per
  // tensor kept 96.7%, with every encoder layer quantized and 7-bit activations on an AVX2 CPU),
  // fbgemm's kernel accumulates in int32, and the sums are scaled back (row and channel) before
  // the fp32 bias is added (core/model/int8_rows.h). CPU, fp32 only.
  // With outlier_columns > 0, each forward first takes that many input columns, those whose
  // largest magnitude in the call is largest, out of the int8 product and multiplies them with
  // their fp32 weight columns (LLM.int8()'s decomposition, the columns chosen per call): the
  // row scales then come from the remaining columns, so a few large channels no longer cost
  // every other value its bits. The fp32 weight is kept for them.
  void QuantizeInt8(int64_t outlier_columns = 0);
  // As QuantizeInt8, but the quantizing and prepacking wait for the layer's first forward or for
  // QuantizeDeferredInt8: a query, key or value layer whose fused product (FusedQkv) serves every
  // forward but the last block's first-token one is quantized once or never.
  void DeferInt8(int64_t outlier_columns = 0);
  // Quantizes a deferred layer now, unless it is a part of a fused Q/K/V product (FusedQkv::Fuse).
  void QuantizeDeferredInt8();
  // QuantizeDeferredInt8 for each of `layers`, the prepacking spread over `threads` threads (this
  // one among them). The rounding's tensor ops use ATen's own threads, one layer after another;
  // fbgemm's prepacking runs on one thread and, for bert-base, took most of the load's quantizing.
  static void QuantizeDeferredInt8(absl::Span<LinearImpl* const> layers, int threads);

  torch::Tensor weight, bias;
  int64_t in_features, out_features;

 private:
  friend class FusedQkv;

  // The weight quantized per output channel and prepacked for fbgemm (reads weight only):
  // Prepack(Int8Weight()).
  std::shared_ptr<const Int8Weights> PackInt8() const;
  // Per output channel, symmetric: values [out, in] int8 and scales [out] fp32.
  struct RoundedInt8 {
    at::Tensor values, scales;
  };
  RoundedInt8 Int8Weight() const;
  static std::shared_ptr<const Int8Weights> Prepack(const RoundedInt8& rounded);

  absl::Mutex mu_;
  torch::Tensor packed_ ABSL_GUARDED_BY(mu_);  // oneDNN copy of weight for inference
  std::shared_ptr<const Int8Weights> int8_ ABSL_GUARDED_BY(mu_);
  bool int8_deferred_ ABSL_GUARDED_BY(mu_) = false;  // DeferInt8, not yet quantized
  bool fused_part_ ABSL_GUARDED_BY(mu_) = false;     // FusedQkv::Fuse took it in
  int64_t outlier_columns_ ABSL_GUARDED_BY(mu_) = 0;
};
TORCH_MODULE(Linear);

// An attention block's query, key and value projections as one matrix product, for inference:
// one [3H, H] weight read once per call instead of three [H, H] ones (and, in int8, one scaling
// of the input rows instead of three). Fuse concatenates the three layers' weights and biases
// and points the layers' own at views of the result (so the model holds one copy); the fused
// layer runs in the mode the query layer does (int8 weights or the layer's dtype).
// Per-output-channel int8 scales and every output element's sum are those of the unfused
// layers; the products are the same maths, blocked differently. Fuse on the device and in the
// dtype the model will run in, after QuantizeInt8 or DeferInt8 (the fused layer is then deferred
// too); Reset (on train()) drops it.
class FusedQkv {
 public:
  void Fuse(LinearImpl& query, LinearImpl& key, LinearImpl& value);
  void Reset() { fused_ = nullptr; }
  bool fused() const { return !fused_.is_empty(); }
  // x [..., H] -> [..., 3H]: each row's query, key and value side by side.
  torch::Tensor operator()(const torch::Tensor& x) const { return fused_.ptr()->forward(x); }
  // The fused layer, or null before Fuse.
  LinearImpl* layer() const { return fused_.is_empty() ? nullptr : fused_.ptr().get(); }

 private:
  Linear fused_{nullptr};
};

// While one is alive on a thread, Linear layers and embeddings (EmbeddingOptionsFor)
// constructed on that thread leave their parameters uninitialised (at::empty): for a model
// whose every parameter is about to be loaded from a file, drawing bert-base's 110M initial
// values first cost a cold start ~0.7 s.
class SkipParameterInit {
 public:
  SkipParameterInit();
  ~SkipParameterInit();
  SkipParameterInit(const SkipParameterInit&) = delete;
  SkipParameterInit& operator=(const SkipParameterInit&) = delete;
  static bool active();

 private:
  bool previous_;
};

// torch::nn::Embedding's options, with an uninitialised weight while a SkipParameterInit is alive.
torch::nn::EmbeddingOptions EmbeddingOptionsFor(int64_t num_embeddings, int64_t dim);

// How many outlier columns (LinearImpl::QuantizeInt8) int8 gives a layer that takes `in_features`
// inputs when it quantizes the feed-forward output: 1%, rounded up (31 of bert-base's 3,072, 16 of
// MiniLM's 1,536). Measured on an AVX2-only CPU with 7-bit activations, on a fine-tuned MiniLM
// (labels against fp32 on 1,200 shipped SST-2 sentences; 0 columns: 1,190, 8: 1,193, 16: 1,195,
// 32: 1,193, the layer in fp32: 1,195; the mean logit difference fell from 0.035 to 0.031 with 16
// and 0.029 with 32, against 0.028 in fp32) and on bert-base, where 16 and 32 columns ran
// within the VM's noise of none (best of four: 63.6 and 63.0 against 64.9 sentences/s).
inline int64_t Int8OutlierColumns(int64_t in_features) { return (in_features + 99) / 100; }

// Whether fp32 inference uses oneDNN (false without MKLDNN or with BERTH_NO_ONEDNN=1).
bool OneDnnLinearEnabled();

// Whether inference fuses Q, K and V (FusedQkv; false with BERTH_NO_FUSED_QKV=1, for A/B runs).
bool FusedQkvEnabled();

// Below this many input or output features, fp32 inference takes at::linear even where oneDNN
// is enabled. Measured on the development VM (2 cores, AVX2, torch 2.11): oneDNN costs ~0.1 ms
// more per call and runs its products at a third of MKL's speed with 128 features (a bert-tiny
// forward of one 16-token text took 4-5 ms through it, 1.2 ms through MKL), 0.5-0.75x with 256
// and 384 (MiniLM's width); with 768 (bert-base) the engine's sorted batches ran 1.2x faster
// through it (29.2 against 24.3 sentences/s, means of 3 and 4 runs).
inline constexpr int64_t kOneDnnMinFeatures = 768;
// Where the CPU has AVX-512, narrower layers take oneDNN too when the call has enough rows
// (tokens): MKL's fp32 kernel there is its AVX2 one, and oneDNN's AVX-512 products ran
// 1.2-1.5x MKL's at 256-1536 features with 256 or more rows (Zen 4, 2 threads), about level at
// 128 rows, and slower below (its fixed cost per call). With 128 features (bert-tiny) it was
// 0.9x at every row count.
inline constexpr int64_t kOneDnnMinFeaturesAvx512 = 256;
inline constexpr int64_t kOneDnnMinRowsAvx512 = 128;

// Whether fp32 CPU inference of `rows` rows through a layer of these sizes takes oneDNN.
bool OneDnnLinearFor(int64_t rows, int64_t in_features, int64_t out_features);

}  // namespace berth

#endif  // BERTH_CORE_MODEL_LINEAR_H_
