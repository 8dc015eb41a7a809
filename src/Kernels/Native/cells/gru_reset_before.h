// GRU as the Deep Learning book and Keras (reset_after=False) write it: n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn).
// W_hn's operand r ⊙ h waits for r, so each step is two phases around a second recurrent product: forward_operand
// activates r and z and writes r ⊙ h, the driver multiplies it by W_hn, forward finishes n and h'; backward
// mirrors it (backward, the driver's drh = dn · W_hn, backward_operand). Per ISA, as isa/vector.h says.
#pragma once
#include "cells/gru.h"

namespace rc::rnn::RC_RNN_NS::gru_reset_before {

// ---- fused -------------------------------------------------------------------------------------

// First phase: recurrent [N, 2H] (blocks r, z); writes activated r, z into gates, and rh_out.
template <class V>
void forward_operand(const StepForward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    float* g = s.gates + n * 3 * H;
    const float* rec = s.recurrent + n * s.recurrent_ld;
    const float* h_prev = s.h_prev + n * s.h_prev_ld;
    float* rh = s.rh_out + n * H;
    columns<V>(H, [&](auto lane_type, int64_t j) {
      RC_LANE;
      const float* b = s.bias;
      R r = vsigmoid(U::load(g + j) + U::load(b + j) + U::load(rec + j));
      R z = vsigmoid(U::load(g + H + j) + U::load(b + H + j) + U::load(rec + H + j));
      U::store(g + j, r);
      U::store(g + H + j, z);
      U::store(rh + j, r * U::load(h_prev + j));
    });
  }
}

// Second phase: recurrent [N, H] = W_hn (r ⊙ h); writes h_out (+activated n into gates, h_copy).
template <class V, bool Train>
void forward(const StepForward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    float* g = s.gates + n * 3 * H;
    const float* rec = s.recurrent + n * s.recurrent_ld;
    const float* h_prev = s.h_prev + n * s.h_prev_ld;
    float* h = s.h_out + n * s.h_out_ld;
    float* h_copy = Train ? s.h_copy + n * H : nullptr;
    columns<V>(H, [&](auto lane_type, int64_t j) {
      RC_LANE;
      R z = U::load(g + H + j);
      R cand = vtanh(U::load(g + 2 * H + j) + U::load(s.bias + 2 * H + j) + U::load(rec + j));
      R hp = U::load(h_prev + j);
      R out = cand + z * (hp - cand);
      U::store(h + j, out);
      if constexpr (Train) {
        U::store(g + 2 * H + j, cand);
        U::store(h_copy + j, out);
      }
    });
  }
}

// First phase: reads gates, h_prev, dy, dh; writes dgates (z, n), dh = d ⊙ z.
template <class V>
void backward(const StepBackward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    const float* g = s.gates + n * 3 * H;
    const float* h_prev = s.h_prev + n * H;
    const float* dy = s.dy + n * s.dy_ld;
    float* dh = s.dh + n * H;
    float* dg = s.dgates + n * 3 * H;
    columns<V>(H, [&](auto lane_type, int64_t j) {
      RC_LANE;
      R z = U::load(g + H + j), cand = U::load(g + 2 * H + j);
      R d = U::load(dy + j) + U::load(dh + j);
      U::store(dg + H + j, d * (U::load(h_prev + j) - cand) * z * (1.0f - z));
      U::store(dg + 2 * H + j, d * (1.0f - z) * (1.0f - cand * cand));
      U::store(dh + j, d * z);
    });
  }
}

// Second phase: reads gates, h_prev, drh; writes dgates (r), dh += drh ⊙ r.
template <class V>
void backward_operand(const StepBackward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    const float* g = s.gates + n * 3 * H;
    const float* h_prev = s.h_prev + n * H;
    const float* drh = s.drh + n * H;
    float* dh = s.dh + n * H;
    float* dg = s.dgates + n * 3 * H;
    columns<V>(H, [&](auto lane_type, int64_t j) {
      RC_LANE;
      R r = U::load(g + j), d = U::load(drh + j);
      U::store(dg + j, d * U::load(h_prev + j) * r * (1.0f - r));
      U::store(dh + j, U::load(dh + j) + d * r);
    });
  }
}

// ---- unfused -----------------------------------------------------------------------------------

template <class V>
void unfused_forward_operand(const StepForward& s, int64_t rows) {
  const Passes p(elementwise_ops<V>(), rows);
  const int64_t H = s.hidden, GH = 3 * H;
  gru::unfused_reset_update(p, s);
  p.mul(H, {s.gates, GH}, {s.h_prev, s.h_prev_ld}, {s.rh_out, H});
}

template <class V, bool Train>
void unfused_forward(const StepForward& s, int64_t rows) {
  const Passes p(elementwise_ops<V>(), rows);
  const int64_t H = s.hidden, GH = 3 * H;
  MutView gn{s.gates + 2 * H, GH};
  p.add(H, gn, {s.recurrent, s.recurrent_ld}, gn);
  gru::unfused_output(p, s);
}

template <class V>
void unfused_backward(const StepBackward& s, int64_t rows) {
  gru::unfused_backward_update(Passes(elementwise_ops<V>(), rows), s);
}

template <class V>
void unfused_backward_operand(const StepBackward& s, int64_t rows) {
  const Passes p(elementwise_ops<V>(), rows);
  const int64_t H = s.hidden, GH = 3 * H;
  MutView b{s.scratch[1], H}, c{s.scratch[2], H}, dhv{s.dh, H};
  View gr{s.gates, GH}, drh{s.drh, H};
  p.mul(H, drh, {s.h_prev, H}, b);
  p.one_minus(H, gr, c);
  p.mul(H, gr, c, c);
  p.mul(H, b, c, {s.dgates, GH});
  p.mul(H, drh, gr, b);
  p.add(H, dhv, b, dhv);
}

template <class V>
void recompute_operand(int64_t rows, int64_t hidden, const float* gates, const float* h_prev, float* out) {
  Passes(elementwise_ops<V>(), rows).mul(hidden, {gates, 3 * hidden}, {h_prev, hidden}, {out, hidden});
}

template <class V>
CellOps ops() {
  CellOps c{};
  c.name = "GruResetBefore";
  c.gates = 3;
  c.keeps_gates = true;
  c.split_recurrent_product = true;
  c.direct_state_path = true;
  c.forward[0] = forward<V, false>;
  c.forward[1] = forward<V, true>;
  c.forward_operand = forward_operand<V>;
  c.backward = backward<V>;
  c.backward_operand = backward_operand<V>;
  c.unfused_forward[0] = unfused_forward<V, false>;
  c.unfused_forward[1] = unfused_forward<V, true>;
  c.unfused_forward_operand = unfused_forward_operand<V>;
  c.unfused_backward = unfused_backward<V>;
  c.unfused_backward_operand = unfused_backward_operand<V>;
  c.recompute_operand = recompute_operand<V>;
  return c;
}

}  // namespace rc::rnn::RC_RNN_NS::gru_reset_before
