// Portable micro-kernel: plain C++ the compiler vectorises for baseline x86-64 (SSE2)
// or any other target. A 4 x 16 register block (16 four-wide accumulators).
#include <algorithm>
#include <array>
#include <utility>
#include "gemm_kernels.h"

namespace rc::gemm {
namespace {

constexpr int64_t kMr = kPortableMr;
constexpr int64_t kNr = 16;

template <int Rows>
void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta, int64_t cols) {
  float acc[Rows][kNr] = {};
  for (int64_t p = 0; p < kc; p++) {
    const float* bp = b + p * kPanelWidth;
    for (int r = 0; r < Rows; r++) {
      float av = a[p * kMr + r];
      for (int j = 0; j < kNr; j++) acc[r][j] += av * bp[j];
    }
  }
  for (int r = 0; r < Rows; r++) {
    float* cr = c + r * ldc;
    if (beta == 0)
      for (int64_t j = 0; j < cols; j++) cr[j] = alpha * acc[r][j];
    else
      for (int64_t j = 0; j < cols; j++) cr[j] = alpha * acc[r][j] + beta * cr[j];
  }
}

using MicroFn = void (*)(int64_t, const float*, const float*, float*, int64_t, float, float, int64_t);

template <size_t... Rows>
constexpr auto micro_table(std::index_sequence<Rows...>) {
  return std::array<MicroFn, sizeof...(Rows)>{micro<static_cast<int>(Rows) + 1>...};
}

void macro(int64_t mc, int64_t nc, int64_t kc, const float* a_packed, const float* b, int64_t b_panel_stride,
           float* c, int64_t ldc, float alpha, float beta) {
  static constexpr auto table = micro_table(std::make_index_sequence<kMr>());
  for (int64_t j0 = 0; j0 < nc; j0 += kNr) {
    int64_t cols = std::min(kNr, nc - j0);
    const float* bj = b + (j0 / kPanelWidth) * b_panel_stride + j0 % kPanelWidth;
    for (int64_t i0 = 0; i0 < mc; i0 += kMr) {
      int64_t rows = std::min(kMr, mc - i0);
      table[rows - 1](kc, a_packed + i0 * kc, bj, c + i0 * ldc + j0, ldc, alpha, beta, cols);
    }
  }
}

}  // namespace

MacroKernel portable_kernel() { return {kMr, macro}; }

}  // namespace rc::gemm
