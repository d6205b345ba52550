#include "core/model/int8_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/runtime/runtime.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define BERTH_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace berth::int8_rows {
namespace {

constexpr float kMinRowMax = 1e-12f;

// About 32K elements a task, so that small calls stay on one thread.
int64_t Grain(int64_t cols) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(cols, 1)); }

void ColumnAbsMaxPlain(const float* x, int64_t rows, int64_t cols, int64_t c0, int64_t c1,
                       float* column_max) {
  std::fill(column_max + c0, column_max + c1, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    for (int64_t c = c0; c < c1; ++c) column_max[c] = std::max(column_max[c], std::fabs(row[c]));
  }
}

float RowMaxPlain(const float* row, const float* keep, int64_t c0, int64_t cols, float m) {
  for (int64_t c = c0; c < cols; ++c) m = std::max(m, std::fabs(row[c]) * keep[c]);
  return m;
}

void QuantizeRowPlain(const float* row, const float* keep, int64_t c0, int64_t cols, float factor,
                      int zero_point, uint8_t* q) {
  for (int64_t c = c0; c < cols; ++c) {
    const float v = std::nearbyint(row[c] * keep[c] * factor);
    // What AVX2's conversion gives a NaN (the integer indefinite, saturated to 0).
    q[c] = std::isnan(v) ? 0 : static_cast<uint8_t>(static_cast<int>(v) + zero_point);
  }
}

// y holds int32 accumulators, read and overwritten with floats through memcpy (one storage,
// two types).
void DequantizeRowPlain(void* y, const int32_t* offset, const float* scale, float row_scale,
                        const float* bias, int64_t c0, int64_t cols) {
  auto* bytes = static_cast<char*>(y);
  for (int64_t c = c0; c < cols; ++c) {
    int32_t a;
    std::memcpy(&a, bytes + c * 4, 4);
    const float v = std::fma(static_cast<float>(a - offset[c]) * scale[c], row_scale, bias[c]);
    std::memcpy(bytes + c * 4, &v, 4);
  }
}

#if defined(BERTH_AVX2)
BERTH_AVX2 __m256 Abs(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

BERTH_AVX2 void ColumnAbsMaxAvx2(const float* x, int64_t rows, int64_t cols, int64_t c0, int64_t c1,
                                 float* column_max) {
  std::fill(column_max + c0, column_max + c1, 0.0f);
  const int64_t vector_end = c0 + (c1 - c0) / 8 * 8;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    for (int64_t c = c0; c < vector_end; c += 8) {
      // max(|x|, m): the order std::max(m, |x|) keeps (m when they are equal, or x is NaN).
      const __m256 m = _mm256_loadu_ps(column_max + c);
      _mm256_storeu_ps(column_max + c, _mm256_max_ps(Abs(_mm256_loadu_ps(row + c)), m));
    }
    for (int64_t c = vector_end; c < c1; ++c) {
      column_max[c] = std::max(column_max[c], std::fabs(row[c]));
    }
  }
}

// Eight columns' nearbyint(x keep factor) + zero point, as int32.
BERTH_AVX2 __m256i Quantize8(const float* x, const float* keep, __m256 factor, __m256i zero_point) {
  const __m256 kept = _mm256_mul_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(keep));
  return _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(kept, factor)), zero_point);
}

BERTH_AVX2 void QuantizeRowsAvx2(const float* x, const float* keep, int64_t r0, int64_t r1,
                                 int64_t cols, int steps, uint8_t* q, float* row_max) {
  const int64_t max_end = cols / 8 * 8, quantize_end = cols / 32 * 32;
  const __m256i zero_point = _mm256_set1_epi32(steps + 1);
  // packs and packus interleave the 128-bit lanes: this puts the 32 bytes back in column order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = x + r * cols;
    __m256 m8 = _mm256_setzero_ps();
    for (int64_t c = 0; c < max_end; c += 8) {
      const __m256 v = _mm256_mul_ps(Abs(_mm256_loadu_ps(row + c)), _mm256_loadu_ps(keep + c));
      m8 = _mm256_max_ps(v, m8);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, m8);
    float m = 0.0f;
    for (const float lane : lanes) m = std::max(m, lane);
    m = std::max(RowMaxPlain(row, keep, max_end, cols, m), kMinRowMax);
    row_max[r] = m;
    const float factor = static_cast<float>(steps) / m;
    const __m256 factor8 = _mm256_set1_ps(factor);
    uint8_t* out = q + r * cols;
    for (int64_t c = 0; c < quantize_end; c += 32) {
      const __m256i low =
          _mm256_packs_epi32(Quantize8(row + c, keep + c, factor8, zero_point),
                             Quantize8(row + c + 8, keep + c + 8, factor8, zero_point));
      const __m256i high =
          _mm256_packs_epi32(Quantize8(row + c + 16, keep + c + 16, factor8, zero_point),
                             Quantize8(row + c + 24, keep + c + 24, factor8, zero_point));
      const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(low, high), order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + c), bytes);
    }
    QuantizeRowPlain(row, keep, quantize_end, cols, factor, steps + 1, out);
  }
}

