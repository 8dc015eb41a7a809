// The elementwise operations: one operation per call over a whole [rows, cols] buffer, from which each
// cell's unfused step (cells/*.h) is composed as a framework without fusion runs it (the baseline). Per
// ISA, as isa/vector.h says; the table type, ElementwiseOps, is in isa/kernels.h.
#pragma once
#include "isa/activations.h"

namespace rc::rnn::RC_RNN_NS {

struct AddOp { template <class R> static R apply(R a, R b) { return a + b; } };
struct SubOp { template <class R> static R apply(R a, R b) { return a - b; } };
struct MulOp { template <class R> static R apply(R a, R b) { return a * b; } };
struct SigmoidOp { template <class R> static R apply(R a) { return vsigmoid(a); } };
struct TanhOp { template <class R> static R apply(R a) { return vtanh(a); } };
struct ReluOp { template <class R> static R apply(R a) { return vmax(splat<R>(0.0f), a); } };
struct OneMinusOp { template <class R> static R apply(R a) { return 1.0f - a; } };
// 1 where a is NaN, as the fused backward.
struct ReluMaskOp { template <class R> static R apply(R a) { return select(less_equal(a, splat<R>(0.0f)), splat<R>(0.0f), splat<R>(1.0f)); } };
struct CopyOp { template <class R> static R apply(R a) { return a; } };

template <class V, class Op>
void binary(int64_t rows, int64_t cols, const float* a, int64_t lda, const float* b, int64_t ldb, float* out, int64_t ldo) {
  for (int64_t n = 0; n < rows; n++)
    columns<V>(cols, [&](auto lane_type, int64_t j) {
      RC_LANE;
      U::store(out + n * ldo + j, Op::apply(U::load(a + n * lda + j), U::load(b + n * ldb + j)));
    });
}

template <class V, class Op>
void unary(int64_t rows, int64_t cols, const float* a, int64_t lda, float* out, int64_t ldo) {
  for (int64_t n = 0; n < rows; n++)
    columns<V>(cols, [&](auto lane_type, int64_t j) {
      RC_LANE;
      U::store(out + n * ldo + j, Op::apply(U::load(a + n * lda + j)));
    });
}

template <class V>
void add_bias(int64_t rows, int64_t cols, const float* bias, float* out, int64_t ldo) {
  for (int64_t n = 0; n < rows; n++)
    columns<V>(cols, [&](auto lane_type, int64_t j) {
      RC_LANE;
      U::store(out + n * ldo + j, U::load(out + n * ldo + j) + U::load(bias + j));
    });
}

template <class V>
void add_column_sums(int64_t rows, int64_t cols, const float* a, int64_t lda, float* out) {
  constexpr int64_t kChunk = 256;  // columns at a time: the partial sums stay in registers and L1
  float sums[kChunk];
  for (int64_t c0 = 0; c0 < cols; c0 += kChunk) {
    const int64_t width = cols - c0 < kChunk ? cols - c0 : kChunk;
    for (int64_t c = 0; c < width; c++) sums[c] = 0.0f;
    for (int64_t r = 0; r < rows; r++) {
      const float* row = a + r * lda + c0;
      columns<V>(width, [&](auto lane_type, int64_t j) {
        RC_LANE;
        U::store(sums + j, U::load(sums + j) + U::load(row + j));
      });
    }
    for (int64_t c = 0; c < width; c++) out[c0 + c] += sums[c];
  }
}

template <class V>
ElementwiseOps make_elementwise() {
  ElementwiseOps e{};
  e.add = binary<V, AddOp>;
  e.sub = binary<V, SubOp>;
  e.mul = binary<V, MulOp>;
  e.sigmoid = unary<V, SigmoidOp>;
  e.tanh = unary<V, TanhOp>;
  e.relu = unary<V, ReluOp>;
  e.one_minus = unary<V, OneMinusOp>;
  e.relu_mask = unary<V, ReluMaskOp>;
  e.copy = unary<V, CopyOp>;
  e.add_bias = add_bias<V>;
  e.add_column_sums = add_column_sums<V>;
  return e;
}

template <class V>
const ElementwiseOps& elementwise_ops() {
  static const ElementwiseOps ops = make_elementwise<V>();
  return ops;
}

}  // namespace rc::rnn::RC_RNN_NS
