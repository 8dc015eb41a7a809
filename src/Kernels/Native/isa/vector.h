// The vector types the pointwise kernels are written over, and the row loop that runs them. Included by
// each per-ISA compilation unit (isa/{portable,avx2,avx512}.cpp) after its `#pragma GCC target`, with
// RC_RNN_NS naming a namespace of its own, so the per-ISA copies of these inline functions never meet at
// link time; RC_RNN_GENERIC4 / RC_RNN_AVX2 / RC_RNN_AVX512 enable the vector types. Every standard header
// is included by that file before the pragma, not here (an inline function from a header first read
// after the pragma would be compiled for that ISA, and the linker could keep that copy for everyone).
//
// Arithmetic uses GCC's vector-extension operators (+, -, *, / on __m256/__m512, a scalar operand
// broadcast); everything else goes through the small overload set below. A row is processed in full
// vectors, its remainder with the scalar type, which evaluates the same formulas: the tail of a row
// (H not a multiple of the width) gets the same results as a row on the portable path.
#pragma once

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

}  // namespace rc::rnn::RC_RNN_NS
