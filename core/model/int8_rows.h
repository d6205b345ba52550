// The passes around an int8 linear layer's product (LinearImpl::forward), in place of the ATen
// ops and fbgemm passes they replaced: on the input abs, two amax, two index_fill and a div, then
// fbgemm's minimum/maximum and quantizing passes over that fp32 copy (QuantizeRows writes the
// uint8 rows in the pass that finds their scales); on the output fbgemm's requantizing pass,
// addcmul and add (DequantizeRows over the int32 accumulators, and the outlier product added by
// addmm_). With them fbgemm's kernel went from 37.5% to 54% of a
// `perf` profile of the bert-base int8 engine on a 2-core Xeon with VNNI.
// Rows are split over ATen's intra-op threads (ParallelFor). AVX2 where the CPU has it, plain
// loops elsewhere; both give the same results (the same operations in the same order per element,
// and max is exact).
#ifndef BERTH_CORE_MODEL_INT8_ROWS_H_
#define BERTH_CORE_MODEL_INT8_ROWS_H_

#include <cstdint>

namespace berth::int8_rows {

enum class Isa { kPlain, kAvx2 };
// AVX2 where this CPU has it.
Isa HostIsa();

// column_max[c] = max over rows of |x[r, c]|. x is [rows, cols], row-major.
void ColumnAbsMax(const float* x, int64_t rows, int64_t cols, float* column_max,
                  Isa isa = HostIsa());

// Each row quantized to uint8 with its own scale: its largest magnitude among the kept columns
// (keep[c] is 1 or 0; the other columns become the zero point) maps to `steps` (127, or 63 for 7
// bits) from the zero point steps + 1. row_max[r] = max(max_c |x[r, c]| keep[c], 1e-12) and
// q[r, c] = nearbyint(x[r, c] * keep[c] * (steps / row_max[r])) + steps + 1, in [1, 2 steps + 1]
// (0 for a NaN).
void QuantizeRows(const float* x, const float* keep, int64_t rows, int64_t cols, int steps,
                  uint8_t* q, float* row_max, Isa isa = HostIsa());

// The int8 product's int32 accumulators y[r, c] (row-major [rows, cols]) overwritten, in place,
// by their floats: y[r, c] = fma((float(y[r, c] - offset[c]) * scale[c]), row_scale[r], bias[c]).
// offset[c] is the input's zero point times the weight channel's sum, scale[c] its scale, and
// row_scale[r] the input row's (row_max[r] / steps).
void DequantizeRows(void* y, const int32_t* offset, const float* scale, const float* row_scale,
                    const float* bias, int64_t rows, int64_t cols, Isa isa = HostIsa());

}  // namespace berth::int8_rows

#endif  // BERTH_CORE_MODEL_INT8_ROWS_H_
