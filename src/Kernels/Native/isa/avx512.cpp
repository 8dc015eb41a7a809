// The pointwise kernels with AVX-512F, 16 floats a vector. Only this file is compiled for AVX-512
// (the pragma), so the library still loads and runs on CPUs without it.
#include <immintrin.h>
#include <cstdint>
#include "isa/kernels.h"
#include "isa/passes.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
// GCC 12 warns inside its own AVX-512 intrinsics (_mm512_undefined_ps initialises itself on purpose).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define RC_RNN_NS avx512
#define RC_RNN_AVX512
#include "cells/registry.h"

namespace rc::rnn {
const Kernels& avx512_kernels() {
  static const Kernels kernels{avx512::elementwise_ops<avx512::Avx512>(), avx512::cell_table<avx512::Avx512>()};
  return kernels;
}
}  // namespace rc::rnn
#pragma GCC pop_options