BERTH_AVX2 void DequantizeRowsAvx2(void* y, const int32_t* offset, const float* scale,
                                   const float* row_scale, const float* bias, int64_t r0,
                                   int64_t r1, int64_t cols) {
  const int64_t vector_end = cols / 8 * 8;
  for (int64_t r = r0; r < r1; ++r) {
    char* row = static_cast<char*>(y) + r * cols * 4;
    const __m256 rs = _mm256_set1_ps(row_scale[r]);
    for (int64_t c = 0; c < vector_end; c += 8) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c * 4));
      const __m256i centred =
          _mm256_sub_epi32(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(offset + c)));
      const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(centred), _mm256_loadu_ps(scale + c));
      _mm256_storeu_ps(reinterpret_cast<float*>(row + c * 4),
                       _mm256_fmadd_ps(v, rs, _mm256_loadu_ps(bias + c)));
    }
    DequantizeRowPlain(row, offset, scale, row_scale[r], bias, vector_end, cols);
  }
}
#endif

}  // namespace

Isa HostIsa() {
#if defined(BERTH_AVX2)
  static const Isa isa = HostCpuFeatures().avx2 ? Isa::kAvx2 : Isa::kPlain;
  return isa;
#else
  return Isa::kPlain;
#endif
}

void ColumnAbsMax(const float* x, int64_t rows, int64_t cols, float* column_max, Isa isa) {
  // Threads take column ranges (64 at least), each going down every row: no partial maxima to
  // merge.
  ParallelFor(0, cols, std::max<int64_t>(64, Grain(rows)), [&](int64_t c0, int64_t c1) {
#if defined(BERTH_AVX2)
    if (isa == Isa::kAvx2) return ColumnAbsMaxAvx2(x, rows, cols, c0, c1, column_max);
#endif
    ColumnAbsMaxPlain(x, rows, cols, c0, c1, column_max);
  });
}

void QuantizeRows(const float* x, const float* keep, int64_t rows, int64_t cols, int steps,
                  uint8_t* q, float* row_max, Isa isa) {
  ParallelFor(0, rows, Grain(cols), [&](int64_t r0, int64_t r1) {
#if defined(BERTH_AVX2)
    if (isa == Isa::kAvx2) return QuantizeRowsAvx2(x, keep, r0, r1, cols, steps, q, row_max);
#endif
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = x + r * cols;
      const float m = std::max(RowMaxPlain(row, keep, 0, cols, 0.0f), kMinRowMax);
      row_max[r] = m;
      QuantizeRowPlain(row, keep, 0, cols, static_cast<float>(steps) / m, steps + 1, q + r * cols);
    }
  });
}

void DequantizeRows(void* y, const int32_t* offset, const float* scale, const float* row_scale,
                    const float* bias, int64_t rows, int64_t cols, Isa isa) {
  ParallelFor(0, rows, Grain(cols), [&](int64_t r0, int64_t r1) {
#if defined(BERTH_AVX2)
    if (isa == Isa::kAvx2) {
      return DequantizeRowsAvx2(y, offset, scale, row_scale, bias, r0, r1, cols);
    }
#endif
    for (int64_t r = r0; r < r1; ++r) {
      DequantizeRowPlain(static_cast<char*>(y) + r * cols * 4, offset, scale, row_scale[r], bias, 0,
                         cols);
    }
  });
}

}  // namespace berth::int8_rows
