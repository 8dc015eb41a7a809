// The pointwise kernels of one instruction set: the elementwise operations and every cell's kernels.
// Each is compiled once per instruction set (isa/{portable,avx2,avx512}.cpp, from the headers under
// isa/ and cells/) and chosen at run time by rc::current_isa().
#pragma once
#include <cstdint>
#include "cells/cell.h"
#include "rc_common.h"

namespace rc::rnn {

// One elementwise operation per call over a [rows, cols] view of each operand (row strides ld*).
// Outputs may alias an input with the same view.
struct ElementwiseOps {
  using Binary = void (*)(int64_t rows, int64_t cols, const float* a, int64_t lda, const float* b, int64_t ldb,
                          float* out, int64_t ldo);
  using Unary = void (*)(int64_t rows, int64_t cols, const float* a, int64_t lda, float* out, int64_t ldo);
  Binary add, sub, mul;
  Unary sigmoid, tanh, relu, one_minus, relu_mask, copy;
  // out[r, c] += bias[c]
  void (*add_bias)(int64_t rows, int64_t cols, const float* bias, float* out, int64_t ldo);
  // out[c] += Σ_r a[r, c]: the bias gradients (used by both the fused and the unfused path)
  void (*add_column_sums)(int64_t rows, int64_t cols, const float* a, int64_t lda, float* out);
};

struct Kernels {
  ElementwiseOps elementwise;
  CellTable cells;
};

const Kernels& portable_kernels();
const Kernels& avx2_kernels();
const Kernels& avx512_kernels();

// The kernels of the instruction set in use now (rc_set_isa and the CPU).
inline const Kernels& kernels() {
  switch (rc::current_isa()) {
    case RC_ISA_AVX512: return avx512_kernels();
    case RC_ISA_AVX2: return avx2_kernels();
    default: return portable_kernels();
  }
}

// The number of cells; every instruction set registers the same ones (cells/registry.h).
inline int32_t cell_count() { return portable_kernels().cells.count; }

// Cell number `cell` (the managed CellKind's) on the instruction set in use; cell in [0, cell_count()).
inline const CellOps& cell_ops(int32_t cell) { return kernels().cells.cells[cell]; }

}  // namespace rc::rnn
