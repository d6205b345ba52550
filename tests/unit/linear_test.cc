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

// FusedQkv against the three layers it fuses, in each mode a layer runs in for inference.
enum class Mode { kFp32, kBf16, kInt8 };

class FusedQkvTest : public ::testing::TestWithParam<Mode> {};

TEST_P(FusedQkvTest, EqualsTheThreeLayers) {
  torch::manual_seed(1);
  const int64_t hidden = 384;  // MiniLM's width: oneDNN on AVX-512 hosts with >= 128 rows
  Linear q(hidden, hidden), k(hidden, hidden), v(hidden, hidden);
  std::vector<at::Tensor> before;
  for (Linear* l : {&q, &k, &v}) {
    (*l)->eval();
    before.push_back((*l)->weight.detach().clone());
    if (GetParam() == Mode::kInt8) (*l)->QuantizeInt8();
    if (GetParam() == Mode::kBf16) (*l)->UseBf16();
  }
  torch::NoGradGuard no_grad;
  for (int64_t rows : {8, 300}) {
    const at::Tensor x = at::randn({rows, hidden});
    const at::Tensor want = at::cat({q->forward(x), k->forward(x), v->forward(x)}, 1);
    FusedQkv fused;
    fused.Fuse(*q, *k, *v);
    ASSERT_TRUE(fused.fused());
    const at::Tensor got = fused(x);
    ASSERT_EQ(got.sizes(), want.sizes());
    const at::Tensor magnitude = at::cat({at::linear(x.abs(), q->weight.abs(), q->bias.abs()),
                                          at::linear(x.abs(), k->weight.abs(), k->bias.abs()),
                                          at::linear(x.abs(), v->weight.abs(), v->bias.abs())},
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
