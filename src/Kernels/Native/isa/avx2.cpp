// The pointwise kernels with AVX2 + FMA, 8 floats a vector. Only this file is compiled for AVX2
// (the pragma), so the library still loads and runs on baseline x86-64.
#include <immintrin.h>
#include <cstdint>
#include "isa/kernels.h"
#include "isa/passes.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define RC_RNN_NS avx2
#define RC_RNN_AVX2
#include "cells/registry.h"

namespace rc::rnn {
const Kernels& avx2_kernels() {
  static const Kernels kernels{avx2::elementwise_ops<avx2::Avx2>(), avx2::cell_table<avx2::Avx2>()};
  return kernels;
}
}  // namespace rc::rnn
#pragma GCC pop_options
