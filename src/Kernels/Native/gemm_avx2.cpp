// AVX2 micro-kernel: a 6 x 16 block in 12 ymm accumulators (of the 16 registers), reading
// half of a 32-wide B panel per call. Column edges use masked loads and stores.
#include <immintrin.h>
#include <algorithm>
#include <array>
#include <utility>
#include "gemm_kernels.h"

#define RC_TARGET_AVX2 __attribute__((target("avx2,fma")))

namespace rc::gemm {
namespace {

constexpr int64_t kMr = kAvx2Mr;
constexpr int64_t kNr = 16;

template <int Rows>
RC_TARGET_AVX2 void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta,
                          int cols) {
  __m256 acc0[Rows], acc1[Rows];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; r++) acc0[r] = acc1[r] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; p++) {
    __m256 b0 = _mm256_load_ps(b + p * kPanelWidth);
    __m256 b1 = _mm256_load_ps(b + p * kPanelWidth + 8);
#pragma GCC unroll 8
    for (int r = 0; r < Rows; r++) {
      __m256 av = _mm256_broadcast_ss(a + p * kMr + r);
      acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
    }
  }
  __m256 valpha = _mm256_set1_ps(alpha), vbeta = _mm256_set1_ps(beta);
  if (cols == kNr) {
    // Full tiles use plain loads and stores: vmaskmov stores are microcoded and slow on AMD.
#pragma GCC unroll 8
    for (int r = 0; r < Rows; r++) {
      float* cr = c + r * ldc;
      __m256 out0 = _mm256_mul_ps(valpha, acc0[r]), out1 = _mm256_mul_ps(valpha, acc1[r]);
      if (beta != 0) {
        out0 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(cr), out0);
        out1 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(cr + 8), out1);
      }
      _mm256_storeu_ps(cr, out0);
      _mm256_storeu_ps(cr + 8, out1);
    }
    return;
  }
  // Lane l of a row is stored when l < cols (the compare gives all-ones, whose sign bit maskstore reads).
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lanes);
  const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lanes);
#pragma GCC unroll 8
  for (int r = 0; r < Rows; r++) {
    float* cr = c + r * ldc;
    __m256 out0 = _mm256_mul_ps(valpha, acc0[r]), out1 = _mm256_mul_ps(valpha, acc1[r]);
    if (beta != 0) {
      out0 = _mm256_fmadd_ps(vbeta, _mm256_maskload_ps(cr, mask0), out0);
      out1 = _mm256_fmadd_ps(vbeta, _mm256_maskload_ps(cr + 8, mask1), out1);
    }
    _mm256_maskstore_ps(cr, mask0, out0);
    _mm256_maskstore_ps(cr + 8, mask1, out1);
  }
}

using MicroFn = void (*)(int64_t, const float*, const float*, float*, int64_t, float, float, int);

template <size_t... Rows>
constexpr auto micro_table(std::index_sequence<Rows...>) {
  return std::array<MicroFn, sizeof...(Rows)>{micro<static_cast<int>(Rows) + 1>...};
}

RC_TARGET_AVX2 void macro(int64_t mc, int64_t nc, int64_t kc, const float* a_packed, const float* b,
                          int64_t b_panel_stride, float* c, int64_t ldc, float alpha, float beta) {
  static constexpr auto table = micro_table(std::make_index_sequence<kMr>());
  for (int64_t j0 = 0; j0 < nc; j0 += kNr) {
    int cols = static_cast<int>(std::min(kNr, nc - j0));
    const float* bj = b + (j0 / kPanelWidth) * b_panel_stride + j0 % kPanelWidth;
    for (int64_t i0 = 0; i0 < mc; i0 += kMr) {
      int64_t rows = std::min(kMr, mc - i0);
      // C read back after the first K block: fetch the tile before its FMAs run. Here
      // rather than in micro, whose 15 live ymm registers leave no room for more state.
      if (beta != 0)
        for (int64_t r = 0; r < rows; r++) {
          _mm_prefetch(reinterpret_cast<const char*>(c + (i0 + r) * ldc + j0), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(c + (i0 + r) * ldc + j0 + 15), _MM_HINT_T0);
        }
      table[rows - 1](kc, a_packed + i0 * kc, bj, c + i0 * ldc + j0, ldc, alpha, beta, cols);
    }
  }
}

}  // namespace

MacroKernel avx2_kernel() { return {kMr, macro}; }

}  // namespace rc::gemm
