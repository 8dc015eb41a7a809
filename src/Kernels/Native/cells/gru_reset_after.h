// GRU as PyTorch and cuDNN compute it ("linear before reset"): n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)).
// r scales the recurrent product of n, so b_hn stays apart from b_in, the tape keeps W_hn h + b_hn, and
// the gradient of the recurrent product (dgates_rec) differs from the gates' in its n block.
// Per ISA, as isa/vector.h says.
#pragma once
#include "cells/gru.h"

namespace rc::rnn::RC_RNN_NS::gru_reset_after {

// ---- fused -------------------------------------------------------------------------------------

// Reads gates, bias, recurrent, bias_hn, h_prev; writes h_out (+activated gates, h_copy, hn_out).
template <class V, bool Train>
void forward(const StepForward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    float* g = s.gates + n * 3 * H;
    const float* rec = s.recurrent + n * s.recurrent_ld;
    const float* h_prev = s.h_prev + n * s.h_prev_ld;
    float* h = s.h_out + n * s.h_out_ld;
    float* h_copy = Train ? s.h_copy + n * H : nullptr;
    float* hn_out = Train ? s.hn_out + n * H : nullptr;
    columns<V>(H, [&](auto lane_type, int64_t j) {
      RC_LANE;
      const float* b = s.bias;
      R r = vsigmoid(U::load(g + j) + U::load(b + j) + U::load(rec + j));
      R z = vsigmoid(U::load(g + H + j) + U::load(b + H + j) + U::load(rec + H + j));
      R hn = U::load(rec + 2 * H + j) + U::load(s.bias_hn + j);
      R cand = vtanh(U::load(g + 2 * H + j) + U::load(b + 2 * H + j) + r * hn);
      R hp = U::load(h_prev + j);
      R out = cand + z * (hp - cand);  // (1 − z)·n + z·h
      U::store(h + j, out);
      if constexpr (Train) {
        U::store(g + j, r);
        U::store(g + H + j, z);
        U::store(g + 2 * H + j, cand);
        U::store(hn_out + j, hn);
        U::store(h_copy + j, out);
      }
    });
  }
}

// Reads gates, h_prev, hn, dy, dh; writes dgates, dgates_rec, dh = d ⊙ z.
template <class V>
void backward(const StepBackward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    const float* g = s.gates + n * 3 * H;
    const float* h_prev = s.h_prev + n * H;
    const float* hn = s.hn + n * H;
    const float* dy = s.dy + n * s.dy_ld;
    float* dh = s.dh + n * H;
    float* dg = s.dgates + n * 3 * H;
    float* dgr = s.dgates_rec + n * 3 * H;
    columns<V>(H, [&](auto lane_type, int64_t j) {
      RC_LANE;
      R r = U::load(g + j), z = U::load(g + H + j), cand = U::load(g + 2 * H + j);
      R d = U::load(dy + j) + U::load(dh + j);
      R dn = d * (1.0f - z) * (1.0f - cand * cand);
      R dz = d * (U::load(h_prev + j) - cand) * z * (1.0f - z);
      R dr = dn * U::load(hn + j) * r * (1.0f - r);
      U::store(dg + j, dr);
      U::store(dg + H + j, dz);
      U::store(dg + 2 * H + j, dn);
      U::store(dgr + j, dr);
      U::store(dgr + H + j, dz);
      U::store(dgr + 2 * H + j, dn * r);
      U::store(dh + j, d * z);
    });
  }
}

// ---- unfused -----------------------------------------------------------------------------------

template <class V, bool Train>
void unfused_forward(const StepForward& s, int64_t rows) {
  const Passes p(elementwise_ops<V>(), rows);
  const int64_t H = s.hidden, GH = 3 * H;
  MutView gr{s.gates, GH}, gn{s.gates + 2 * H, GH}, t1{s.scratch[0], H};
  View hn{s.recurrent + 2 * H, s.recurrent_ld};
  gru::unfused_reset_update(p, s);
  if constexpr (Train) p.copy(H, hn, {s.hn_out, H});
  p.mul(H, gr, hn, t1);
  p.add(H, gn, t1, gn);
  gru::unfused_output(p, s);
}

template <class V>
void unfused_backward(const StepBackward& s, int64_t rows) {
  const Passes p(elementwise_ops<V>(), rows);
  const int64_t H = s.hidden, GH = 3 * H;
  MutView b{s.scratch[1], H}, c{s.scratch[2], H};
  View gr{s.gates, GH};
  MutView dr{s.dgates, GH}, dn{s.dgates + 2 * H, GH};
  gru::unfused_backward_update(p, s);
  p.mul(H, dn, {s.hn, H}, b);
  p.one_minus(H, gr, c);
  p.mul(H, gr, c, c);
  p.mul(H, b, c, dr);
  p.copy(2 * H, dr, {s.dgates_rec, GH});
  p.mul(H, dn, gr, {s.dgates_rec + 2 * H, GH});
}

template <class V>
CellOps ops() {
  CellOps c{};
  c.name = "GruResetAfter";
  c.gates = 3;
  c.keeps_gates = true;
  c.scales_recurrent_block = true;
  c.direct_state_path = true;
  c.forward[0] = forward<V, false>;
  c.forward[1] = forward<V, true>;
  c.backward = backward<V>;
  c.unfused_forward[0] = unfused_forward<V, false>;
  c.unfused_forward[1] = unfused_forward<V, true>;
  c.unfused_backward = unfused_backward<V>;
  return c;
}

}  // namespace rc::rnn::RC_RNN_NS::gru_reset_after
