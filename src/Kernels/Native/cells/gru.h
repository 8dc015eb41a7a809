// What the two GRU forms (cells/gru_reset_after.h, cells/gru_reset_before.h) share: gate blocks r, z, n
// and h' = (1 − z) ⊙ n + z ⊙ h; they differ only in where r meets the recurrent product of n. Here the
// unfused passes common to both. Per ISA, as isa/vector.h says.
#pragma once
#include "isa/elementwise.h"
#include "isa/passes.h"

namespace rc::rnn::RC_RNN_NS::gru {

// r, z = sigmoid(gates + recurrent) for blocks r and z, in place in gates.
inline void unfused_reset_update(const Passes& p, const StepForward& s) {
  const int64_t H = s.hidden, GH = 3 * H;
  MutView grz{s.gates, GH};
  p.add(2 * H, grz, {s.recurrent, s.recurrent_ld}, grz);
  p.sigmoid(2 * H, grz, grz);
}

// Given the pre-activation of n in its gate block: n = tanh(·) in place, h' = (1 − z) ⊙ n + z ⊙ h.
inline void unfused_output(const Passes& p, const StepForward& s) {
  const int64_t H = s.hidden, GH = 3 * H;
  MutView gz{s.gates + H, GH}, gn{s.gates + 2 * H, GH};
  MutView t1{s.scratch[0], H}, t2{s.scratch[1], H};
  View hp{s.h_prev, s.h_prev_ld};
  p.tanh(H, gn, gn);
  p.one_minus(H, gz, t1);
  p.mul(H, t1, gn, t1);
  p.mul(H, gz, hp, t2);
  p.add(H, t1, t2, {s.h_out, s.h_out_ld});
}

// The gradients of z's and n's pre-activations, and dh = d ⊙ z (the direct path). Leaves dn in its dgates
// block for the form's gradient of r.
inline void unfused_backward_update(const Passes& p, const StepBackward& s) {
  const int64_t H = s.hidden, GH = 3 * H;
  MutView a{s.scratch[0], H}, b{s.scratch[1], H}, c{s.scratch[2], H};
  View gz{s.gates + H, GH}, gn{s.gates + 2 * H, GH}, hp{s.h_prev, H};
  MutView dz{s.dgates + H, GH}, dn{s.dgates + 2 * H, GH}, dhv{s.dh, H};
  p.add(H, {s.dy, s.dy_ld}, dhv, a);  // the total gradient of this step's output
  p.one_minus(H, gz, b);
  p.mul(H, a, b, b);
  p.mul(H, gn, gn, c);
  p.one_minus(H, c, c);
  p.mul(H, b, c, dn);
  p.sub(H, hp, gn, b);
  p.mul(H, a, b, b);
  p.one_minus(H, gz, c);
  p.mul(H, gz, c, c);
  p.mul(H, b, c, dz);
  p.mul(H, a, gz, dhv);
}

}  // namespace rc::rnn::RC_RNN_NS::gru
