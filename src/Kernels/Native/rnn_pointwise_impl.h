// The pointwise kernels of rnn_pointwise.h, written once over a vector type and compiled once per
// instruction set. Deliberately without include guard: each rnn_pointwise_<isa>.cpp includes it after
// its `#pragma GCC target`, with RC_RNN_NS naming a namespace of its own (so the per-ISA copies of
// these inline functions never meet at link time) and RC_RNN_AVX2 / RC_RNN_AVX512 enabling the
// vector types. Every standard header is included by that file before the pragma, not here.
//
// Arithmetic uses GCC's vector-extension operators (+, -, *, / on __m256/__m512, a scalar operand
// broadcast); everything else goes through the small overload set below. A row is processed in full
// vectors, its remainder with the scalar type, which evaluates the same formulas: the tail of a row
// (H not a multiple of the width) gets the same results as a row on the portable path.

namespace rc::rnn::RC_RNN_NS {

// ---- the vector types --------------------------------------------------------------------------
//
// vmax(a, b) and vmin(a, b) return b when either operand is NaN: that is what x86 MAXPS/MINPS do, and
// the portable `a > b ? a : b` forms do the same. So the operand whose NaN must survive goes second, and
// a NaN propagates at no cost. Comparisons are ordered (false for NaN); a select keyed on one decides
// where a NaN goes, so each says which way.

struct Scalar {
  using R = float;
  static constexpr int64_t width = 1;
  static R load(const float* p) { return *p; }
  static void store(float* p, R v) { *p = v; }
};

template <class R> R splat(float v);
template <> inline float splat<float>(float v) { return v; }
inline float vmax(float a, float b) { return a > b ? a : b; }
inline float vmin(float a, float b) { return a < b ? a : b; }
inline bool less(float a, float b) { return a < b; }
inline bool less_equal(float a, float b) { return a <= b; }
inline float select(bool m, float t, float f) { return m ? t : f; }
inline float vabs(float a) { return __builtin_fabsf(a); }
inline float copysign_of(float magnitude, float sign) { return __builtin_copysignf(magnitude, sign); }
// Round half away from zero: |z| < 2^7 here, so the int conversion is exact.
inline float round_nearest(float z) { return static_cast<float>(static_cast<int32_t>(z + copysign_of(0.5f, z))); }
// 2^n for an integral n in [-126, 127], built from the exponent bits.
inline float pow2(float n) {
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float result;
  __builtin_memcpy(&result, &bits, sizeof result);
  return result;
}

#ifdef RC_RNN_GENERIC4
// Four floats in GCC's generic vector extension: SSE2 on any x86-64 (and NEON where the library is
// built for ARM), without intrinsics. The portable path, so it is not left to scalar exp and tanh.
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
struct Generic4 {
  using R = v4f;
  static constexpr int64_t width = 4;
  static R load(const float* p) { R v; __builtin_memcpy(&v, p, sizeof v); return v; }
  static void store(float* p, R v) { __builtin_memcpy(p, &v, sizeof v); }
};
template <> inline v4f splat<v4f>(float v) { return v4f{v, v, v, v}; }
inline v4f vmax(v4f a, v4f b) { return a > b ? a : b; }
inline v4f vmin(v4f a, v4f b) { return a < b ? a : b; }
inline v4i less(v4f a, v4f b) { return a < b; }
inline v4i less_equal(v4f a, v4f b) { return a <= b; }
inline v4f select(v4i m, v4f t, v4f f) { return m ? t : f; }
inline v4f vabs(v4f a) { return (v4f)((v4i)a & INT32_MAX); }
inline v4f copysign_of(v4f magnitude, v4f sign) { return (v4f)(((v4i)magnitude & INT32_MAX) | ((v4i)sign & INT32_MIN)); }
// Conversion truncates toward zero; adding ±0.5 first rounds half away from zero (|z| < 2^7 here).
inline v4f round_nearest(v4f z) { return __builtin_convertvector(__builtin_convertvector(z + copysign_of(splat<v4f>(0.5f), z), v4i), v4f); }
inline v4f pow2(v4f n) { return (v4f)((__builtin_convertvector(n, v4i) + 127) << 23); }
#endif

#ifdef RC_RNN_AVX2
struct Avx2 {
  using R = __m256;
  static constexpr int64_t width = 8;
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
};
template <> inline __m256 splat<__m256>(float v) { return _mm256_set1_ps(v); }
inline __m256 vmax(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
inline __m256 vmin(__m256 a, __m256 b) { return _mm256_min_ps(a, b); }
inline __m256 less(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
inline __m256 less_equal(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
inline __m256 select(__m256 m, __m256 t, __m256 f) { return _mm256_blendv_ps(f, t, m); }
inline __m256 vabs(__m256 a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
inline __m256 copysign_of(__m256 magnitude, __m256 sign) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  return _mm256_or_ps(_mm256_andnot_ps(sign_bit, magnitude), _mm256_and_ps(sign_bit, sign));
}
inline __m256 round_nearest(__m256 z) { return _mm256_round_ps(z, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline __m256 pow2(__m256 n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
#endif

#ifdef RC_RNN_AVX512
struct Avx512 {
  using R = __m512;
  static constexpr int64_t width = 16;
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, R v) { _mm512_storeu_ps(p, v); }
};
template <> inline __m512 splat<__m512>(float v) { return _mm512_set1_ps(v); }
inline __m512 vmax(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
inline __m512 vmin(__m512 a, __m512 b) { return _mm512_min_ps(a, b); }
inline __mmask16 less(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
inline __mmask16 less_equal(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
inline __m512 select(__mmask16 m, __m512 t, __m512 f) { return _mm512_mask_blend_ps(m, f, t); }
inline __m512 vabs(__m512 a) { return _mm512_abs_ps(a); }
// Integer logic: the float forms of and/or need AVX512DQ, which the dispatch does not check for.
inline __m512 copysign_of(__m512 magnitude, __m512 sign) {
  const __m512i sign_bit = _mm512_set1_epi32(INT32_MIN);
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_andnot_si512(sign_bit, _mm512_castps_si512(magnitude)),
                                             _mm512_and_si512(sign_bit, _mm512_castps_si512(sign))));
}
inline __m512 round_nearest(__m512 z) { return _mm512_roundscale_ps(z, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline __m512 pow2(__m512 n) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
#endif

// ---- activations -------------------------------------------------------------------------------

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

// ---- row loops ---------------------------------------------------------------------------------

// Calls body(vector_tag, j) for j in [0, cols): full vectors first, then the remainder one by one.
template <class V, class Body>
inline __attribute__((always_inline)) void columns(int64_t cols, Body&& body) {
  int64_t j = 0;
  if constexpr (V::width > 1)
    for (; j + V::width <= cols; j += V::width) body(V{}, j);
  for (; j < cols; j++) body(Scalar{}, j);
}

#define RC_LANE using U = decltype(lane_type); using R = typename U::R; (void)sizeof(R)

// ---- fused forward -----------------------------------------------------------------------------

template <class V, bool Relu, bool Train>
void elman_forward(const StepForward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    const float* g = s.gates + n * H;
    const float* rec = s.recurrent + n * s.recurrent_ld;
    float* h = s.h_out + n * H;
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

template <class V, bool Train>
void lstm_forward(const StepForward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    float* g = s.gates + n * 4 * H;
    const float* rec = s.recurrent + n * s.recurrent_ld;
    const float* c_prev = s.c_prev + n * H;
    float* c_out = s.c_out + n * H;
    float* h = s.h_out + n * H;
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

template <class V, bool Train>
void gru_after_forward(const StepForward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    float* g = s.gates + n * 3 * H;
    const float* rec = s.recurrent + n * s.recurrent_ld;
    const float* h_prev = s.h_prev + n * H;
    float* h = s.h_out + n * H;
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

template <class V>
void gru_before_gates(const StepForward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    float* g = s.gates + n * 3 * H;
    const float* rec = s.recurrent + n * s.recurrent_ld;
    const float* h_prev = s.h_prev + n * H;
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

template <class V, bool Train>
void gru_before_forward(const StepForward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    float* g = s.gates + n * 3 * H;
    const float* rec = s.recurrent + n * s.recurrent_ld;
    const float* h_prev = s.h_prev + n * H;
    float* h = s.h_out + n * H;
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

// ---- fused backward ----------------------------------------------------------------------------

template <class V, bool Relu>
void elman_backward(const StepBackward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    const float* h = s.h_new + n * H;
    const float* dy = s.dy + n * H;
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

template <class V>
void lstm_backward(const StepBackward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    const float* g = s.gates + n * 4 * H;
    const float* c_prev = s.c_prev + n * H;
    const float* c_new = s.c_new + n * H;
    const float* dy = s.dy + n * H;
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

template <class V>
void gru_after_backward(const StepBackward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    const float* g = s.gates + n * 3 * H;
    const float* h_prev = s.h_prev + n * H;
    const float* hn = s.hn + n * H;
    const float* dy = s.dy + n * H;
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

template <class V>
void gru_before_backward(const StepBackward& s, int64_t row_begin, int64_t row_end) {
  const int64_t H = s.hidden;
  for (int64_t n = row_begin; n < row_end; n++) {
    const float* g = s.gates + n * 3 * H;
    const float* h_prev = s.h_prev + n * H;
    const float* dy = s.dy + n * H;
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

template <class V>
void gru_before_backward_reset(const StepBackward& s, int64_t row_begin, int64_t row_end) {
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

// ---- elementwise operations (the unfused baseline) ---------------------------------------------

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

#undef RC_LANE

template <class V>
Kernels make_kernels() {
  Kernels k{};
  FusedKernels& f = k.fused;
  f.elman_tanh_forward[0] = elman_forward<V, false, false>;
  f.elman_tanh_forward[1] = elman_forward<V, false, true>;
  f.elman_relu_forward[0] = elman_forward<V, true, false>;
  f.elman_relu_forward[1] = elman_forward<V, true, true>;
  f.lstm_forward[0] = lstm_forward<V, false>;
  f.lstm_forward[1] = lstm_forward<V, true>;
  f.gru_after_forward[0] = gru_after_forward<V, false>;
  f.gru_after_forward[1] = gru_after_forward<V, true>;
  f.gru_before_gates = gru_before_gates<V>;
  f.gru_before_forward[0] = gru_before_forward<V, false>;
  f.gru_before_forward[1] = gru_before_forward<V, true>;
  f.elman_tanh_backward = elman_backward<V, false>;
  f.elman_relu_backward = elman_backward<V, true>;
  f.lstm_backward = lstm_backward<V>;
  f.gru_after_backward = gru_after_backward<V>;
  f.gru_before_backward = gru_before_backward<V>;
  f.gru_before_backward_reset = gru_before_backward_reset<V>;
  ElementwiseOps& e = k.elementwise;
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
  return k;
}

}  // namespace rc::rnn::RC_RNN_NS
