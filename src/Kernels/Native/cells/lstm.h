// LSTM, gate blocks i, f, g, o: c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c'). Per ISA, as isa/vector.h says.
#pragma once
#include "isa/elementwise.h"
#include "isa/passes.h"

namespace rc::rnn::RC_RNN_NS::lstm {

// ---- fused -------------------------------------------------------------------------------------

// Reads gates, bias, recurrent, c_prev; writes c_out, h_out (+activated gates, h_copy).
template <class V, bool Train>
void forward(const StepForward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    float* g = s.gates + n * 4 * H;
    const float* rec = s.recurrent + n * s.recurrent_ld;
    const float* c_prev = s.c_prev + n * H;
    float* c_out = s.c_out + n * H;
    float* h = s.h_out + n * s.h_out_ld;
    float* h_copy = Train ? s.h_copy + n * H : nullptr;
    columns<V>(H, [&](auto lane_type, int64_t j) {
      RC_LANE;
      const float* b = s.bias;
      R i = vsigmoid(U::load(g + j) + U::load(b + j) + U::load(rec + j));
      R f = vsigmoid(U::load(g + H + j) + U::load(b + H + j) + U::load(rec + H + j));
      R cand = vtanh(U::load(g + 2 * H + j) + U::load(b + 2 * H + j) + U::load(rec + 2 * H + j));
      R o = vsigmoid(U::load(g + 3 * H + j) + U::load(b + 3 * H + j) + U::load(rec + 3 * H + j));
      R c = f * U::load(c_prev + j) + i * cand;
      R out = o * vtanh(c);
      U::store(c_out + j, c);
      U::store(h + j, out);
      if constexpr (Train) {
        U::store(g + j, i);
        U::store(g + H + j, f);
        U::store(g + 2 * H + j, cand);
        U::store(g + 3 * H + j, o);
        U::store(h_copy + j, out);
      }
    });
  }
}

// Reads gates, c_prev, c_new, dy, dh, dc; writes dgates, dc.
template <class V>
void backward(const StepBackward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    const float* g = s.gates + n * 4 * H;
    const float* c_prev = s.c_prev + n * H;
    const float* c_new = s.c_new + n * H;
    const float* dy = s.dy + n * s.dy_ld;
    const float* dh = s.dh + n * H;
    float* dc = s.dc + n * H;
    float* dg = s.dgates + n * 4 * H;
    columns<V>(H, [&](auto lane_type, int64_t j) {
      RC_LANE;
      R i = U::load(g + j), f = U::load(g + H + j), cand = U::load(g + 2 * H + j), o = U::load(g + 3 * H + j);
      R d = U::load(dy + j) + U::load(dh + j);
      R tc = vtanh(U::load(c_new + j));
      R dcell = U::load(dc + j) + d * o * (1.0f - tc * tc);
      U::store(dg + j, dcell * cand * i * (1.0f - i));
      U::store(dg + H + j, dcell * U::load(c_prev + j) * f * (1.0f - f));
      U::store(dg + 2 * H + j, dcell * i * (1.0f - cand * cand));
      U::store(dg + 3 * H + j, d * tc * o * (1.0f - o));
      U::store(dc + j, dcell * f);
    });
  }
}

// ---- unfused -----------------------------------------------------------------------------------

template <class V, bool Train>
void unfused_forward(const StepForward& s, int64_t rows) {
  const Passes p(elementwise_ops<V>(), rows);
  const int64_t H = s.hidden, GH = 4 * H;
  float* gates = s.gates;
  MutView g{gates, GH}, gi{gates, GH}, gf{gates + H, GH}, gg{gates + 2 * H, GH}, go{gates + 3 * H, GH};
  MutView t1{s.scratch[0], H}, t2{s.scratch[1], H}, c_out{s.c_out, H};
  p.add(GH, g, {s.recurrent, s.recurrent_ld}, g);
  p.sigmoid(2 * H, gi, gi);
  p.tanh(H, gg, gg);
  p.sigmoid(H, go, go);
  p.mul(H, gf, {s.c_prev, H}, t1);
  p.mul(H, gi, gg, t2);
  p.add(H, t1, t2, c_out);
  p.tanh(H, c_out, t1);
  p.mul(H, go, t1, {s.h_out, s.h_out_ld});
}

template <class V>
void unfused_backward(const StepBackward& s, int64_t rows) {
  const Passes p(elementwise_ops<V>(), rows);
  const int64_t H = s.hidden, GH = 4 * H;
  MutView a{s.scratch[0], H}, b{s.scratch[1], H}, c{s.scratch[2], H}, d{s.scratch[3], H};
  View gi{s.gates, GH}, gf{s.gates + H, GH}, gg{s.gates + 2 * H, GH}, go{s.gates + 3 * H, GH};
  MutView di{s.dgates, GH}, df{s.dgates + H, GH}, dg{s.dgates + 2 * H, GH}, dout{s.dgates + 3 * H, GH};
  MutView dcv{s.dc, H};
  p.add(H, {s.dy, s.dy_ld}, {s.dh, H}, a);  // the total gradient of this step's output
  p.tanh(H, {s.c_new, H}, b);
  p.mul(H, a, b, c);
  p.one_minus(H, go, d);
  p.mul(H, go, d, d);
  p.mul(H, c, d, dout);
  p.mul(H, a, go, c);
  p.mul(H, b, b, d);
  p.one_minus(H, d, d);
  p.mul(H, c, d, c);
  p.add(H, dcv, c, dcv);
  p.mul(H, dcv, gg, c);
  p.one_minus(H, gi, d);
  p.mul(H, gi, d, d);
  p.mul(H, c, d, di);
  p.mul(H, dcv, {s.c_prev, H}, c);
  p.one_minus(H, gf, d);
  p.mul(H, gf, d, d);
  p.mul(H, c, d, df);
  p.mul(H, dcv, gi, c);
  p.mul(H, gg, gg, d);
  p.one_minus(H, d, d);
  p.mul(H, c, d, dg);
  p.mul(H, dcv, gf, dcv);
}

template <class V>
CellOps ops() {
  CellOps c{};
  c.name = "Lstm";
  c.gates = 4;
  c.has_cell_state = true;
  c.keeps_gates = true;
  c.forward[0] = forward<V, false>;
  c.forward[1] = forward<V, true>;
  c.backward = backward<V>;
  c.unfused_forward[0] = unfused_forward<V, false>;
  c.unfused_forward[1] = unfused_forward<V, true>;
  c.unfused_backward = unfused_backward<V>;
  return c;
}

}  // namespace rc::rnn::RC_RNN_NS::lstm
