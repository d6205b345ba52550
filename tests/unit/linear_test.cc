// Linear's fp32 CPU inference paths (oneDNN with a prepacked weight, or at::linear) against
// at::linear, at the widths and row counts where OneDnnLinearFor switches between them.
#include "core/model/linear.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <tuple>
#include <vector>

#include "core/runtime/runtime.h"

namespace berth {
namespace {

TEST(LinearTest, OneDnnOnlyWhereItWasMeasuredFaster) {
  const bool on = OneDnnLinearEnabled();
  const bool avx512 = HostCpuFeatures().avx512;
  EXPECT_EQ(OneDnnLinearFor(16, 768, 3072), on);             // bert-base: every row count
  EXPECT_EQ(OneDnnLinearFor(512, 128, 512), false);          // bert-tiny: never
  EXPECT_EQ(OneDnnLinearFor(512, 384, 1536), on && avx512);  // MiniLM, enough rows
  EXPECT_EQ(OneDnnLinearFor(1536, 1536, 384), on && avx512);
  EXPECT_EQ(OneDnnLinearFor(kOneDnnMinRowsAvx512 - 1, 384, 1536), false);  // one short text
}

// Each output is a sum of `in` products; the paths add them in different orders. fp32 rounding
// of such a sum is bounded by in * 2^-24 * sum|x_i w_i| (the classic gamma_n bound); the
// tolerance takes that bound with in = 1536, against the sum of magnitudes of each output.
TEST(LinearTest, InferencePathsEqualAtLinearWithinFp32Rounding) {
  torch::manual_seed(0);
  for (const auto& [rows, in, out] : {std::tuple<int64_t, int64_t, int64_t>{16, 384, 1536},
                                      {300, 384, 1536},
                                      {300, 1536, 384},
                                      {40, 768, 768},
                                      {200, 128, 512}}) {
    Linear layer(in, out);
    layer->eval();
    const at::Tensor x = at::randn({2, rows / 2, in});
    torch::NoGradGuard no_grad;
    const at::Tensor want = at::linear(x, layer->weight, layer->bias);
    const at::Tensor got = layer->forward(x);
    ASSERT_EQ(got.sizes(), want.sizes());
    const at::Tensor magnitude =
        at::linear(x.abs(), layer->weight.abs(), layer->bias.abs()) + 1e-30;
    const double worst = ((got - want).abs() / magnitude).max().item<double>();
    EXPECT_LE(worst, 1536.0 / (1 << 24)) << rows << " x " << in << " -> " << out;
    // A second call reuses the packed weight and gives the same answer.
    EXPECT_TRUE(at::equal(layer->forward(x), got));
  }
}

// The int8 weight, per output channel: scale = the row's largest magnitude / 127, each value
// round(w / scale), half to even, as torch computes them. Read back through products with the
// identity: input row j is 1 at column j and 0 elsewhere, which the kernel quantizes exactly (to
// its top level), so output j, channel o, is value[o][j] x scale[o] up to the float rounding of
// the dequantizing factors (a few ulps), far inside the 1 between neighbouring values.
TEST(LinearTest, Int8WeightsAreRoundedPerChannelHalfToEven) {
  torch::manual_seed(3);
  const int64_t in = 64, out = 32;
  torch::NoGradGuard no_grad;
  Linear layer(in, out);
  layer->eval();
  layer->bias.zero_();
  // Rows 0 and 1 have scale 1 (largest magnitude 127), so these values are ties.
  const std::vector<float> ties = {127, 2.5, 3.5, -2.5, -3.5, 0.5, -0.5, 126.5};
  for (size_t c = 0; c < ties.size(); ++c) {
    layer->weight[0][static_cast<int64_t>(c)] = ties[c];
    layer->weight[1][static_cast<int64_t>(c)] = -ties[c];
  }
  layer->weight[2].zero_();  // an all-zero channel: its scale is clamped, its values 0
  const at::Tensor scale = (layer->weight.abs().amax(1) / 127.0).clamp_min(1e-12);
  const at::Tensor want = at::round(layer->weight / scale.unsqueeze(1)).clamp(-127, 127);
  // Half to even, as torch rounds: 2.5 -> 2, 3.5 -> 4, 0.5 -> 0, 126.5 -> 126.
  const at::Tensor tie_values = at::tensor(std::vector<float>{127, 2, 4, -2, -4, 0, 0, 126});
  ASSERT_TRUE(at::equal(want[0].narrow(0, 0, 8), tie_values));
  ASSERT_TRUE(at::equal(want[1].narrow(0, 0, 8), -tie_values));
  layer->QuantizeInt8();
  const at::Tensor got = layer->forward(at::eye(in)).t();  // [out, in]
  EXPECT_LE((got / scale.unsqueeze(1) - want).abs().max().item<double>(), 1e-3);
}

// int8 with outlier columns (what int8 does with the feed-forward output where the CPU has no bf16
// instructions): a few input channels 50x larger than the rest, as a GELU of 4x the width has.
// Each output's error is bounded by the quantization steps: an input value moves by at most one
// step of its row (fbgemm quantizes the row-scaled tensor, whose values lie in [-1, 1], to 7 or 8
// bits with a zero point: a step of at most 2/127 of the row's largest magnitude, and the rounded
// zero point can cost up to one step rather than half), a weight by half a step of its output
// channel (symmetric, largest / 127), so |error| <= sum_i ex |w_i| + |x_i| ew + ex ew. With the
// outlier columns taken out, the row's largest magnitude is that of the other columns, and the
// outlier columns' own products are fp32 (within the gamma_n bound).
TEST(LinearTest, Int8OutlierColumnsKeepTheOtherColumnsSteps) {
  torch::manual_seed(2);
  const int64_t rows = 64, in = 1536, out = 384, outliers = Int8OutlierColumns(in);
  ASSERT_EQ(outliers, 16);
  const at::Tensor x = at::randn({rows, in});
  const at::Tensor columns = at::randperm(in).narrow(0, 0, 4);
  x.index_copy_(1, columns, x.index_select(1, columns) * 50.0);
  torch::NoGradGuard no_grad;
  Linear layer(in, out);
  layer->eval();
  const at::Tensor want = at::linear(x, layer->weight, layer->bias);
  auto error = [&](int64_t outlier_columns) {
    layer->QuantizeInt8(outlier_columns);
    const at::Tensor got = layer->forward(x);
    EXPECT_EQ(got.sizes(), want.sizes());
    return (got - want).abs();
  };
  const at::Tensor rest = x.index_fill(1, columns, 0);
  const at::Tensor ex = rest.abs().amax(1, true) * (2.0 / 127);            // [rows, 1]
  const at::Tensor ew = layer->weight.abs().amax(1).unsqueeze(0) / 254.0;  // [1, out]
  const at::Tensor w_rest = layer->weight.index_fill(1, columns, 0).abs();
  const at::Tensor bound =
      ex * w_rest.sum(1).unsqueeze(0) + rest.abs().sum(1, true) * ew + ex * ew * in +
      // fp32 rounding of every sum (the gamma_n bound, n = in)
      at::linear(x.abs(), layer->weight.abs(), layer->bias.abs()) * in * 0x1p-24;
  const at::Tensor with_outliers = error(outliers);
  EXPECT_LE((with_outliers / bound).max().item<double>(), 1.0);
  // The same layer quantized plainly: the planted channels set the rows' steps, 50x those of the
  // other columns, and its error grows with them (measured ~30x on AVX2 with 7 bits; the bound
  // above is a worst case that random errors stay far below, so the ratio is checked instead).
  const double plain = error(0).max().item<double>();
  EXPECT_GE(plain, 10 * with_outliers.max().item<double>());
  // Only outlier columns nonzero: the int8 product sees zeros and the result is fp32's.
  layer->QuantizeInt8(outliers);
  const at::Tensor sparse =
      at::zeros({rows, in}).index_copy_(1, columns, x.index_select(1, columns));
  const at::Tensor magnitude =
      at::linear(sparse.abs(), layer->weight.abs(), layer->bias.abs()) + 1e-30;
  EXPECT_LE(
      ((layer->forward(sparse) - at::linear(sparse, layer->weight, layer->bias)).abs() / magnitude)
          .max()
          .item<double>(),
      in * 0x1p-24);
  // An input of no rows gives no rows, with outlier columns as without.
  for (const int64_t outlier_columns : {outliers, int64_t{0}}) {
    layer->QuantizeInt8(outlier_columns);
    EXPECT_EQ(layer->forward(at::zeros({0, in})).sizes(), (std::vector<int64_t>{0, out}));
  }
}

// DeferInt8 quantizes on the first forward, or at QuantizeDeferredInt8 unless Fuse took the layer
// in: every way gives QuantizeInt8's weights, so the outputs are bitwise equal (and not fp32's).
TEST(LinearTest, DeferredInt8EqualsQuantizeInt8) {
  torch::manual_seed(3);
  const int64_t in = 384, out = 384, outliers = Int8OutlierColumns(in);
  torch::NoGradGuard no_grad;
  Linear eager(in, out), first_use(in, out), now(in, out), q(in, out), k(in, out), v(in, out);
  for (Linear* l : {&first_use, &now, &q, &k, &v}) {
    (*l)->weight.copy_(eager->weight);
    (*l)->bias.copy_(eager->bias);
  }
  for (Linear* l : {&eager, &first_use, &now, &q, &k, &v}) (*l)->eval();
  const at::Tensor x = at::randn({40, in});
  const at::Tensor fp32 = eager->forward(x);
  eager->QuantizeInt8(outliers);
  const at::Tensor want = eager->forward(x);
  ASSERT_GT((want - fp32).abs().max().item<double>(), 0.0);
  first_use->DeferInt8(outliers);
  EXPECT_TRUE(at::equal(first_use->forward(x), want));
  now->DeferInt8(outliers);
  now->QuantizeDeferredInt8();
  EXPECT_TRUE(at::equal(now->forward(x), want));
  // Fused parts: the fused layer is deferred as the query layer is (quantized here on its first
  // forward), the parts on their own first forward.
  eager->QuantizeInt8();
  const at::Tensor plain = eager->forward(x);
  for (Linear* l : {&q, &k, &v}) (*l)->DeferInt8();
  FusedQkv fused;
  fused.Fuse(*q, *k, *v);
  for (Linear* l : {&q, &k, &v}) (*l)->QuantizeDeferredInt8();
  EXPECT_TRUE(at::equal(fused(x), at::cat({plain, plain, plain}, 1)));
  EXPECT_TRUE(at::equal(q->forward(x), plain));
}

// LinearImpl::QuantizeDeferredInt8 over many layers, the prepacking on threads: every deferred
// layer, a fused product's among them, is quantized during the call as QuantizeInt8 would (so
// doubling the fp32 weights afterwards changes none of their outputs, and those equal
// QuantizeInt8's bitwise); the fused product's parts wait for their first forward (which then
// quantizes the doubled weights), and a layer never deferred stays fp32.
TEST(LinearTest, QuantizeDeferredInt8OnThreadsQuantizesEveryDeferredLayerThen) {
  torch::manual_seed(4);
  torch::NoGradGuard no_grad;
  const int64_t in = 96;
  const at::Tensor x = at::randn({24, in});
  auto copy_of = [](const Linear& from) {
    Linear to(from->in_features, from->out_features);
    to->weight.copy_(from->weight);
    to->bias.copy_(from->bias);
    to->eval();
    return to;
  };
  auto int8_output = [&](const Linear& from) {
    Linear eager = copy_of(from);
    eager->QuantizeInt8();
    return eager->forward(x);
  };
  std::vector<Linear> layers;
  std::vector<at::Tensor> want;
  for (int64_t i = 0; i < 7; ++i) {
    layers.emplace_back(in, 32 + 16 * i);
    layers.back()->eval();
    want.push_back(int8_output(layers.back()));
  }
  Linear fp32_layer(in, 48), q(in, in), k(in, in), v(in, in);
  for (Linear* l : {&fp32_layer, &q, &k, &v}) (*l)->eval();
  const at::Tensor fp32 = fp32_layer->forward(x);
  ASSERT_FALSE(at::equal(fp32, int8_output(fp32_layer)));
  const at::Tensor fused_want = at::cat({int8_output(q), int8_output(k), int8_output(v)}, 1);
  std::vector<LinearImpl*> all;
  for (Linear& l : layers) {
    l->DeferInt8();
    all.push_back(l.get());
  }
  for (Linear* l : {&q, &k, &v}) (*l)->DeferInt8();
  FusedQkv fused;
  fused.Fuse(*q, *k, *v);
  for (LinearImpl* l : {fp32_layer.get(), q.get(), k.get(), v.get(), fused.layer()})
    all.push_back(l);
  LinearImpl::QuantizeDeferredInt8(all, 3);
  for (Linear& l : layers) l->weight.mul_(2.0);
  fused.layer()->weight.mul_(2.0);  // the parts' weights are views of it
  for (size_t i = 0; i < layers.size(); ++i) {
    EXPECT_TRUE(at::equal(layers[i]->forward(x), want[i])) << "layer " << i;
  }
  EXPECT_TRUE(at::equal(fused(x), fused_want));
  EXPECT_TRUE(at::equal(q->forward(x), int8_output(q)));  // the doubled weights, quantized now
  EXPECT_FALSE(at::equal(q->forward(x), fused_want.narrow(1, 0, in)));
  EXPECT_TRUE(at::equal(fp32_layer->forward(x), fp32));
}

// FusedQkv against the three layers it fuses, in each mode a layer runs in for inference.
enum class Mode { kFp32, kBf16, kInt8 };

class FusedQkvTest : public ::testing::TestWithParam<Mode> {};

TEST_P(FusedQkvTest, EqualsTheThreeLayers) {
  torch::manual_seed(1);
  const int64_t hidden = 384;  // MiniLM's width: oneDNN on AVX-512 hosts with >= 128 rows
  Linear q(hidden, hidden), k(hidden, hidden), v(hidden, hidden);
  std::vector<at::Tensor> before;
  // The bf16 precision's layers: bf16 weights, bf16 inputs and outputs.
  const at::ScalarType dtype = GetParam() == Mode::kBf16 ? at::kBFloat16 : at::kFloat;
  for (Linear* l : {&q, &k, &v}) {
    (*l)->eval();
    (*l)->to(dtype);
    before.push_back((*l)->weight.detach().clone());
    if (GetParam() == Mode::kInt8) (*l)->QuantizeInt8();
  }
  torch::NoGradGuard no_grad;
  for (int64_t rows : {8, 300}) {
    const at::Tensor x = at::randn({rows, hidden}).to(dtype);
    const at::Tensor want =
        at::cat({q->forward(x), k->forward(x), v->forward(x)}, 1).to(at::kFloat);
    FusedQkv fused;
    fused.Fuse(*q, *k, *v);
    ASSERT_TRUE(fused.fused());
    const at::Tensor got = fused(x).to(at::kFloat);
    ASSERT_EQ(got.sizes(), want.sizes());
    const at::Tensor xa = x.abs().to(at::kFloat);
    auto abs_f = [](const at::Tensor& t) { return t.abs().to(at::kFloat); };
    const at::Tensor magnitude = at::cat({at::linear(xa, abs_f(q->weight), abs_f(q->bias)),
                                          at::linear(xa, abs_f(k->weight), abs_f(k->bias)),
                                          at::linear(xa, abs_f(v->weight), abs_f(v->bias))},
                                         1) +
                                 1e-30;
    const double worst = ((got - want).abs() / magnitude).max().item<double>();
    switch (GetParam()) {
      case Mode::kFp32:
        // The same sums of `hidden` products in another blocking: the gamma_n bound of the test
        // above.
        EXPECT_LE(worst, hidden * 0x1p-24) << rows << " rows";
        break;
      case Mode::kBf16:
        // Both round their fp32 sums to bf16 (8 significant bits): a sum that differs in its
        // last fp32 bits can round to the neighbouring bf16 value, one bf16 ulp (2^-7 relative
        // at most) of an output no larger than its magnitude.
        EXPECT_LE(worst, 0x1p-7 + hidden * 0x1p-24) << rows << " rows";
        break;
      case Mode::kInt8:
        // The same int8 weights and scales per output channel and the same scaled,
        // quantized input: each output's int32 sum is exact, and scaling it back is the same
        // float operation either way.
        EXPECT_TRUE(at::equal(got, want)) << rows << " rows, worst " << worst;
        break;
    }
    // The layers' own weights are views of the fused one, with their values.
    for (size_t i = 0; i < 3; ++i) {
      const LinearImpl& l = **std::vector<Linear*>{&q, &k, &v}[i];
      EXPECT_TRUE(at::equal(l.weight, before[i]));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, FusedQkvTest,
                         ::testing::Values(Mode::kFp32, Mode::kBf16, Mode::kInt8));

}  // namespace
}  // namespace berth
