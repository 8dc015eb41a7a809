// Internal to the GEMM: the per-ISA macro-kernels and the packed layouts they share.
//
// Packed B: op(B) is cut into panels of kPanelWidth columns (the last one zero-padded);
// a panel stores its rows one after another, kPanelWidth floats each, and successive
// panels are panel_stride floats apart. One width for every ISA, so a weight matrix
// packed once serves whichever kernel rc_set_isa selects later.
//
// Packed A: op(A) rows are cut into panels of MacroKernel::mr rows; a panel of kc
// columns stores, for each column p, its mr values at [p * mr, p * mr + mr). Rows of
// the last panel beyond the matrix are never read.
#pragma once
#include <cstdint>

namespace rc::gemm {

constexpr int64_t kPanelWidth = 32;

// Rows of the micro-kernels' register blocks (packed A panel heights).
constexpr int64_t kAvx512Mr = 14;
constexpr int64_t kAvx2Mr = 6;
constexpr int64_t kPortableMr = 6;

// C[mc, nc] = alpha * Apacked[mc, kc] * Bpanels[kc, nc] + beta * C; with beta == 0, C is
// not read. b points at row 0 (of this kc block) of the first panel.
using MacroKernelFn = void (*)(int64_t mc, int64_t nc, int64_t kc, const float* a_packed, const float* b,
                               int64_t b_panel_stride, float* c, int64_t ldc, float alpha, float beta);

struct MacroKernel {
  int64_t mr;  // rows per packed A panel
  MacroKernelFn run;
};

MacroKernel avx512_kernel();
MacroKernel avx2_kernel();
MacroKernel portable_kernel();

}  // namespace rc::gemm
