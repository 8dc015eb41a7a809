// The pointwise kernels with AVX2 + FMA, 8 floats a vector. Only this file is compiled for AVX2
// (the pragma), so the library still loads and runs on baseline x86-64.
#include <immintrin.h>
#include <cstdint>
#include "rnn_pointwise.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define RC_RNN_NS avx2
#define RC_RNN_AVX2
#include "rnn_pointwise_impl.h"

namespace rc::rnn {
const Kernels& avx2_kernels() {
  static const Kernels kernels = avx2::make_kernels<avx2::Avx2>();
  return kernels;
}
}  // namespace rc::rnn
#pragma GCC pop_options
