// exp, sigmoid and tanh over the vector types of isa/vector.h (per ISA, as that header says). Every
// cell's kernels and the elementwise operations call these, so all paths share one approximation.
#pragma once
#include "isa/vector.h"

namespace rc::rnn::RC_RNN_NS {

// exp as Cephes' expf: x = n·ln2 + r with |r| ≤ ln2/2, a degree-7 polynomial for e^r (relative error
// ≈ 1e-7), 2^n from the exponent bits. x goes second in the clamp, so a NaN passes through. Below, the
// clamp keeps 2^n a normal number (exp(−∞) is 1e-38, not 0, which sigmoid and tanh round away). Above, it
// lets n reach 128, whose exponent bits are those of +∞: exp(x) is ∞ from x ≈ 88.38 on (true overflow is at
// 88.72), so sigmoid(−∞) is exactly 0, as in the reference, not the 1/exp(88.3) ≈ 5e-39 of a clamp at 88.3
// (which 0·∞ in a gradient turns into ∞ instead of NaN). 89 keeps n ≤ 128.
// The scalar path's float-to-int conversions of a NaN are unspecified, but y is NaN already then, and so
// is y · 2^n whatever 2^n is.
template <class R>
inline R vexp(R x) {
  x = vmin(splat<R>(89.0f), vmax(splat<R>(-87.3f), x));
  R n = round_nearest(x * 1.44269504088896341f);
  R r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  R p = splat<R>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  R y = p * (r * r) + r + 1.0f;
  return y * pow2(n);
}

template <class R>
inline R vsigmoid(R x) {
  return 1.0f / (vexp(-x) + 1.0f);
}

// tanh(|x|) = (1 − e)/(1 + e) with e = exp(−2|x|) loses relative accuracy as |x| → 0 (1 − e cancels), so
// below 0.25 its Taylor series to x^11 is used instead (next term < 2e-10 relative there). A NaN fails
// the comparison and takes the (1 − e)/(1 + e) branch, which is NaN.
template <class R>
inline R vtanh(R x) {
  R a = vabs(x);
  R e = vexp(a * -2.0f);
  R large = (1.0f - e) / (e + 1.0f);
  R s = a * a;
  R p = splat<R>(-1382.0f / 155925.0f);
  p = p * s + 62.0f / 2835.0f;
  p = p * s + -17.0f / 315.0f;
  p = p * s + 2.0f / 15.0f;
  p = p * s + -1.0f / 3.0f;
  R small = a * (p * s) + a;
  return copysign_of(select(less(a, splat<R>(0.25f)), small, large), x);
}

}  // namespace rc::rnn::RC_RNN_NS
