// Linear: at::linear for training and autograd, oneDNN (mkldnn::_linear_pointwise) for fp32 CPU
// inference. (Training through oneDNN inner products paid under torch 1.13; under 2.11 it made a
// bert-mini fine-tune ~20% slower than at::linear's MKL path, so training takes at::linear.)
#include "core/model/linear.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <fbgemm/Fbgemm.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "core/model/int8_rows.h"
#include "core/runtime/runtime.h"

namespace berth {

bool OneDnnLinearEnabled() {
  static const bool enabled = [] {
    const char* off = std::getenv("BERTH_NO_ONEDNN");
    return at::hasMKLDNN() && !(off != nullptr && std::string(off) == "1");
  }();
  return enabled;
}

bool FusedQkvEnabled() {
  static const bool enabled = [] {
    const char* off = std::getenv("BERTH_NO_FUSED_QKV");
    return !(off != nullptr && std::string(off) == "1");
  }();
  return enabled;
}

namespace {
thread_local bool skip_parameter_init = false;
}  // namespace

SkipParameterInit::SkipParameterInit() : previous_(skip_parameter_init) {
  skip_parameter_init = true;
}
SkipParameterInit::~SkipParameterInit() { skip_parameter_init = previous_; }
bool SkipParameterInit::active() { return skip_parameter_init; }

torch::nn::EmbeddingOptions EmbeddingOptionsFor(int64_t num_embeddings, int64_t dim) {
  torch::nn::EmbeddingOptions o(num_embeddings, dim);
  if (skip_parameter_init) o._weight(at::empty({num_embeddings, dim}));
  return o;
}

LinearImpl::LinearImpl(int64_t in, int64_t out) : in_features(in), out_features(out) {
  weight = register_parameter("weight", at::empty({out, in}));
  bias = register_parameter("bias", at::empty({out}));
  if (skip_parameter_init) return;
  // torch.nn.Linear's default initialisation; models re-initialise as transformers does.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  torch::NoGradGuard no_grad;
  weight.uniform_(-bound, bound);
  bias.uniform_(-bound, bound);
}

void LinearImpl::DropPackedWeight() {
  absl::MutexLock lock(&mu_);
  packed_ = torch::Tensor();
  int8_.reset();
  int8_deferred_ = false;
  fused_part_ = false;
}

void LinearImpl::QuantizeInt8(int64_t outlier_columns) {
  auto packed = PackInt8();
  absl::MutexLock lock(&mu_);
  int8_ = std::move(packed);
  int8_deferred_ = false;
  outlier_columns_ = std::clamp<int64_t>(outlier_columns, 0, in_features);
}

void LinearImpl::DeferInt8(int64_t outlier_columns) {
  absl::MutexLock lock(&mu_);
  int8_.reset();
  int8_deferred_ = true;
  outlier_columns_ = std::clamp<int64_t>(outlier_columns, 0, in_features);
}

void LinearImpl::QuantizeDeferredInt8() {
  LinearImpl* self = this;
  QuantizeDeferredInt8(absl::MakeConstSpan(&self, 1), 1);
}

namespace {

// The levels each side of the zero point an int8 layer's input rows are quantized to. fbgemm's
// AVX2 kernel sums pairs of uint8 x int8 products in 16 bits, which 8-bit activations can
// overflow: it wants them in 7 bits there. With AVX-512 VNNI it accumulates in 32 bits and takes
// all 8.
int Int8InputSteps() {
  static const int steps = HostCpuFeatures().avx512_vnni ? 127 : 63;
  return steps;
}

}  // namespace

// What the int8 product needs besides the input: the int8 weight packed for fbgemm's kernel (as
// quantized::linear_prepack packs it), each output channel's scale, and what the input's zero
// point adds to each output channel's sum (the zero point times the channel's sum of values),
// which comes off before the scales.
struct Int8Weights {
  std::unique_ptr<fbgemm::PackBMatrix<int8_t>> packed;
  std::vector<float> scales;
  std::vector<int32_t> input_offsets;
};

std::shared_ptr<const Int8Weights> LinearImpl::PackInt8() const { return Prepack(Int8Weight()); }

LinearImpl::RoundedInt8 LinearImpl::Int8Weight() const {
  torch::NoGradGuard no_grad;
  const at::Tensor w = weight.detach().to(at::kFloat).contiguous();
  const at::Tensor scales = (w.abs().amax(1) / 127.0).clamp_min(1e-12);
  // What at::quantize_per_channel computes (round half to even, symmetric, zero point 0), with
  // vectorized ops: its loop is scalar, and took most of a bert-base's time to quantize.
  const at::Tensor values = at::round(w / scales.unsqueeze(1)).clamp_(-127, 127).to(at::kChar);
  return {values, scales.contiguous()};
}

std::shared_ptr<const Int8Weights> LinearImpl::Prepack(const RoundedInt8& rounded) {
  TORCH_CHECK(fbgemm::fbgemmSupportedCPU(), "int8 needs a CPU with AVX2 (fbgemm's kernels)");
  torch::NoGradGuard no_grad;
  const at::Tensor& values = rounded.values;  // [out, in] int8, contiguous
  const int64_t out = values.size(0), in = values.size(1);
  auto weights = std::make_shared<Int8Weights>();
  weights->packed = std::make_unique<fbgemm::PackBMatrix<int8_t>>(
      fbgemm::matrix_op_t::Transpose, static_cast<int32_t>(in), static_cast<int32_t>(out),
      values.const_data_ptr<int8_t>(), static_cast<int32_t>(in), nullptr, 1);
  const at::Tensor& scales = rounded.scales;
  weights->scales.assign(scales.const_data_ptr<float>(), scales.const_data_ptr<float>() + out);
  const at::Tensor offsets = (values.sum(1, false, at::kInt) * (Int8InputSteps() + 1)).contiguous();
  weights->input_offsets.assign(offsets.const_data_ptr<int32_t>(),
                                offsets.const_data_ptr<int32_t>() + out);
  return weights;
}

void LinearImpl::QuantizeDeferredInt8(absl::Span<LinearImpl* const> layers, int threads) {
  std::vector<LinearImpl*> todo;
  for (LinearImpl* layer : layers) {
    absl::MutexLock lock(&layer->mu_);
    if (layer->int8_deferred_ && !layer->fused_part_) todo.push_back(layer);
  }
  std::vector<RoundedInt8> qweights;
  qweights.reserve(todo.size());
  for (LinearImpl* layer : todo) qweights.push_back(layer->Int8Weight());
  std::vector<std::shared_ptr<const Int8Weights>> packed(todo.size());
  std::atomic<size_t> next{0};
  const int workers = std::clamp<int>(threads, 1, std::max<int>(todo.size(), 1));
  std::vector<std::exception_ptr> errors(workers);
  auto work = [&](int worker) {
    try {
      for (size_t i; (i = next.fetch_add(1)) < todo.size();) {
        packed[i] = Prepack(qweights[i]);
        qweights[i] = RoundedInt8();
      }
    } catch (...) {
      errors[worker] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int worker = 1; worker < workers; ++worker) {
    try {
      pool.emplace_back(work, worker);
    } catch (const std::system_error&) {
      break;  // no thread to be had: the others take its share
    }
  }
  work(0);
  for (std::thread& t : pool) t.join();
  for (const std::exception_ptr& error : errors) {
    if (error) std::rethrow_exception(error);
  }
  for (size_t i = 0; i < todo.size(); ++i) {
    LinearImpl* layer = todo[i];
    absl::MutexLock lock(&layer->mu_);
    if (!layer->int8_deferred_) continue;  // dropped (train()) meanwhile
    layer->int8_ = std::move(packed[i]);
    layer->int8_deferred_ = false;
  }
}

void FusedQkv::Fuse(LinearImpl& query, LinearImpl& key, LinearImpl& value) {
  torch::NoGradGuard no_grad;
  const int64_t in = query.in_features;
  const int64_t out = query.out_features + key.out_features + value.out_features;
  Linear fused = [&] {
    SkipParameterInit skip;
    return Linear(in, out);
  }();
  // set_data takes the parts' device and dtype, as Module::to does.
  fused->weight.set_data(at::cat({query.weight, key.weight, value.weight}, 0));
  fused->bias.set_data(at::cat({query.bias, key.bias, value.bias}, 0));
  fused->eval();
  int64_t row = 0;
  for (LinearImpl* part : {&query, &key, &value}) {
    part->weight.set_(fused->weight.narrow(0, row, part->out_features));
    part->bias.set_(fused->bias.narrow(0, row, part->out_features));
    row += part->out_features;
    absl::MutexLock lock(&part->mu_);
    part->fused_part_ = true;
  }
  bool int8 = false, int8_deferred = false;
  {
    absl::MutexLock lock(&query.mu_);
    int8 = static_cast<bool>(query.int8_);
    int8_deferred = query.int8_deferred_;
  }
  if (int8) fused->QuantizeInt8();
  if (int8_deferred) fused->DeferInt8();
  fused_ = std::move(fused);
}

void LinearImpl::train(bool on) {
  DropPackedWeight();
  torch::nn::Module::train(on);
}

bool OneDnnLinearFor(int64_t rows, int64_t in_features, int64_t out_features) {
  if (!OneDnnLinearEnabled()) return false;
  const int64_t narrow = std::min(in_features, out_features);
  if (narrow >= kOneDnnMinFeatures) return true;
  static const bool avx512 = HostCpuFeatures().avx512;
  return avx512 && narrow >= kOneDnnMinFeaturesAvx512 && rows >= kOneDnnMinRowsAvx512;
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  // Training and GPU inference take at::linear; so does CPU inference of narrow layers without
  // int8 weights. One lock reads the int8 weight or the oneDNN copy (made on first use).
  if (c10::GradMode::is_enabled() || !x.device().is_cpu()) return at::linear(x, weight, bias);
  const int64_t rows = x.numel() / std::max<int64_t>(in_features, 1);
  const bool onednn = !is_training() && x.scalar_type() == at::kFloat &&
                      weight.scalar_type() == at::kFloat &&
                      OneDnnLinearFor(rows, in_features, out_features);
  std::shared_ptr<const Int8Weights> int8;
  int64_t outlier_columns = 0;
  at::Tensor packed;
  {
    absl::MutexLock lock(&mu_);
    if (int8_deferred_) {
      int8_ = PackInt8();
      int8_deferred_ = false;
    }
    int8 = int8_;
    outlier_columns = outlier_columns_;
    if (!int8 && onednn) {
      if (!packed_.defined()) packed_ = weight.contiguous().to_mkldnn();
      packed = packed_;
    }
  }
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out_features;
  if (int8) {
    const at::Tensor x2 = x.reshape({-1, in_features}).to(at::kFloat).contiguous();
    const int64_t n = x2.size(0);
    if (n == 0) return at::empty(shape, x2.options());
    const float* xp = x2.const_data_ptr<float>();
    at::Tensor keep = at::ones({in_features});
    at::Tensor columns;  // the outlier columns
    if (outlier_columns > 0) {
      at::Tensor column_max = at::empty({in_features});
      int8_rows::ColumnAbsMax(xp, n, in_features, column_max.mutable_data_ptr<float>());
      columns = std::get<1>(column_max.topk(outlier_columns));
      keep.index_fill_(0, columns, 0);
    }
    // Each row quantized at its own scale into uint8 (7 bits' [1, 127] where fbgemm wants 7),
    // fbgemm's kernel on the packed weight writing int32 sums into the output's storage, and one
    // pass that turns them into floats in place: the zero point's share off, the weight
    // channel's and the row's scales (row_max / steps) on, and the bias added.
    const int steps = Int8InputSteps();
    at::Tensor q = at::empty({n, in_features}, x2.options().dtype(at::kByte));
    at::Tensor row_max = at::empty({n});
    int8_rows::QuantizeRows(xp, keep.const_data_ptr<float>(), n, in_features, steps,
                            q.mutable_data_ptr<uint8_t>(), row_max.mutable_data_ptr<float>());
    at::Tensor out = at::empty({n, out_features});
    auto* sums = reinterpret_cast<int32_t*>(out.mutable_data_ptr<float>());
    // As torch's quantized linear runs it: one task per intra-op thread, each packing and
    // multiplying its share of the rows. With the output as its own accumulation buffer,
    // fbgemm's memCopy copies nothing.
    const int tasks = at::get_num_threads();
    ParallelFor(0, tasks, 1, [&](int64_t begin, int64_t end) {
      fbgemm::PackAMatrix<uint8_t> pack_a(fbgemm::matrix_op_t::NoTranspose, static_cast<int32_t>(n),
                                          static_cast<int32_t>(in_features),
                                          q.const_data_ptr<uint8_t>(),
                                          static_cast<int32_t>(in_features), nullptr, 1);
      fbgemm::DoNothing<int32_t, int32_t> done;
      const fbgemm::memCopy<> keep_sums(done);
      for (int64_t task = begin; task < end; ++task) {
        fbgemm::fbgemmPacked(pack_a, *int8->packed, sums, sums, static_cast<uint32_t>(out_features),
                             keep_sums, static_cast<int>(task), tasks);
      }
    });
    const at::Tensor row_scale = row_max / static_cast<float>(steps);
    const at::Tensor b = bias.to(at::kFloat).contiguous();
    int8_rows::DequantizeRows(sums, int8->input_offsets.data(), int8->scales.data(),
                              row_scale.const_data_ptr<float>(), b.const_data_ptr<float>(), n,
                              out_features);
    if (columns.defined()) {
      // The outlier columns' products, fp32, added in: out += x[:, columns] w[:, columns]^T.
      out.addmm_(x2.index_select(1, columns), weight.index_select(1, columns).t());
    }
    return out.view(shape);
  }
  if (!onednn) return at::linear(x, weight, bias);
  // The op torch's inductor emits for a CPU linear: a dense input and output (no copy into and
  // out of oneDNN's layout, which at::mkldnn_linear needs) with the prepacked weight.
  static auto linear_pointwise =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mkldnn::_linear_pointwise", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            c10::string_view, c10::List<std::optional<at::Scalar>>,
                            std::optional<c10::string_view>)>();
  const at::Tensor x2 = x.reshape({-1, in_features}).contiguous();
  return linear_pointwise
      .call(x2, packed, bias, "none", c10::List<std::optional<at::Scalar>>(), std::nullopt)
      .view(shape);
}

}  // namespace berth
