// AVX-512 micro-kernel: a kMr x 32 block held in 2 * kMr zmm accumulators. Per step of k
// it loads one 32-float row of the B panel (two zmm) and broadcasts kMr values of A, so
// FMAs outnumber loads and the FMA units stay busy. Column edges use masks.
#include <immintrin.h>
#include <algorithm>
#include <array>
#include <utility>
#include "gemm_kernels.h"

#define RC_TARGET_AVX512 __attribute__((target("avx512f,fma")))

namespace rc::gemm {
namespace {

constexpr int64_t kMr = kAvx512Mr;

template <int Rows>
RC_TARGET_AVX512 void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta,
                            __mmask16 mask0, __mmask16 mask1) {
  __m512 acc0[Rows], acc1[Rows];
#pragma GCC unroll 16
  for (int r = 0; r < Rows; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
  // When C is read (beta != 0, as for every K block after the first), fetch its tile now
  // so the loads at the end do not wait on L3 after the FMAs.
  if (beta != 0) {
#pragma GCC unroll 16
    for (int r = 0; r < Rows; r++) {
      _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
    }
  }
  for (int64_t p = 0; p < kc; p++) {
    __m512 b0 = _mm512_load_ps(b + p * kPanelWidth);
    __m512 b1 = _mm512_load_ps(b + p * kPanelWidth + 16);
#pragma GCC unroll 16
    for (int r = 0; r < Rows; r++) {
      __m512 av = _mm512_set1_ps(a[p * kMr + r]);
      acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
    }
  }
  __m512 valpha = _mm512_set1_ps(alpha);
  if (beta == 0) {
#pragma GCC unroll 16
    for (int r = 0; r < Rows; r++) {
      _mm512_mask_storeu_ps(c + r * ldc, mask0, _mm512_mul_ps(valpha, acc0[r]));
      _mm512_mask_storeu_ps(c + r * ldc + 16, mask1, _mm512_mul_ps(valpha, acc1[r]));
    }
  } else {
    __m512 vbeta = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int r = 0; r < Rows; r++) {
      __m512 c0 = _mm512_maskz_loadu_ps(mask0, c + r * ldc);
      __m512 c1 = _mm512_maskz_loadu_ps(mask1, c + r * ldc + 16);
      _mm512_mask_storeu_ps(c + r * ldc, mask0, _mm512_fmadd_ps(valpha, acc0[r], _mm512_mul_ps(vbeta, c0)));
      _mm512_mask_storeu_ps(c + r * ldc + 16, mask1, _mm512_fmadd_ps(valpha, acc1[r], _mm512_mul_ps(vbeta, c1)));
    }
  }
}

using MicroFn = void (*)(int64_t, const float*, const float*, float*, int64_t, float, float, __mmask16, __mmask16);

template <size_t... Rows>
constexpr auto micro_table(std::index_sequence<Rows...>) {
  return std::array<MicroFn, sizeof...(Rows)>{micro<static_cast<int>(Rows) + 1>...};
}

RC_TARGET_AVX512 void macro(int64_t mc, int64_t nc, int64_t kc, const float* a_packed, const float* b,
                            int64_t b_panel_stride, float* c, int64_t ldc, float alpha, float beta) {
  static constexpr auto table = micro_table(std::make_index_sequence<kMr>());
  for (int64_t j0 = 0; j0 < nc; j0 += kPanelWidth) {
    int64_t cols = std::min(kPanelWidth, nc - j0);
    __mmask16 mask0 = static_cast<__mmask16>(cols >= 16 ? 0xFFFF : (1u << cols) - 1);
    __mmask16 mask1 = static_cast<__mmask16>(cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (1u << (cols - 16)) - 1);
    const float* bj = b + (j0 / kPanelWidth) * b_panel_stride;
    for (int64_t i0 = 0; i0 < mc; i0 += kMr) {
      int64_t rows = std::min(kMr, mc - i0);
      table[rows - 1](kc, a_packed + i0 * kc, bj, c + i0 * ldc + j0, ldc, alpha, beta, mask0, mask1);
    }
  }
}

}  // namespace

MacroKernel avx512_kernel() { return {kMr, macro}; }

}  // namespace rc::gemm
