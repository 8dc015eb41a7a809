// Elman RNN, h' = tanh(a) or relu(a) with a = W_ih x + b_ih + W_hh h + b_hh: one gate block, and the
// backward needs only the step's output h' (the tape keeps no gates). Per ISA, as isa/vector.h says.
#pragma once
#include "isa/elementwise.h"
#include "isa/passes.h"

namespace rc::rnn::RC_RNN_NS::elman {

// ---- fused -------------------------------------------------------------------------------------

// Reads gates, bias, recurrent [N, H]; writes h_out (+h_copy).
template <class V, bool Relu, bool Train>
void forward(const StepForward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    const float* g = s.gates + n * H;
    const float* rec = s.recurrent + n * s.recurrent_ld;
    float* h = s.h_out + n * s.h_out_ld;
    float* h_copy = Train ? s.h_copy + n * H : nullptr;
    columns<V>(H, [&](auto lane_type, int64_t j) {
      RC_LANE;
      R a = U::load(g + j) + U::load(s.bias + j) + U::load(rec + j);
      R out;
      if constexpr (Relu) out = vmax(splat<R>(0.0f), a);  // a second: relu(NaN) is NaN
      else out = vtanh(a);
      U::store(h + j, out);
      if constexpr (Train) U::store(h_copy + j, out);
    });
  }
}

// Reads h_new, dy, dh; writes dgates.
template <class V, bool Relu>
void backward(const StepBackward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    const float* h = s.h_new + n * H;
    const float* dy = s.dy + n * s.dy_ld;
    const float* dh = s.dh + n * H;
    float* dg = s.dgates + n * H;
    columns<V>(H, [&](auto lane_type, int64_t j) {
      RC_LANE;
      R d = U::load(dy + j) + U::load(dh + j);
      R hv = U::load(h + j);
      R out;
      // As the reference: d times the derivative, so a NaN or ∞ in d is never dropped, and the relu
      // derivative is 1 where h is NaN (as PyTorch's threshold_backward passes the gradient there).
      if constexpr (Relu) out = d * select(less_equal(hv, splat<R>(0.0f)), splat<R>(0.0f), splat<R>(1.0f));
      else out = d * (1.0f - hv * hv);
      U::store(dg + j, out);
    });
  }
}

// ---- unfused -----------------------------------------------------------------------------------

template <class V, bool Relu, bool Train>
void unfused_forward(const StepForward& s, int64_t rows) {
  const Passes p(elementwise_ops<V>(), rows);
  const int64_t H = s.hidden;
  MutView t1{s.scratch[0], H}, out{s.h_out, s.h_out_ld};
  p.add(H, {s.gates, H}, {s.recurrent, s.recurrent_ld}, t1);
  if constexpr (Relu) p.relu(H, t1, out);
  else p.tanh(H, t1, out);
}

template <class V, bool Relu>
void unfused_backward(const StepBackward& s, int64_t rows) {
  const Passes p(elementwise_ops<V>(), rows);
  const int64_t H = s.hidden;
  MutView a{s.scratch[0], H}, b{s.scratch[1], H};
  View h{s.h_new, H};
  p.add(H, {s.dy, s.dy_ld}, {s.dh, H}, a);
  if constexpr (Relu) {
    p.relu_mask(H, h, b);
  } else {
    p.mul(H, h, h, b);
    p.one_minus(H, b, b);
  }
  p.mul(H, a, b, {s.dgates, H});
}

template <class V, bool Relu>
CellOps ops() {
  CellOps c{};
  c.name = Relu ? "RnnRelu" : "RnnTanh";
  c.gates = 1;
  c.forward[0] = forward<V, Relu, false>;
  c.forward[1] = forward<V, Relu, true>;
  c.backward = backward<V, Relu>;
  c.unfused_forward[0] = unfused_forward<V, Relu, false>;
  c.unfused_forward[1] = unfused_forward<V, Relu, true>;
  c.unfused_backward = unfused_backward<V, Relu>;
  return c;
}

}  // namespace rc::rnn::RC_RNN_NS::elman
