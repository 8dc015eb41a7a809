#include "isa/passes.h"
#include "parallel.h"

namespace rc::rnn {

namespace {
template <class Body>
void split(int64_t rows, int64_t cols, const Body& body) {
  if (rows * cols < kParallelElements || rows < 2) body(0, rows);
  else parallel_for(rows, body);
}
}  // namespace

void Passes::add(int64_t cols, View a, View b, MutView out) const { binary(ops_.add, cols, a, b, out); }
void Passes::sub(int64_t cols, View a, View b, MutView out) const { binary(ops_.sub, cols, a, b, out); }
void Passes::mul(int64_t cols, View a, View b, MutView out) const { binary(ops_.mul, cols, a, b, out); }
void Passes::sigmoid(int64_t cols, View a, MutView out) const { unary(ops_.sigmoid, cols, a, out); }
void Passes::tanh(int64_t cols, View a, MutView out) const { unary(ops_.tanh, cols, a, out); }
void Passes::relu(int64_t cols, View a, MutView out) const { unary(ops_.relu, cols, a, out); }
void Passes::one_minus(int64_t cols, View a, MutView out) const { unary(ops_.one_minus, cols, a, out); }
void Passes::relu_mask(int64_t cols, View a, MutView out) const { unary(ops_.relu_mask, cols, a, out); }
void Passes::copy(int64_t cols, View a, MutView out) const { unary(ops_.copy, cols, a, out); }

void Passes::add_bias(int64_t cols, const float* bias, MutView out) const {
  split(rows_, cols, [&](int64_t begin, int64_t end) { ops_.add_bias(end - begin, cols, bias, out.p + begin * out.ld, out.ld); });
}

void Passes::binary(ElementwiseOps::Binary op, int64_t cols, View a, View b, MutView out) const {
  split(rows_, cols, [&](int64_t begin, int64_t end) {
    op(end - begin, cols, a.p + begin * a.ld, a.ld, b.p + begin * b.ld, b.ld, out.p + begin * out.ld, out.ld);
  });
}

void Passes::unary(ElementwiseOps::Unary op, int64_t cols, View a, MutView out) const {
  split(rows_, cols, [&](int64_t begin, int64_t end) { op(end - begin, cols, a.p + begin * a.ld, a.ld, out.p + begin * out.ld, out.ld); });
}

}  // namespace rc::rnn
