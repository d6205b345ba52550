// The fp32 passes around int8 linear products (core/model/int8_rows.h) against the ATen ops they
// replaced, on both instruction sets, at widths that leave a tail past the last 8 and 32 columns.
#include "core/model/int8_rows.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <tuple>
#include <vector>

namespace berth::int8_rows {
namespace {

std::vector<Isa> HostIsas() {
  std::vector<Isa> isas = {Isa::kPlain};
  if (HostIsa() == Isa::kAvx2) isas.push_back(Isa::kAvx2);
  return isas;
}

class Int8RowsTest : public testing::TestWithParam<std::tuple<int64_t, int64_t>> {};

// abs, max and multiplying by 0 or 1 are exact, and the quantized values are the ATen formula's
// roundings (half to even, as AVX2's conversion rounds): the maxima and quantized rows equal the
// ATen ops bitwise. The dequantized sums are within their roundings of the exact formula. The
// instruction sets agree bitwise on all of them.
TEST_P(Int8RowsTest, EqualsTheAtenOpsOnEveryIsa) {
  const auto [rows, cols] = GetParam();
  at::manual_seed(rows * 1000 + cols);
  const at::Tensor x = at::randn({rows, cols}) * at::rand({rows, 1}) * 10;
  if (rows > 2) x[2].zero_();  // a row of zeros: its maximum is 1e-12, its scaled row zeros
  at::Tensor keep = at::ones({cols});
  keep.index_fill_(0, at::arange(0, cols, 5), 0);
  const at::Tensor bias = at::randn({cols});
  // int32 sums as an int8 product of 3,072 columns gives them (|sum| < 127 * 255 * 3,072), the
  // zero point's share per channel, the channels' and the rows' scales.
  const at::Tensor sums = at::randint(-100'000'000, 100'000'000, {rows, cols}, at::kInt);
  const at::Tensor offsets = at::randint(-50'000'000, 50'000'000, {cols}, at::kInt);
  const at::Tensor scales = at::rand({cols}) * 1e-3f;
  const at::Tensor row_scale = at::rand({rows}) * 0.1f;

  const at::Tensor want_column_max = x.abs().amax(0);
  const at::Tensor want_row_max = (x.abs() * keep).amax(1).clamp_min(1e-12f);
  // In doubles: every product of two floats, and these sums, exact or nearly.
  const at::Tensor product = (sums - offsets).to(at::kDouble) * scales.to(at::kDouble) *
                             row_scale.to(at::kDouble).unsqueeze(1);
  const at::Tensor want_dequantized = product + bias.to(at::kDouble);
  std::vector<std::vector<at::Tensor>> results;  // per instruction set
  for (const Isa isa : HostIsas()) {
    SCOPED_TRACE(isa == Isa::kAvx2 ? "avx2" : "plain");
    at::Tensor column_max = at::full({cols}, -1.0f);
    ColumnAbsMax(x.const_data_ptr<float>(), rows, cols, column_max.mutable_data_ptr<float>(), isa);
    EXPECT_TRUE(at::equal(column_max, want_column_max));

    at::Tensor row_max = at::empty({rows});
    std::vector<at::Tensor> quantized;
    for (const int steps : {127, 63}) {
      at::Tensor q = at::empty({rows, cols}, at::kByte);
      QuantizeRows(x.const_data_ptr<float>(), keep.const_data_ptr<float>(), rows, cols, steps,
                   q.mutable_data_ptr<uint8_t>(), row_max.mutable_data_ptr<float>(), isa);
      EXPECT_TRUE(at::equal(row_max, want_row_max));
      const at::Tensor want_q =
          at::round(x * keep * (static_cast<float>(steps) / want_row_max).unsqueeze(1)) + steps + 1;
      EXPECT_TRUE(at::equal(q.to(at::kFloat), want_q)) << steps << " steps";
      // Each row's largest kept magnitude lands on 1 or 2 steps + 1 (the row of zeros on the
      // zero point), and the dropped columns on the zero point.
      const at::Tensor levels = (q.to(at::kInt) - (steps + 1)).abs();
      at::Tensor want_top = at::full({rows}, steps, at::kInt);
      if (rows > 2) want_top[2] = 0;
      EXPECT_TRUE(at::equal(levels.amax(1), want_top)) << steps << " steps";
      EXPECT_EQ((levels * (1 - keep.to(at::kInt))).max().item<int>(), 0) << steps << " steps";
      quantized.push_back(q);
    }
    at::Tensor dequantized = sums.clone();
    DequantizeRows(dequantized.mutable_data_ptr<int32_t>(), offsets.const_data_ptr<int32_t>(),
                   scales.const_data_ptr<float>(), row_scale.const_data_ptr<float>(),
                   bias.const_data_ptr<float>(), rows, cols, isa);
    const at::Tensor got =
        at::from_blob(dequantized.mutable_data_ptr<int32_t>(), {rows, cols}, at::kFloat)
            .to(at::kDouble);
    // Converting the centred sum to float, multiplying by the channel's scale: two roundings of
    // the product, each within 2^-24 of it (together 2^-23 + 2^-48, under 1.01 * 2^-23); the
    // fused multiply-add then rounds once, within 2^-24 of the result (half an ulp each).
    EXPECT_TRUE(((got - want_dequantized).abs() <=
                 product.abs() * 0x1.01p-23 + want_dequantized.abs() * 0x1p-24 + 1e-30)
                    .all()
                    .item<bool>());
    results.push_back({column_max, row_max, quantized[0], quantized[1], got});
  }
  // The plain loops and AVX2 do the same operations on each element: equal bitwise.
  for (size_t i = 1; i < results.size(); ++i) {
    for (size_t j = 0; j < results[0].size(); ++j) {
      EXPECT_TRUE(at::equal(results[i][j], results[0][j])) << "result " << j;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Int8RowsTest,
                         testing::Values(std::make_tuple(int64_t{1}, int64_t{7}),
                                         std::make_tuple(int64_t{5}, int64_t{13}),
                                         std::make_tuple(int64_t{37}, int64_t{771}),
                                         std::make_tuple(int64_t{300}, int64_t{3072})));

}  // namespace
}  // namespace berth::int8_rows
