// Linear's fp32 CPU inference paths (oneDNN with a prepacked weight, or at::linear) against
// at::linear, at the widths and row counts where OneDnnLinearFor switches between them.
#include "core/model/linear.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <tuple>

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

}  // namespace
}  // namespace berth
