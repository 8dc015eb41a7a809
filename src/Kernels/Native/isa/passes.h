// The unfused baseline's passes: each call is one elementwise operation over whole [rows, cols] buffers,
// as a framework without fusion runs an RNN cell (one kernel per operation), split among the workers by
// rows when large. The cells' unfused steps (cells/*.h) and the sequence driver compose them.
//
// Defined out of line (isa/passes.cpp) although the per-ISA units call it: an inline function read after
// their `#pragma GCC target` could be compiled for that ISA and its copy kept by the linker for everyone.
#pragma once
#include <cstdint>
#include "isa/kernels.h"

namespace rc::rnn {

// Below this many elements a pointwise pass runs on the calling thread: waking workers costs more.
constexpr int64_t kParallelElements = 1 << 14;

// A [rows, cols] operand: base pointer and row stride.
struct View {
  const float* p;
  int64_t ld;
};
struct MutView {
  float* p;
  int64_t ld;
  operator View() const { return {p, ld}; }
};

class Passes {
 public:
  Passes(const ElementwiseOps& ops, int64_t rows) : ops_(ops), rows_(rows) {}

  void add(int64_t cols, View a, View b, MutView out) const;
  void sub(int64_t cols, View a, View b, MutView out) const;
  void mul(int64_t cols, View a, View b, MutView out) const;
  void sigmoid(int64_t cols, View a, MutView out) const;
  void tanh(int64_t cols, View a, MutView out) const;
  void relu(int64_t cols, View a, MutView out) const;
  void one_minus(int64_t cols, View a, MutView out) const;
  void relu_mask(int64_t cols, View a, MutView out) const;
  void copy(int64_t cols, View a, MutView out) const;
  void add_bias(int64_t cols, const float* bias, MutView out) const;

 private:
  void binary(ElementwiseOps::Binary op, int64_t cols, View a, View b, MutView out) const;
  void unary(ElementwiseOps::Unary op, int64_t cols, View a, MutView out) const;

  const ElementwiseOps& ops_;
  int64_t rows_;
};

}  // namespace rc::rnn
