// Portable micro-kernel: no intrinsics, only GCC/Clang vector types, which become SSE2
// on baseline x86-64 (and plain scalar code where there is no vector unit). A 6 x 8
// block: 12 four-wide accumulators + 2 for B + 1 broadcast fit the 16 xmm registers.
// (Left to the auto-vectoriser, the plain loops shuffled and spilled at 1/8 the speed.)
#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include "gemm_kernels.h"

namespace rc::gemm {
namespace {

constexpr int64_t kMr = kPortableMr;
constexpr int64_t kNr = 8;

typedef float Float4 __attribute__((vector_size(16)));

Float4 load4(const float* p) {
  Float4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <int Rows>
void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta, int64_t cols) {
  Float4 acc0[Rows], acc1[Rows];
  for (int r = 0; r < Rows; r++) acc0[r] = acc1[r] = Float4{};
  for (int64_t p = 0; p < kc; p++) {
    Float4 b0 = load4(b + p * kPanelWidth), b1 = load4(b + p * kPanelWidth + 4);
    for (int r = 0; r < Rows; r++) {
      Float4 av = Float4{} + a[p * kMr + r];
      acc0[r] += av * b0;
      acc1[r] += av * b1;
    }
  }
  for (int r = 0; r < Rows; r++) {
    float tile[kNr];
    std::memcpy(tile, &acc0[r], sizeof acc0[r]);
    std::memcpy(tile + 4, &acc1[r], sizeof acc1[r]);
    float* cr = c + r * ldc;
    if (beta == 0)
      for (int64_t j = 0; j < cols; j++) cr[j] = alpha * tile[j];
    else
      for (int64_t j = 0; j < cols; j++) cr[j] = alpha * tile[j] + beta * cr[j];
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
